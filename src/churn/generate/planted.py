"""The simulation's parameters in one frozen dataclass, `PLANTED`: the planted churn drivers and everything
else the synthetic business is drawn from (docs/synthetic-data.md refers to them by name), and the kinds of
business and churn mechanism `generate` can plant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Business = Literal["subscription", "retail"]
Mechanism = Literal["default", "additive", "interactions", "ageing"]
MECHANISMS: tuple[str, ...] = ("default", "additive", "interactions", "ageing")
"""What `generate` can plant (docs/synthetic-data.md, "Mechanisms"): the first three differ in the churn hazard
only; `ageing` has the default hazard, but every customer joins in a burst at the start (`ageing_signup_days`),
so a population scored late is older than every row a model could train on earlier."""


# ---------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Planted:
    """Every parameter of the simulation; the planted churn drivers are the `hazard_*`, `price_*` and
    decline (`warning_share`, `decline_*`, `*_decline`) fields. Rates are per day unless named otherwise."""

    # population
    pre_start_share: float = 0.40  # customers who already existed at `start`
    pre_start_tenure_mean_days: float = 540.0  # their tenure at `start`: 1 + exponential, capped
    pre_start_tenure_max_days: int = 3650
    growth: float = 0.5  # new-signup rate at `end` is (1 + growth) x the rate at `start`
    ageing_signup_days: int = 90  # mechanism="ageing": everyone signs up in this many days after `start`

    # latent traits (lognormal with mean 1 unless noted)
    engagement_sigma: float = 0.8  # sd of log engagement (scales the event rate)
    complaint_sigma: float = 0.7  # sd of log complaint propensity (scales the ticket rate)
    purchase_sigma: float = 0.7  # sd of log purchase rate; corr(log engagement, log purchase) = 0.5
    purchase_engagement_corr: float = 0.5
    price_sensitivity_beta: tuple[float, float] = (2.0, 3.0)  # Beta(a, b), mean 0.4

    # churn hazard: h(t) = base x exp(eng_coef*eng_z + comp_coef*comp_z) x tenure x plan x price
    base_monthly_hazard_subscription: float = 0.020
    base_monthly_hazard_retail: float = 0.025
    hazard_engagement: float = -0.60  # per sd of log engagement (low engagement -> more churn)
    hazard_complaint: float = 0.45  # per sd of log complaint propensity
    new_tenure_days: int = 90
    hazard_new_tenure: float = 1.8  # multiplier while tenure < new_tenure_days
    young_tenure_days: int = 365
    hazard_young_tenure: float = 1.3  # multiplier while new_tenure_days <= tenure < young_tenure_days
    hazard_plan: tuple[float, float, float] = (1.15, 1.0, 0.85)  # basic, standard, premium (subscription)

    # price increases (subscription): campaigns at month starts ~1/3 and ~2/3 into the period
    price_increase_share: float = 0.40  # of customers with tenure >= price_min_tenure_days at the campaign
    price_min_tenure_days: int = 90
    price_short_days: int = 90
    price_short: float = 4.0  # hazard x (1 + price_short x sensitivity) for price_short_days after it
    price_long: float = 0.5  # hazard x (1 + price_long x sensitivity) afterwards
    price_billing_ticket: float = 0.5  # P(billing ticket within ~a week) = this x sensitivity

    # mechanism="additive": h = base x scale x exp(eng x eng_z + comp x comp_z + price x increases + plan),
    # log-linear in the traits, no tenure effect, no thresholds or interactions
    additive_scale: float = 1.15  # about the default churn rate (3.4% a month)
    additive_engagement: float = -0.60
    additive_complaint: float = 0.45
    additive_price_increase: float = 0.60  # per price increase received so far (any sensitivity)
    additive_plan: tuple[float, float, float] = (0.14, 0.0, -0.16)  # log multipliers: basic, standard, premium

    # mechanism="interactions": h = base x scale x product of the multipliers whose conditions all hold;
    # the engagement effect flips sign with tenure, so a model without interactions can barely use it
    interactions_scale: float = 0.75  # about the default churn rate
    interactions_low_engagement_z: float = -0.4  # "low engagement": eng_z below this
    interactions_young_low_engagement: float = 8.0  # low engagement while tenure < young_tenure_days
    interactions_old_low_engagement: float = 0.25  # low engagement later: forgotten, still paying
    interactions_high_complaint_z: float = 0.6  # "complains a lot": comp_z above this
    interactions_complaint_low_engagement: float = 5.0  # complains a lot and low engagement
    interactions_sensitive: float = 0.5  # "price-sensitive": sensitivity above this
    interactions_price_sensitive: float = 6.0  # after a price increase, price-sensitive and eng_z < 0

    # decline phase before churn (and noise)
    warning_share: float = 0.80  # churners with a decline phase; the rest churn without warning
    recovery_share: float = 0.12  # non-churners with a decline phase at a random time who recover
    decline_min_days: float = 45.0
    decline_max_days: float = 120.0
    decline_depth: tuple[float, float] = (0.6, 1.0)  # uniform; level in third k is depth x (k + 1) / 3
    events_decline: float = 1.0  # event rate x (1 - events_decline x level)
    orders_decline: float = 1.5  # purchase rate x (1 - level) ** orders_decline: gaps lengthen
    tickets_decline: float = 3.0  # ticket rate x (1 + tickets_decline x level): complaints spike
    complaint_base: float = 0.15  # P(complaint) = base + complaint_trait x comp_z + complaint_decline x level
    complaint_trait: float = 0.08
    complaint_decline: float = 0.45
    unresolved_base: float = 0.02  # P(never closed) = base + complaint x is_complaint + decline x level
    unresolved_complaint: float = 0.06
    unresolved_decline: float = 0.30
    survey_decline: float = 4.0  # NPS points lost at level 1

    # activity rates
    tickets_per_year: float = 1.0
    surveys_per_year: float = 1.2
    orders_per_month_subscription: float = 0.5  # discretionary add-on purchases
    orders_per_month_retail: float = 1.2

    # prices
    plans_subscription: tuple[str, ...] = ("basic", "standard", "premium")
    plan_shares: tuple[float, ...] = (0.50, 0.35, 0.15)
    plan_fees: tuple[float, ...] = (9.99, 19.99, 29.99)
    plan_fee_increase: tuple[float, ...] = (1.00, 2.00, 3.00)  # per campaign
    tiers_retail: tuple[str, ...] = ("member", "silver", "gold")  # loyalty tier, from purchase rate

    markets: tuple[tuple[str, str, str, float], ...] = field(
        default=(
            ("North America", "US", "en", 0.30),
            ("North America", "CA", "en", 0.05),
            ("DACH", "DE", "de", 0.15),
            ("DACH", "AT", "de", 0.035),
            ("DACH", "CH", "de", 0.025),
            ("Slovenia", "SI", "sl", 0.10),
            ("Baltics", "LV", "lv", 0.05),
            ("Baltics", "LT", "lt", 0.03),
            ("Baltics", "EE", "et", 0.02),
            ("Türkiye", "TR", "tr", 0.13),
            ("Persian-speaking", "IR", "fa", 0.10),
        )
    )
    channels: tuple[str, ...] = ("email", "sms", "app_push", "call")
    # per region: channel preference shares and marketing-consent rate (overall consent ~0.80)
    region_channels: tuple[tuple[str, tuple[float, float, float, float], float], ...] = (
        ("North America", (0.50, 0.15, 0.30, 0.05), 0.82),
        ("DACH", (0.60, 0.08, 0.22, 0.10), 0.70),
        ("Slovenia", (0.45, 0.25, 0.18, 0.12), 0.80),
        ("Baltics", (0.40, 0.25, 0.30, 0.05), 0.82),
        ("Türkiye", (0.20, 0.40, 0.32, 0.08), 0.86),
        ("Persian-speaking", (0.12, 0.50, 0.30, 0.08), 0.85),
    )

    # retention campaigns (only when `generate` is given campaigns): a contacted customer's churn hazard is
    # multiplied by campaign_effects[segment][incentive] for campaign_effect_days from the contact day (several
    # contacts multiply where their windows overlap). Segments, first that applies at the contact day:
    #   lost_cause          already deep (depth >= lost_cause_depth) in the decline that ends in churn:
    #                       nothing changes their mind (a shallower decline can still be turned round)
    #   sleeping_dog        eng_z < sleeping_dog_engagement_z with tenure >= young_tenure_days: a forgotten
    #                       subscription; being contacted reminds them to cancel (multiplier above 1)
    #   sure_thing          eng_z > sure_thing_engagement_z: they stay anyway; offers change nothing
    #   persuadable_price   price sensitivity > persuadable_sensitivity: money offers work best
    #   persuadable_service comp_z > persuadable_complaint_z: being heard (a call, a gift) works best
    #   ordinary            everyone else: a small effect
    # An incentive not named below takes the segment's `other` multiplier (the last column).
    campaign_effect_days: int = 90
    lost_cause_depth: float = 0.8
    sleeping_dog_engagement_z: float = -0.5
    sure_thing_engagement_z: float = 0.8
    persuadable_sensitivity: float = 0.5
    persuadable_complaint_z: float = 0.5
    campaign_incentives: tuple[str, ...] = (
        "discount_20_3m", "free_month", "plan_upgrade", "thank_you_gift", "loyalty_points_500", "personal_call",
        "other",
    )
    campaign_segments: tuple[str, ...] = (
        "lost_cause", "sleeping_dog", "sure_thing", "persuadable_price", "persuadable_service", "ordinary",
    )
    campaign_effects: tuple[tuple[float, ...], ...] = (
        # discount free_month upgrade gift  points call  other
        (1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00),  # lost_cause
        (1.90, 1.80, 1.60, 1.40, 1.50, 1.30, 1.50),  # sleeping_dog
        (1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00),  # sure_thing
        (0.15, 0.20, 0.50, 0.80, 0.70, 0.60, 0.60),  # persuadable_price
        (0.70, 0.60, 0.60, 0.40, 0.80, 0.15, 0.60),  # persuadable_service
        (0.70, 0.65, 0.80, 0.75, 0.85, 0.60, 0.75),  # ordinary
    )


PLANTED = Planted()
