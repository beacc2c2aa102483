"""Cross-checks of a config: settings that each look fine alone but not together (tiers, the incentive
catalogue and its message templates, contact rules, channels), all reported at once, each led by the key to
fix.
"""

from __future__ import annotations

import math

from churn.config.schema import Config
from churn.errors import ChurnError


def _between(key: str, v: float | None, lo: float, hi: float, problems: list[str], hi_open: bool = False) -> None:
    if v is None:
        return
    bad = not math.isfinite(v) or v < lo or (v >= hi if hi_open else v > hi)
    if bad:
        problems.append(f"{key}: must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {v!r}")


def config_problems(cfg: Config) -> list[str]:
    """Every inconsistency between settings that each look fine alone: tiers, incentive catalogue, contact
    rules and channels. Checked when the config is built, so a bad setting fails in milliseconds instead of
    after features are built and a model has scored (each message starts with the key to fix)."""
    from churn.scoring.messages import template_problems  # pandas: loaded when a config is checked, not imported

    problems: list[str] = []
    # --- tiers: unique names, one rule kind per method, thresholds falling from the riskiest tier down
    levels = cfg.tiers.levels
    if not levels:
        problems.append("tiers.levels: list at least one tier (the last catches everyone)")
    names = [lv.name.strip() for lv in levels]
    seen: set[str] = set()
    for i, lv in enumerate(levels):
        key = f"tiers.levels[{i}]"
        if not lv.name.strip():
            problems.append(f"{key}.name: must not be empty")
        elif lv.name.strip().casefold() in seen:
            problems.append(f"{key}.name: tier '{lv.name}' is listed twice (names are compared ignoring case)")
        seen.add(lv.name.strip().casefold())
        _between(f"{key}.min_probability", lv.min_probability, 0.0, 1.0, problems)
        _between(f"{key}.top_share", lv.top_share, 0.0, 1.0, problems)
        if cfg.tiers.method == "probability" and lv.top_share is not None and i < len(levels) - 1:
            problems.append(f"{key}.top_share: tiers.method is 'probability'; give min_probability or set "
                            "tiers.method: quantile")
    # The last tier catches everyone else (churn.scoring.tiers): a rule of its own would never be applied.
    last = len(levels) - 1
    if levels and levels[-1].min_probability is not None and levels[-1].min_probability > 0:
        v = levels[-1].min_probability
        problems.append(f"tiers.levels[{last}].min_probability: the last tier catches everyone else, so its "
                        f"{v:g} is never applied (customers below {v:g} are '{levels[-1].name}' too); set it to 0, "
                        "or add a tier below it for them")
    if levels and cfg.tiers.method == "quantile" and levels[-1].top_share is not None and levels[-1].top_share < 1:
        v = levels[-1].top_share
        problems.append(f"tiers.levels[{last}].top_share: the last tier catches everyone else, so its {v:g} is "
                        f"never applied (the rest of the list is '{levels[-1].name}' too); set it to 1, or add a "
                        "tier below it for them")
    # Cut points fall strictly: a tier starting where the riskier one starts would always be empty. The last
    # tier is compared at its own 0 (or 1), the one value it may have.
    fixed = [(i, lv.min_probability) for i, lv in enumerate(levels) if lv.min_probability is not None
             and (i < last or lv.min_probability == 0)]
    for (i, a), (j, b) in zip(fixed, fixed[1:]):
        if a is not None and b is not None and b > a:
            problems.append(f"tiers.levels[{j}].min_probability: {b:g} is above the riskier tier's {a:g}; "
                            "thresholds must fall from the riskiest tier down")
        elif a is not None and b is not None and b == a and j == i + 1:
            problems.append(f"tiers.levels[{j}].min_probability: {b:g} equals tiers.levels[{i}]'s, so tier "
                            f"'{levels[j].name}' would always be empty; give it a lower threshold or remove it")
    shares = [(i, lv.top_share) for i, lv in enumerate(levels) if lv.top_share is not None
              and (i < last or lv.top_share == 1)]
    for (i, a), (j, b) in zip(shares, shares[1:]):
        if a is not None and b is not None and b < a:
            problems.append(f"tiers.levels[{j}].top_share: {b:g} is below the riskier tier's {a:g}; shares are "
                            "cumulative, riskiest first")
        elif a is not None and b is not None and b == a and j == i + 1:
            problems.append(f"tiers.levels[{j}].top_share: {b:g} equals tiers.levels[{i}]'s, so tier "
                            f"'{levels[j].name}' would always be empty (shares are cumulative); give it a larger "
                            "share or remove it")

    if cfg.scoring.max_staleness_days < 0:
        problems.append(f"scoring.max_staleness_days: must not be negative, got {cfg.scoring.max_staleness_days}")

    # --- contact rules and budget
    inc = cfg.incentives
    _between("incentives.control_share", inc.control_share, 0.0, 1.0, problems, hi_open=True)
    if not math.isfinite(inc.budget) or inc.budget < 0:
        problems.append(f"incentives.budget: must be a non-negative amount, got {inc.budget!r}")
    if inc.cooldown_days < 0:
        problems.append(f"incentives.cooldown_days: must not be negative, got {inc.cooldown_days}")
    if not inc.currency.strip():
        problems.append("incentives.currency: must not be empty")
    if not inc.default_language.strip():
        problems.append("incentives.default_language: must not be empty")

    # --- channels: prices are amounts; every routing rule names a channel
    ch = inc.channels
    costs = {k.strip().lower(): v for k, v in ch.contact_cost.items()}
    for k, v in ch.contact_cost.items():
        if not math.isfinite(v) or v < 0:
            problems.append(f"incentives.channels.contact_cost.{k}: must be a non-negative amount, got {v!r}")
    used = [("incentives.channels.default", ch.default)]
    used += [(f"incentives.channels.by_language.{k}", v) for k, v in ch.by_language.items()]
    used += [(f"incentives.channels.by_region.{k}", v) for k, v in ch.by_region.items()]
    used += [(f"incentives.catalogue[{i}].channel", o.channel) for i, o in enumerate(inc.catalogue) if o.channel]
    for key, channel in used:
        # A channel without a price is allowed (its contacts cost nothing: a letter handed out in a shop),
        # but one spelled differently from a price is a typo that would make contacts look free.
        name = str(channel).strip().lower()
        if not name:
            problems.append(f"{key}: must name a channel")
        elif costs and name not in costs and name.replace("-", "_").replace(" ", "_") in costs:
            problems.append(f"{key}: channel '{channel}' is priced as "
                            f"'{name.replace('-', '_').replace(' ', '_')}' in incentives.channels.contact_cost")

    # --- the catalogue
    seen_offers: dict[str, int] = {}
    for i, o in enumerate(inc.catalogue):
        key = f"incentives.catalogue[{i}]"
        if not o.name.strip():
            problems.append(f"{key}.name: must not be empty")
        elif o.name.strip().casefold() in seen_offers:
            problems.append(f"{key}.name: '{o.name}' repeats incentives.catalogue[{seen_offers[o.name.strip().casefold()]}]"
                            "; names must be unique")
        seen_offers.setdefault(o.name.strip().casefold(), i)
        for field_name in ("unit_cost", "cost_share_of_fee"):
            v = getattr(o, field_name)
            if not math.isfinite(v) or v < 0:
                problems.append(f"{key}.{field_name}: must be a non-negative amount, got {v!r}")
        if o.max_customers is not None and o.max_customers < 0:
            problems.append(f"{key}.max_customers: must not be negative, got {o.max_customers}")
        if not o.save_rate:
            problems.append(f"{key}.save_rate: give a save rate for at least one tier")
        for tier, rate in o.save_rate.items():
            if tier not in names:  # the plan looks tiers up by exact name
                problems.append(f"{key}.save_rate.{tier}: no tier is called '{tier}'; tiers are {names}")
            _between(f"{key}.save_rate.{tier}", rate, 0.0, 1.0, problems)
        e = o.eligible
        for t in e.tiers or []:
            if t not in names:
                problems.append(f"{key}.eligible.tiers: no tier is called '{t}'; tiers are {names}")
        if e.min_value is not None and e.max_value is not None and e.min_value > e.max_value:
            problems.append(f"{key}.eligible: min_value {e.min_value:g} is above max_value {e.max_value:g}; "
                            "nobody could get it")
        for language, template in o.messages.items():
            problems += [f"{key}.messages.{language}: {m}" for m in template_problems(template)]
    return problems

def check_config(cfg: Config, where: str = "the configuration") -> None:
    """Raise one `ChurnError` listing every inconsistency `config_problems` finds (each led by its key)."""
    problems = config_problems(cfg)
    if problems:
        raise ChurnError(f"{where} is invalid:\n" + "\n".join(f"  - {m}" for m in problems))
