"""Training: calibrated LightGBM churn models, evaluation, MLflow tracking/registry and bundles.

Public API (imported lazily, so `from churn.training.model import ChurnModel` does not pull in MLflow):

- `churn.training.train.train(frame, features, config, ...) -> TrainResult` (import it from the module:
  `churn.training.train` is the module's name too)
- `prepare_table(df, target, id_col, time_col=None) -> (frame, features)`
- `promote(name, config, ...) -> dict`
- `load_model(uri_or_path) -> ChurnModel`
- `ChurnModel`
"""

from __future__ import annotations

import os
from typing import Any

# LightGBM and scikit-learn run on OpenMP, whose default "active" wait keeps idle threads spinning. On
# shared or busy cores that was measured 4-6x slower per boosting round (2 threads, load ~3 on 2 cores:
# 170-245 ms vs 40-45 ms). Passive waiting costs nothing measurable on an idle machine. It only takes
# effect if set before the OpenMP runtime loads (first import of lightgbm/sklearn); a value the user set
# is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "prepare_table": "churn.training.table",
    "promote": "churn.training.registry",
    "load_model": "churn.training.loading",
    "ChurnModel": "churn.training.model",
    "export_bundle": "churn.training.bundle",
    "load_bundle": "churn.training.bundle",
}

__all__ = ["ChurnModel", "export_bundle", "load_bundle", "load_model", "prepare_table", "promote"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'churn.training' has no attribute {name!r}")
