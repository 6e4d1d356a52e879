"""Metrics under row weights, and the paired bootstrap of a metric difference (pure numpy).

A bootstrap resample is a vector of row counts (multinomial, ``n`` draws over ``n`` rows),
so every metric here takes a weight matrix ``W`` of shape ``(B, n)`` and returns ``B``
values at once: a metric of a resample equals the metric of the full sample weighted by
its counts (scikit-learn's ``sample_weight`` gives the same numbers; the tests check it).
ROC AUC is the Mann-Whitney statistic computed from per-score-group weight sums (ties
count one half), so it needs one sort, not one per resample.

The paired bootstrap applies the *same* resample to champion and candidate, so the
interval is for the difference on the same rows: it is narrower than comparing two
separate intervals whenever the two models' errors are correlated (they nearly always are).
Values are NaN where a metric is undefined for a resample (one class only, for ROC AUC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.errors import InvalidInputError, StatisticsError

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "PairedBootstrap",
    "Scored",
    "metric_values",
    "paired_bootstrap",
    "score",
]

FloatArray = npt.NDArray[np.float64]
METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "mae", "rmse")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
_CLASSIFICATION = frozenset({"roc_auc", "accuracy", "f1", "log_loss"})
_EPS = float(np.finfo(np.float64).eps)
#: share of resamples on which the metric may be undefined before the interval is refused
MAX_UNDEFINED = 0.05


@dataclass(frozen=True)
class Scored:
    """What one model said about ``n`` rows, coded for the metrics.

    Classification: ``y`` and ``pred`` are class indices (``pred`` is -1 for a label that
    is no class), ``proba`` the ``(n, K)`` probabilities in class order (or None).
    Regression: ``y`` and ``pred`` are floats.
    """

    kind: str
    y: npt.NDArray[Any]
    pred: npt.NDArray[Any]
    proba: FloatArray | None
    n_classes: int = 0

    @property
    def n(self) -> int:
        return len(self.y)


def score(
    outputs: pd.DataFrame, y_true: Sequence[Any] | npt.NDArray[Any], kind: str,
    classes: Sequence[Any] | None,
) -> Scored:  # fmt: skip
    """Code ``predict_outputs`` columns (``prediction``, ``proba_<class>``) and the labels."""
    y_arr = np.asarray(y_true, dtype=object)
    if len(y_arr) != len(outputs):
        raise InvalidInputError(f"{len(outputs)} predictions for {len(y_arr)} labels")
    if kind == "regression":
        y = pd.to_numeric(pd.Series(y_arr), errors="coerce").to_numpy(np.float64)
        pred = pd.to_numeric(outputs["prediction"], errors="coerce").to_numpy(np.float64)
        if not (np.isfinite(y).all() and np.isfinite(pred).all()):
            raise InvalidInputError("regression labels and predictions must be finite numbers")
        return Scored(kind, y, pred, None)
    if not classes:
        raise InvalidInputError("a classifier's metrics need its classes")
    index = {_key(c): i for i, c in enumerate(classes)}
    y_codes = np.array([index.get(_key(v), -1) for v in y_arr], dtype=np.intp)
    if (y_codes < 0).any():
        raise InvalidInputError(f"{int((y_codes < 0).sum())} labels are not classes {classes}")
    pred = np.array(
        [index.get(_key(v), -1) for v in outputs["prediction"].to_numpy(dtype=object)],
        dtype=np.intp,
    )
    proba = None
    if any(f"proba_{c}" in outputs.columns for c in classes):
        proba = np.column_stack(
            [
                outputs[f"proba_{c}"].to_numpy(np.float64)
                if f"proba_{c}" in outputs.columns
                else np.zeros(len(outputs))
                for c in classes
            ]
        )
        if not np.isfinite(proba).all():
            raise InvalidInputError("probabilities must be finite")
    return Scored(kind, y_codes, pred, proba, len(classes))


def _key(value: Any) -> Any:
    """Class labels compare as Python scalars (``np.int64(1) == 1``); text stays text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def metric_values(metric: str, data: Scored, weights: FloatArray) -> FloatArray:
    """``metric`` of ``data`` under each row of ``weights`` ``(B, n)``; NaN where undefined."""
    if metric not in METRICS:
        raise InvalidInputError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if (metric in _CLASSIFICATION) == (data.kind == "regression"):
        raise InvalidInputError(f"{metric} does not apply to a {data.kind} model")
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != data.n:
        raise InvalidInputError(f"weights cover {w.shape[1]} rows, the data {data.n}")
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return np.asarray(w @ (data.pred == data.y).astype(np.float64) / total)
        if metric == "mae":
            return np.asarray(w @ np.abs(data.pred - data.y) / total)
        if metric == "rmse":
            return np.asarray(np.sqrt(w @ np.square(data.pred - data.y) / total))
        if metric == "f1":
            return _f1(data, w)
        proba = _need_proba(data, metric)
        if metric == "log_loss":
            p_true = np.clip(proba[np.arange(data.n), data.y], _EPS, 1.0 - _EPS)
            return np.asarray(w @ -np.log(p_true) / total)
        if data.n_classes == 2:
            return _auc(proba[:, 1], data.y == 1, w)
        per_class = [_auc(proba[:, k], data.y == k, w) for k in range(data.n_classes)]
        return np.asarray(np.mean(per_class, axis=0))


