"""The numba kernels: each compiled once (one version whatever array it is handed), all of them reachable by
`churn.compiled.compile_all`, which fills numba's cache ahead of use. That a real feature build loads one
version of each kernel, all compiled beforehand, is checked on a fresh `churn features` process by
tests/unit/test_docs_commands.py::test_cheap_commands_run_for_real."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from numba.core.registry import CPUDispatcher

from churn.compiled import KERNEL_MODULES, compile_all, kernel_input

SRC = Path(__file__).resolve().parents[2] / "src"


def _dispatchers() -> dict[str, CPUDispatcher]:
    found = {}
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        found.update({f"{name}.{k}": v for k, v in vars(module).items() if isinstance(v, CPUDispatcher)})
    return found


def test_every_module_with_a_kernel_is_compiled_ahead():
    with_kernels = {".".join(p.relative_to(SRC).with_suffix("").parts) for p in SRC.rglob("*.py")
                    if re.search(r"@numba\.(njit|jit)\b", p.read_text(encoding="utf-8"))}
    assert with_kernels == set(KERNEL_MODULES)
    assert len(_dispatchers()) == 13  # every decorated function found (reasons 1, explain 2, features 10)


def test_kernel_input_is_a_read_only_view_without_a_copy():
    computed = np.arange(6, dtype=np.int64)
    view = kernel_input(computed, np.int64)
    assert not view.flags.writeable and view.flags.c_contiguous and np.shares_memory(view, computed)
    assert computed.flags.writeable  # the caller's array is left as it was
    from_arrow = pa.array([1, 2, 3], pa.int64()).to_numpy(zero_copy_only=True)
    assert np.shares_memory(kernel_input(from_arrow, np.int64), from_arrow)
    widened = kernel_input(np.array([1, 2], np.int32), np.int64)
    assert widened.dtype == np.int64 and not widened.flags.writeable
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    assert kernel_input(fortran, np.float64).flags.c_contiguous


def test_every_kernel_has_one_version_whatever_arrays_it_is_handed():
    """Arrow's read-only arrays, computed writable ones, Fortran-ordered and sliced matrices: after every
    entry point has seen them (and whatever else this process ran before), each kernel holds one version."""
    from churn.features.engagement_kernel import compute as engagement
    from churn.features.engagement_kernel import layout
    from churn.features.lookup import HashIndex
    from churn.features.registry import Feature
    from churn.scoring.reasons import reason_codes
    from churn.training.explain import PathExplainer

    compile_all()
    ro = pa.array([0, 2, 3], pa.int64()).to_numpy(zero_copy_only=True)
    for offsets in (ro, np.array([0, 2, 3], np.int32), np.array([0, 2, 3], np.int64)):
        # Codes pack (day << 1) | type: days 5 and 8 for the first customer, day 3 for the second.
        got = engagement(offsets, np.array([5 << 1, 8 << 1, 3 << 1], np.int64), np.zeros(2, np.int64), 9,
                         layout(1, 9, [7], 90, 1), ["x"], True, np.array([0, 1]))
        assert got["events_7d"].tolist() == [2, 1]
    for keys in (pa.array([5, 7], pa.uint64()).to_numpy(zero_copy_only=True), np.array([5, 7], np.uint64)):
        assert HashIndex(keys).find(np.array([7, 1], np.uint64)).tolist() == [1, -1]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 4},
                        lgb.Dataset(X, (X[:, 0] > 0).astype(int)), num_boost_round=3)
    explainer = PathExplainer(n_jobs=1).fit(booster)
    for matrix in (X, np.asfortranarray(X), pd.DataFrame(X).to_numpy()):
        np.testing.assert_allclose(explainer.contributions(matrix).sum(axis=1),
                                   booster.predict(X, raw_score=True), atol=1e-9)
    features = [Feature(name=f"f{i}", family="profile", description=f"f{i}", reason=f"f{i} is high")
                for i in range(3)]
    contrib = explainer.contributions(X)  # three features, then the bias
    contrib[:, 3] = 99.0  # the scorer passes the whole matrix: a column after `names` is never read
    frame = pd.DataFrame(X, columns=["f0", "f1", "f2"])
    want = reason_codes(features, frame, contrib[:, :3].copy(), names=["f0", "f1", "f2"])
    assert want["reason_1_feature"].notna().any()
    for c in (pd.DataFrame(contrib[:, :3], columns=["f0", "f1", "f2"]), contrib[:, :3], contrib):
        pd.testing.assert_frame_equal(reason_codes(features, frame, c, names=["f0", "f1", "f2"]), want)
    versions = {name: len(d.signatures) for name, d in _dispatchers().items()}
    inlined = {"churn.training.explain._leaf_of"}  # compiled inside `_walk`, not called on its own
    assert {k: v for k, v in versions.items() if v != 1 and k not in inlined} == {}  # each compiled, once
