"""The incentive catalogue as the retention plan reads it: checked before any work.

Pure functions of the configuration; the plan (`churn.scoring.allocation`) prices every (customer, offer)
pair from what is read here.
"""

from __future__ import annotations

from churn.config import Config
from churn.errors import ChurnError


def check_catalogue(config: Config) -> None:
    """Catch catalogue mistakes before any work: duplicate names, unknown tiers, negative costs."""
    inc = config.incentives
    tiers = [lv.name for lv in config.tiers.levels]
    where = "incentives"
    problems: list[str] = []
    if not 0.0 <= inc.control_share < 1.0:
        problems.append(f"control_share must be in [0, 1), got {inc.control_share}")
    if inc.budget < 0:
        problems.append(f"budget must not be negative, got {inc.budget}")
    for ch, cost in inc.channels.contact_cost.items():
        if cost < 0:
            problems.append(f"channels.contact_cost.{ch} must not be negative, got {cost}")
    names = [i.name for i in inc.catalogue]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"incentive names must be unique; repeated: {dupes}")
    for i in inc.catalogue:
        if i.unit_cost < 0 or i.cost_share_of_fee < 0:
            problems.append(f"incentive '{i.name}': unit_cost and cost_share_of_fee must not be negative")
        if i.max_customers is not None and i.max_customers < 0:
            problems.append(f"incentive '{i.name}': max_customers must not be negative")
        unknown = sorted(set(i.save_rate) - set(tiers))
        if unknown:
            problems.append(f"incentive '{i.name}': save_rate names unknown tier(s) {unknown}; tiers are {tiers}")
        bad = {k: v for k, v in i.save_rate.items() if not 0.0 <= v <= 1.0}
        if bad:
            problems.append(f"incentive '{i.name}': save_rate values must be in [0, 1], got {bad}")
        if i.eligible.tiers is not None:
            unknown = sorted(set(i.eligible.tiers) - set(tiers))
            if unknown:
                problems.append(f"incentive '{i.name}': eligible.tiers names unknown tier(s) {unknown}")
    if problems:
        raise ChurnError(f"{where}: the catalogue is invalid:\n" + "\n".join(f"  - {p}" for p in problems))
