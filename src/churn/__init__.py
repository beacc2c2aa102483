"""churn: point-in-time churn features, calibrated LightGBM risk and budgeted retention plans.

The Python API mirrors the `churn` command (see `churn.api`); names load on first use, so `import churn`
stays cheap (no pandas, DuckDB, LightGBM or MLflow until a function needs them):

    import churn
    cfg = churn.load_config()
    report = churn.validation_report("data/demo", cfg)
    tf = churn.build_training_frame("data/demo", cfg)
    result = churn.train(cfg, "data/demo", promote=True)
    scores = churn.score("models:/churn@champion", "data/demo", churn.latest_date("data/demo"), cfg)
    plan = churn.plan_retention(scores, cfg, budget=20_000)
    run = churn.score_to_folder("models:/churn@champion", "data/demo", "2025-07-01", cfg)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ["load_config", "open_source", "validation_report", "ValidationReport", "latest_date",
         "build_features", "build_training_frame", "train", "train_table", "load_model", "score",
         "score_frame", "plan_retention", "compare_budgets", "score_to_folder", "promote"], "churn.api"),
    **dict.fromkeys(
        ["activity_by_month", "churn_rate_by", "signal_strength", "signal_vs_churn", "plot_signals"],
        "churn.explore"),
    **dict.fromkeys(["read_run", "RunReport"], "churn.runs"),
    **dict.fromkeys(["segment_preview"], "churn.planning"),
    **dict.fromkeys(["workspace", "Workspace", "champion"], "churn.workspaces"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'churn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
