"""Render the feature registry as Markdown (docs/features.md is generated from it, and tested to match)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from churn.features.engagement import type_groups
from churn.features.registry import Feature, Registry

FAMILY_ORDER = ("engagement", "support", "purchases", "feedback", "profile")
FAMILY_TITLES = {
    "engagement": "Engagement (events)",
    "support": "Support and complaints (tickets)",
    "purchases": "Purchases (orders)",
    "feedback": "Feedback (surveys)",
    "profile": "Profile (customers, fee_changes)",
}
INTRO = """\
# Features

Every feature the builders can produce: its name, family, window and plain-language description (the same
text reason codes use). Generated from the feature registry by `churn.features.docs.registry_markdown`;
`tests/data/test_features_doc.py` fails when this file and the registry disagree.

Time rule: a feature at `as_of` sees only facts strictly before `as_of`. A window of `d` days is
`[as_of - d days, as_of)`; "—" means no window (the state at `as_of`, or the whole history before it).
Counts are 0 for a customer without any activity of that kind; recencies, averages and ratios are then
missing. Which features exist depends on the data: a family is skipped when its table is absent, and
features of optional columns (durations, complaints, satisfaction, discounts, fee history) only appear
when the column does. `<type>` stands for each event type (the most frequent ones in the data, or
`features.engagement.event_types`) in ASCII, accents folded (`Ünïcode-événement`: `unicode_evenement`;
a script with no ASCII reading gets `v` and a short hash); spellings that give one name (`page_view`,
`Page View`) are one type, counted together, and a notice says so. Names and windows below are those of the
default configuration; other `features.*.windows` give other `_<d>d` names.
"""


def _generic_name(f: Feature, event_types: Sequence[str]) -> tuple[str, str]:
    """(name, description) with a concrete event type replaced by `<type>`."""
    for name, (t, *_) in type_groups(list(event_types)):
        m = re.fullmatch(rf"events_{re.escape(name)}_(\d+)d", f.name)
        if m:
            return f"events_<type>_{m.group(1)}d", f.description.replace(f"'{t}'", "`<type>`")
    return f.name, f.description


def registry_markdown(registry: Registry, event_types: Sequence[str] = (), intro: str = INTRO) -> str:
    """Markdown listing every feature of `registry` by family (per-event-type features shown once)."""
    lines = [intro.rstrip(), ""]
    families = [f for f in FAMILY_ORDER if registry.family(f)]
    families += sorted({f.family for f in registry} - set(families))
    for family in families:
        lines += [f"## {FAMILY_TITLES.get(family, family)}", "", "| feature | window | description |",
                  "|---|---|---|"]
        seen: set[str] = set()
        for f in registry.family(family):
            name, desc = _generic_name(f, event_types)
            if name in seen:
                continue
            seen.add(name)
            window = f"{f.window_days} days" if f.window_days is not None else "—"
            kind = " (categorical)" if f.kind == "categorical" else ""
            lines.append(f"| `{name}` | {window} | {desc}{kind} |")
        lines.append("")
    return "\n".join(lines)
