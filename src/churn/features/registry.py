"""The feature registry: every feature's name, family, window, kind and plain-language description.

Descriptions and reason templates here are what marketing reads in reason codes and what the docs list, so
they are written in the business's words. Family modules declare their features here; nothing else names
features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Feature:
    """One model input: what it is called, where it comes from and how to say it in plain words."""

    name: str
    family: str
    description: str
    window_days: int | None = None
    kind: Kind = "numeric"
    # Reason-code template; `{value}` is this feature's value, other `{feature_name}`s are looked up in
    # the same row (e.g. "no activity in {value:.0f} days (usually every {event_gap_mean_days:.0f})").
    reason: str | None = None
    # Said instead when the value is missing (e.g. "has never ordered" for days_since_last_order).
    reason_missing: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain dict for manifests and MLflow artifacts."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Feature:
        """Inverse of to_dict."""
        return cls(**d)  # type: ignore[arg-type]


class Registry:
    """An ordered, name-unique collection of features."""

    def __init__(self, features: list[Feature] | None = None):
        self._by_name: dict[str, Feature] = {}
        for f in features or []:
            self.add(f)

    def add(self, feature: Feature) -> None:
        """Declare a feature; names are unique across families."""
        if feature.name in self._by_name:
            raise ValueError(f"feature '{feature.name}' is declared twice")
        self._by_name[feature.name] = feature

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    @property
    def names(self) -> list[str]:
        """Feature names in declaration order (the model's column order)."""
        return list(self._by_name)

    def family(self, family: str) -> list[Feature]:
        """Features of one family."""
        return [f for f in self if f.family == family]
