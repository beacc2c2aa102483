"""The drift and estimation statistics, in numpy (why not Evidently or NannyML: docs/monitoring.md).

- `bin_shares`: the share of values in each bin cut at a reference's quantile edges (bin k holds the values
  with k edges at or below them), so reference and current are binned alike;
- `psi`: population stability index, sum (a - e) ln(a / e) over the bins;
- `js_distance`: Jensen-Shannon distance, base 2 (0: same shares, 1: no category in common);
- `expected_roc_auc`: confidence-based performance estimation (as NannyML's CBPE): with calibrated
  probabilities p, a row at threshold rank r is expected to hold p churners, so the expected true
  positives above a threshold are the cumulated p and the false positives the rows minus those; the ROC
  curve through those expected rates, and its area, need no labels.
"""

from __future__ import annotations

import numpy as np

# Added to every share before a logarithm: an empty bin on one side would otherwise make PSI infinite.
EPSILON = 1e-4


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of the non-missing `values` in the len(edges) + 1 bins cut at `edges` (zeros when none)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), x, side="right"),
                         minlength=len(edges) + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of the `actual` shares against the `expected` ones (same bins)."""
    e = np.asarray(expected, dtype=float) + epsilon
    a = np.asarray(actual, dtype=float) + epsilon
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2) between two share vectors."""
    p = np.asarray(p, dtype=float) / max(float(np.sum(p)), 1e-300)
    q = np.asarray(q, dtype=float) / max(float(np.sum(q)), 1e-300)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(a[keep] / m[keep])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def expected_roc_auc(p: np.ndarray) -> float:
    """Expected ROC AUC of calibrated probabilities `p` without labels (CBPE); NaN when undefined.

    Rows with the same probability form one step of the curve, as tied scores do in a realised ROC AUC."""
    p = np.asarray(p, dtype=float)
    p = p[~np.isnan(p)]
    if len(p) < 2 or p.sum() <= 0 or (1 - p).sum() <= 0:
        return float("nan")
    values, counts = np.unique(-p, return_counts=True)  # riskiest first; one point per distinct probability
    tp = np.cumsum(-values * counts)
    fp = np.cumsum(counts) - tp
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
