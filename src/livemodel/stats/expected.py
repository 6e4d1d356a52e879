"""Expected classification metrics from per-row class probabilities, and their sampling spread.

Pure functions behind :class:`~livemodel.stats.cbpe.CBPE`. ``q`` is an (n, K) matrix whose row
``i`` is the probability that row ``i``'s label is each class; ``decided`` holds the class
index each row was *decided* as (the model's logged prediction). Then

* the expected confusion matrix ``[true, decided]`` is ``q.T @ onehot(decided)``: a row
  decided as class ``d`` adds ``q[i, c]`` to cell ``(c, d)`` for every ``c``;
* accuracy, precision, recall and F1 are ratios of expected counts (NannyML's estimator);
* the expected ROC AUC ranks rows by the model's raw scores, each row counting as a
  positive with weight ``q`` and as a negative with weight ``1 - q`` (scikit-learn's
  weighted ``roc_auc_score``, computed directly).

The sampling spread of the realized metric at the window's size comes from label sets drawn
from ``q``: each draw gives an exact confusion matrix (or a Mann-Whitney AUC with mid-ranks,
which equals scikit-learn's value), in batches of at most ``SIM_CELLS`` drawn labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from livemodel.stats.metrics import Average, FloatArray, IntArray

SIM_CELLS = 4_000_000  # simulated label cells held in memory at once


def expected_confusion(q: FloatArray, decided: IntArray) -> FloatArray:
    """(K, K) expected counts, rows the true class and columns the decided one."""
    return np.asarray(q.T @ np.eye(q.shape[1])[decided], dtype=np.float64)


def draw_labels(rng: np.random.Generator, cum: FloatArray, b: int) -> IntArray:
    """``b`` label draws per row from categorical distributions with cumulative ``cum``."""
    u = rng.random((b, cum.shape[0], 1))
    return np.asarray((u > cum[None]).sum(axis=2), dtype=np.intp)


def simulated_confusions(
    q: FloatArray, decided: IntArray, n_simulations: int, rng: np.random.Generator
) -> FloatArray:
    """(n_simulations, K, K) confusion matrices of label sets drawn from ``q``."""
    n, k = q.shape
    batch = max(1, SIM_CELLS // (n * k))
    cum = np.cumsum(q, axis=1)[:, :-1]
    out = []
    for start in range(0, n_simulations, batch):
        b = min(batch, n_simulations - start)
        labels = draw_labels(rng, cum, b)
        cells = labels * k + decided[None, :] + (np.arange(b) * k * k)[:, None]
        counts = np.bincount(cells.ravel(), minlength=b * k * k)
        out.append(counts.reshape(b, k, k).astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, k, k))


def average(values: FloatArray, weights: FloatArray, how: Average) -> FloatArray:
    """Macro or support-weighted mean over the last axis, skipping undefined classes."""
    defined = np.isfinite(values)
    w = np.where(defined, weights if how == "weighted" else 1.0, 0.0)
    total = w.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (np.where(defined, values, 0.0) * w).sum(axis=-1) / total
    return np.asarray(mean, dtype=np.float64)


def label_scores(conf: FloatArray, names: Sequence[str], how: Average) -> dict[str, Any]:
    """Accuracy/precision/recall/F1 from (..., K, K) confusion matrices [true, decided].

    Binary: precision, recall and F1 of the second class (the positive one)."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    decided, actual = conf.sum(axis=-2), conf.sum(axis=-1)
    out: dict[str, Any] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "accuracy" in names:
            out["accuracy"] = tp.sum(-1) / conf.sum(axis=(-2, -1))
        per_class = {
            "precision": (tp, decided),
            "recall": (tp, actual),
            "f1": (2 * tp, decided + actual),
        }
        for name in (m for m in names if m in per_class):
            num, den = per_class[name]
            if conf.shape[-1] == 2:
                out[name] = num[..., 1] / den[..., 1]
            elif how == "micro":
                out[name] = num.sum(-1) / den.sum(-1)
            else:
                out[name] = average(num / den, actual, how)
    return out


def _binary_expected_auc(score: FloatArray, weight: FloatArray) -> float:
    """Area under the expected ROC curve: each row a positive with weight q, else negative.

    Equal to scikit-learn's ``roc_auc_score`` with those sample weights (ties count a
    half), computed over the distinct scores in ``O(n log n)`` without its validation
    overhead (it is called once per calibration draw)."""
    negative = 1.0 - weight
    w_pos, w_neg = float(weight.sum()), float(negative.sum())
    if w_pos <= 0 or w_neg <= 0:
        return float("nan")
    _, group = np.unique(score, return_inverse=True)
    pos = np.bincount(group.reshape(-1), weights=weight)
    neg = np.bincount(group.reshape(-1), weights=negative)
    below = np.cumsum(neg) - neg  # negative weight on strictly lower scores
    return float(np.sum(pos * (below + 0.5 * neg)) / (w_pos * w_neg))


def expected_auc(raw: FloatArray, q: FloatArray, how: Average) -> float:
    """Expected ROC AUC: binary, one-vs-rest averaged, or micro over the flattened matrix."""
    k = q.shape[1]
    if k == 2:
        return _binary_expected_auc(raw[:, 1], q[:, 1])
    if how == "micro":
        return _binary_expected_auc(raw.ravel(), q.ravel())
    per_class = np.array([_binary_expected_auc(raw[:, c], q[:, c]) for c in range(k)])
    return float(average(per_class, q.sum(axis=0), how))


def simulated_auc(
    raw: FloatArray, q: FloatArray, how: Average, n_simulations: int, seed: int
) -> FloatArray:
    """Realized ROC AUC of label sets drawn from q (Mann-Whitney with mid-ranks)."""
    n, k = q.shape
    rng = np.random.default_rng(seed + 1)
    cum = np.cumsum(q, axis=1)[:, :-1]
    flat_ranks = rankdata(raw.ravel()).reshape(n, k) if how == "micro" and k > 2 else None
    ranks = np.column_stack([rankdata(raw[:, c]) for c in range(k)])
    batch = max(1, SIM_CELLS // (n * k))
    out = []
    for start in range(0, n_simulations, batch):
        labels = draw_labels(rng, cum, min(batch, n_simulations - start))
        if flat_ranks is not None:
            rank_sum = flat_ranks[np.arange(n), labels].sum(axis=1)
            out.append((rank_sum - n * (n + 1) / 2) / (n * n * (k - 1)))
            continue
        cols = [1] if k == 2 else list(range(k))
        aucs, support = [], []
        for c in cols:
            hit = labels == c
            n1 = hit.sum(axis=1).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                aucs.append((hit @ ranks[:, c] - n1 * (n1 + 1) / 2) / (n1 * (n - n1)))
            support.append(n1)
        per_class = np.stack(aucs, axis=-1)
        out.append(per_class[:, 0] if k == 2 else average(per_class, np.stack(support, -1), how))
    return np.asarray(np.concatenate(out), dtype=np.float64)