def _need_proba(data: Scored, metric: str) -> FloatArray:
    if data.proba is None:
        raise InvalidInputError(f"{metric} needs predicted probabilities (predict_proba)")
    return data.proba


def _f1(data: Scored, w: FloatArray) -> FloatArray:
    """Binary: F1 of the second class; multiclass: macro F1 over the classes present in
    labels or predictions (scikit-learn's default labels); 0 where undefined."""
    if data.n_classes == 2:
        labels = [1]
    else:
        present = set(data.y.tolist()) | set(data.pred.tolist())
        labels = sorted(k for k in present if k >= 0)
    scores = []
    for k in labels:
        tp = w @ ((data.pred == k) & (data.y == k)).astype(np.float64)
        fp = w @ ((data.pred == k) & (data.y != k)).astype(np.float64)
        fn = w @ ((data.pred != k) & (data.y == k)).astype(np.float64)
        denominator = 2 * tp + fp + fn
        scores.append(
            np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
        )
    return np.asarray(np.mean(scores, axis=0))


def _auc(scores: FloatArray, positive: npt.NDArray[np.bool_], w: FloatArray) -> FloatArray:
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    pos_w = w[:, order] * positive[order]
    neg_w = w[:, order] * ~positive[order]
    pos_g = np.add.reduceat(pos_w, starts, axis=1)
    neg_g = np.add.reduceat(neg_w, starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    n_pos, n_neg = pos_g.sum(axis=1), neg_g.sum(axis=1)
    wins = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1)
    return np.where(
        (n_pos > 0) & (n_neg > 0), wins / np.where(n_pos * n_neg > 0, n_pos * n_neg, 1), np.nan
    )


@dataclass(frozen=True)
class PairedBootstrap:
    """The metric of both models on the same rows and the interval of the improvement
    (candidate minus champion, sign flipped for error metrics: positive is better)."""

    metric: str
    champion: float
    candidate: float
    improvement: float
    lower: float
    upper: float
    confidence: float
    n: int
    n_bootstrap: int
    n_undefined: int

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def paired_bootstrap(
    metric: str,
    champion: Scored,
    candidate: Scored,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 64,
) -> PairedBootstrap:
    """Percentile interval of the improvement over ``n_bootstrap`` seeded paired resamples."""
    if champion.n != candidate.n or not np.array_equal(champion.y, candidate.y):
        raise InvalidInputError("champion and candidate must be scored on the same labelled rows")
    if champion.n < 2:
        raise StatisticsError("the gate needs at least 2 labelled rows")
    if not 0.0 < confidence < 1.0 or n_bootstrap < 1:
        raise InvalidInputError("confidence must be in (0, 1) and n_bootstrap >= 1")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ones = np.ones((1, champion.n))
    champ_value = float(metric_values(metric, champion, ones)[0])
    cand_value = float(metric_values(metric, candidate, ones)[0])
    if not (np.isfinite(champ_value) and np.isfinite(cand_value)):
        raise StatisticsError(f"{metric} is undefined on the gate's rows (one class only?)")
    rng = np.random.default_rng(seed)
    diffs = []
    done = 0
    while done < n_bootstrap:
        size = min(chunk, n_bootstrap - done)
        w = rng.multinomial(champion.n, np.full(champion.n, 1.0 / champion.n), size=size)
        weights = w.astype(np.float64)
        diffs.append(
            sign
            * (metric_values(metric, candidate, weights) - metric_values(metric, champion, weights))
        )
        done += size
    all_diffs = np.concatenate(diffs)
    defined = all_diffs[np.isfinite(all_diffs)]
    undefined = n_bootstrap - len(defined)
    if undefined > MAX_UNDEFINED * n_bootstrap:
        raise StatisticsError(
            f"{metric} is undefined on {undefined} of {n_bootstrap} resamples: too few rows of "
            "some class for an interval"
        )
    alpha = 1.0 - confidence
    lower, upper = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return PairedBootstrap(
        metric=metric,
        champion=champ_value,
        candidate=cand_value,
        improvement=sign * (cand_value - champ_value),
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        n=champion.n,
        n_bootstrap=n_bootstrap,
        n_undefined=undefined,
    )
