"""Shared fixtures for model tests: a synthetic frame with a planted signal and a small fast config (the MLflow
store per module, `mlflow_store`, is in tests/conftest.py)."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # 2 shared cores: no OpenMP oversubscription in tests

from pathlib import Path

import pytest

from churn.config import Config
from churn.training.synthetic import synthetic_training_frame

N_CUSTOMERS = 2000
N_SNAPSHOTS = 5


def small_config(bundle_dir: Path | str = "models", **model: object) -> Config:
    """Default config with a fast single-thread model: few rounds, higher learning rate, no plots (the tests
    that read them turn them on)."""
    base = Config()
    params = {**base.model.params, "learning_rate": 0.1, "num_leaves": 15}
    settings = {"n_jobs": 1, "num_boost_round": 300, "early_stopping_rounds": 20, "params": params,
                "auto_tune_max_rows": 0,
                "max_shap_rows": 500, "bundle_dir": str(bundle_dir), "plots": False, **model}
    return base.model_copy(update={"model": base.model.model_copy(update=settings)})


@pytest.fixture(scope="session")
def make_config():
    """`small_config` as a fixture (test modules here are not a package, so they cannot import conftest)."""
    return small_config


@pytest.fixture(scope="session")
def synthetic():
    """(frame, features): 2,000 customers x 5 monthly snapshots."""
    return synthetic_training_frame(N_CUSTOMERS, N_SNAPSHOTS, seed=7)
