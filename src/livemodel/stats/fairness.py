"""Fairness audit: a metric per group of a protected attribute, with confidence intervals.

:func:`fairness_audit` computes the point value of the metric in every group with
Fairlearn's :class:`~fairlearn.metrics.MetricFrame` over scikit-learn's metric functions
(when Fairlearn is installed; otherwise the same scikit-learn calls group by group), and a
seeded *stratified* bootstrap for the intervals: each replicate resamples every group
within itself (multinomial row weights), so group sizes stay fixed as in the data. The
between-group ``difference`` (largest minus smallest group value) and ``ratio`` (smallest
over largest) get percentile intervals from the same replicates.

Label metrics are ratios of weighted sums of 0/1 indicators (accuracy, selection rate,
true/false positive and negative rates, precision, F1 = 2TP / (2TP + FP + FN)), so the
bootstrap is one matrix product; ROC AUC is recomputed by scikit-learn per replicate.

A value that is undefined in a group (no positive row for a true positive rate, one class
for ROC AUC) is ``None`` with a ``reason``, never NaN; such groups, and groups smaller than
``min_group_size``, are left out of the difference and ratio.

>>> audit = fairness_audit([1, 0, 1, 1], [1, 0, 0, 1], ["a", "a", "b", "b"],
...                        metric="accuracy", n_boot=50, seed=0, min_group_size=1)
>>> [(g.group, g.value) for g in audit.groups]
[('a', 1.0), ('b', 0.5)]
>>> audit.difference.value, audit.ratio.value
(0.5, 0.5)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.metrics import as_finite, as_labels, is_missing

__all__ = ["METRICS", "Disparity", "FairnessAudit", "GroupMetric", "fairness_audit"]

FloatArray = npt.NDArray[np.float64]
MISSING_GROUP = "(missing)"

#: metric name -> whether higher values are better (None: neither, e.g. a selection rate)
METRICS: Mapping[str, bool | None] = {
    "accuracy": True,
    "selection_rate": None,
    "true_positive_rate": True,
    "false_positive_rate": False,
    "true_negative_rate": True,
    "false_negative_rate": False,
    "precision": True,
    "f1": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
    "mean_prediction": None,
}
_REGRESSION = ("mae", "rmse", "mean_prediction")


@dataclass(frozen=True)
class GroupMetric:
    """The metric in one group; ``value`` is None exactly when undefined (see ``reason``)."""

    group: str
    n: int
    value: float | None
    lower: float | None
    upper: float | None
    reason: str | None = None
    in_comparison: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Disparity:
    """A between-group difference or ratio with its bootstrap interval."""

    value: float | None
    lower: float | None
    upper: float | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class FairnessAudit:
    """Per-group values of ``metric``, their spread, and how they were computed."""

    metric: str
    higher_is_better: bool | None
    groups: tuple[GroupMetric, ...]
    difference: Disparity
    ratio: Disparity
    confidence: float
    n_boot: int
    seed: int
    engine: str

    @property
    def worst_group(self) -> str | None:
        """The compared group with the worst value (None when the metric has no direction)."""
        compared = [g for g in self.groups if g.in_comparison and g.value is not None]
        if self.higher_is_better is None or not compared:
            return None
        pick = min if self.higher_is_better else max
        return pick(compared, key=lambda g: g.value or 0.0).group

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "groups": [g.to_dict() for g in self.groups],
            "difference": self.difference.to_dict(),
            "ratio": self.ratio.to_dict(),
            "worst_group": self.worst_group,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "engine": self.engine,
        }


def fairness_audit(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    metric: str,
    y_proba: npt.ArrayLike | None = None,
    n_boot: int = 500,
    seed: int = 0,
    confidence: float = 0.95,
    pos_label: Any = None,
    min_group_size: int = 20,
) -> FairnessAudit:
    """Audit ``metric`` across the groups of a protected attribute.

    ``y_proba`` (probability of ``pos_label``, 1-D or the last column of (n, 2)) is needed
    for ``roc_auc`` only. ``pos_label`` defaults to the larger of the two labels seen.
    Raises :class:`InvalidInputError` on malformed input and :class:`StatisticsError` on
    an empty sample.
    """
    _check_options(metric, n_boot, seed, confidence, min_group_size)
    data = _Data.of(y_true, y_pred, groups, y_proba=y_proba, metric=metric, pos_label=pos_label)
    names, codes = _group_codes(data.groups)
    values, engine = _point_values(data, names, codes, metric)
    replicates = _bootstrap(data, codes, len(names), metric=metric, n_boot=n_boot, seed=seed)
    alpha = (1.0 - confidence) / 2.0
    out: list[GroupMetric] = []
    for g, name in enumerate(names):
        n = int((codes == g).sum())
        value = _finite(values[g])
        lo, hi = _interval(replicates[:, g], alpha)
        reason = None if value is not None else _why_undefined(metric)
        small = n < min_group_size
        if small and value is not None:
            reason = f"{n} rows, fewer than {min_group_size}: left out of the comparison"
        out.append(GroupMetric(name, n, value, lo, hi, reason, not small and value is not None))
    compared = np.array([g.in_comparison for g in out], dtype=bool)
    difference, ratio = _disparities(np.asarray(values, dtype=float), replicates, compared, alpha)
    return FairnessAudit(
        metric, METRICS[metric], tuple(out), difference, ratio, confidence, n_boot, seed, engine
    )


@dataclass(frozen=True)
class _Data:
    y: npt.NDArray[Any]
    pred: npt.NDArray[Any]
    proba: FloatArray | None
    groups: npt.NDArray[Any]
    pos: Any

    @classmethod
    def of(
        cls,
        y_true: npt.ArrayLike,
        y_pred: npt.ArrayLike,
        groups: npt.ArrayLike,
        *,
        y_proba: npt.ArrayLike | None,
        metric: str,
        pos_label: Any,
    ) -> _Data:
        if metric in _REGRESSION:
            y: npt.NDArray[Any] = as_finite(y_true, "y_true")
            pred: npt.NDArray[Any] = as_finite(y_pred, "y_pred")
        else:
            y, pred = as_labels(y_true, "y_true"), as_labels(y_pred, "y_pred")
            if _numeric(y) != _numeric(pred):
                raise InvalidInputError(
                    f"y_true and y_pred hold labels of mixed kinds ({y.dtype}, {pred.dtype})"
                )
        try:
            group_arr = np.asarray(groups, dtype=object)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"groups is not an array: {exc}") from exc
        if group_arr.ndim != 1:
            raise InvalidInputError(f"groups must be 1-D, got shape {group_arr.shape}")
        if not (len(y) == len(pred) == len(group_arr)):
            raise InvalidInputError(
                f"y_true, y_pred and groups differ in length: {len(y)}, {len(pred)}, "
                f"{len(group_arr)}"
            )
        if len(y) == 0:
            raise StatisticsError("a fairness audit needs at least one row")
        proba = None
        if metric == "roc_auc":
            if y_proba is None:
                raise InvalidInputError("roc_auc needs y_proba (probability of the positive class)")
            proba = as_finite(y_proba, "y_proba", ndim=None)
            if proba.ndim == 2 and proba.shape[1] == 2:
                proba = proba[:, 1]
            if proba.ndim != 1 or len(proba) != len(y):
                raise InvalidInputError(f"y_proba must have shape ({len(y)},) or ({len(y)}, 2)")
            if bool((proba < 0).any()) or bool((proba > 1).any()):
                raise InvalidInputError("y_proba must lie in [0, 1]")
        pos = None if metric in _REGRESSION else _positive(y, pred, pos_label, metric)
        return cls(y, pred, proba, group_arr, pos)


def _check_options(
    metric: str, n_boot: int, seed: int, confidence: float, min_group_size: int
) -> None:
    if metric not in METRICS:
        raise InvalidInputError(f"unknown fairness metric {metric!r}; use one of {list(METRICS)}")
    for name, value, low in (("n_boot", n_boot, 0), ("seed", seed, 0), ("min_group_size",
                             min_group_size, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"{name} must be an int >= {low}, got {value!r}")
    if n_boot > 100_000:
        raise InvalidInputError(f"n_boot must be at most 100000, got {n_boot}")
    if isinstance(confidence, bool) or not isinstance(confidence, float | int):
        raise InvalidInputError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not (0.0 < float(confidence) < 1.0):
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")


def _positive(y: npt.NDArray[Any], pred: npt.NDArray[Any], pos_label: Any, metric: str) -> Any:
    try:
        labels = np.unique(np.concatenate([y, pred]))
    except TypeError as exc:
        raise InvalidInputError(f"labels of mixed, unorderable types: {exc}") from exc
    if pos_label is not None:
        if metric != "accuracy" and pos_label not in labels.tolist():
            raise InvalidInputError(f"pos_label {pos_label!r} is not among the labels seen")
        return pos_label
    if metric != "accuracy" and len(labels) > 2:
        raise InvalidInputError(
            f"{metric} needs a binary task; got {len(labels)} labels (accuracy works for any)"
        )
    return labels[-1].item() if isinstance(labels[-1], np.generic) else labels[-1]


def _numeric(labels: npt.NDArray[Any]) -> bool:
    return labels.dtype.kind in "biuf"


def _group_codes(groups: npt.NDArray[Any]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """Group names (text, sorted; missing values pooled as ``(missing)``) and row codes."""
    text = np.array([MISSING_GROUP if is_missing(v) else str(v) for v in groups], dtype=object)
    names, codes = np.unique(text.astype(str), return_inverse=True)
    return [str(n) for n in names], np.asarray(codes.reshape(-1), dtype=np.intp)


def _sklearn_metric(metric: str, pos: Any) -> Callable[..., float]:
    """The scikit-learn (or Fairlearn-equivalent) function giving ``metric``."""

    def rate(y: Any, p: Any, *, of: str, among: str | None) -> float:
        hit = (p == pos) if of == "pred" else (p != pos)
        mask = np.ones(len(y), dtype=bool) if among is None else (y == pos) == (among == "pos")
        return float(hit[mask].mean()) if mask.any() else math.nan

    table: dict[str, Callable[..., float]] = {
        "accuracy": skm.accuracy_score,
        "selection_rate": lambda y, p: rate(y, p, of="pred", among=None),
        "true_positive_rate": lambda y, p: skm.recall_score(
            y, p, pos_label=pos, zero_division=np.nan
        ),
        "false_negative_rate": lambda y, p: rate(y, p, of="not", among="pos"),
        "false_positive_rate": lambda y, p: rate(y, p, of="pred", among="neg"),
        "true_negative_rate": lambda y, p: rate(y, p, of="not", among="neg"),
        "precision": lambda y, p: skm.precision_score(y, p, pos_label=pos, zero_division=np.nan),
        "f1": lambda y, p: skm.f1_score(y, p, pos_label=pos, zero_division=np.nan),
        "roc_auc": lambda y, s: skm.roc_auc_score(np.asarray(y) == pos, s),
        "mae": skm.mean_absolute_error,
        "rmse": lambda y, p: math.sqrt(skm.mean_squared_error(y, p)),
        "mean_prediction": lambda _y, p: float(np.mean(p)),
    }
    fn = table[metric]

    def safe(y: Any, p: Any) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            try:
                return float(fn(np.asarray(y), np.asarray(p)))
            except ValueError:  # e.g. ROC AUC with one class in the group
                return math.nan

    return safe


def _point_values(
    data: _Data, names: list[str], codes: npt.NDArray[np.intp], metric: str
) -> tuple[list[float], str]:
    fn = _sklearn_metric(metric, data.pos)
    scores = data.proba if metric == "roc_auc" else data.pred
    try:
        from fairlearn.metrics import MetricFrame  # type: ignore[import-untyped]
    except ImportError:  # fairlearn is an extra: the same calls, group by group
        values = [fn(data.y[codes == g], scores[codes == g]) for g in range(len(names))]  # type: ignore[index]
        return values, "scikit-learn"
    # A named Series: Fairlearn misreads a one-row array as a 2-D feature table.
    sensitive = pd.Series(np.asarray(names, dtype=object)[codes], name="group")
    frame = MetricFrame(metrics=fn, y_true=data.y, y_pred=scores, sensitive_features=sensitive)
    by_group = frame.by_group
    return [float(by_group.loc[name]) for name in names], "fairlearn"


def _indicators(data: _Data, metric: str) -> tuple[FloatArray, FloatArray]:
    """Per-row numerator and denominator: the metric of weights ``w`` is w@num / w@den."""
    y, p, pos = data.y, data.pred, data.pos
    if metric in _REGRESSION:
        yf, pf = y.astype(np.float64), p.astype(np.float64)
        num = {"mae": np.abs(yf - pf), "rmse": (yf - pf) ** 2, "mean_prediction": pf}[metric]
        return np.asarray(num, dtype=np.float64), np.ones(len(y))
    actual, said = y == pos, p == pos
    tp, fp, fn = actual & said, ~actual & said, actual & ~said
    pairs = {
        "accuracy": (y == p, np.ones(len(y), dtype=bool)),
        "selection_rate": (said, np.ones(len(y), dtype=bool)),
        "true_positive_rate": (tp, actual),
        "false_negative_rate": (fn, actual),
        "false_positive_rate": (fp, ~actual),
        "true_negative_rate": (~actual & ~said, ~actual),
        "precision": (tp, said),
    }
    if metric == "f1":
        return 2.0 * tp, 2.0 * tp + fp + fn
    num, den = pairs[metric]
    return num.astype(np.float64), den.astype(np.float64)


def _bootstrap(
    data: _Data, codes: npt.NDArray[np.intp], n_groups: int, *, metric: str, n_boot: int, seed: int
) -> FloatArray:
    """(n_boot, n_groups) replicate values, NaN where a replicate is undefined."""
    out = np.full((n_boot, n_groups), np.nan)
    if n_boot == 0:
        return out
    rng = np.random.default_rng(seed)
    fn = _sklearn_metric(metric, data.pos) if metric == "roc_auc" else None
    num, den = _indicators(data, metric) if fn is None else (None, None)
    for g in range(n_groups):
        rows = np.flatnonzero(codes == g)
        weights = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=n_boot)
        if fn is None and num is not None and den is not None:
            top, bottom = weights @ num[rows], weights @ den[rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, g] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
            if metric == "rmse":
                out[:, g] = np.sqrt(out[:, g])
            continue
        y, s = data.y[rows], data.proba[rows] if data.proba is not None else data.pred[rows]
        for b in range(n_boot):
            keep = weights[b] > 0
            out[b, g] = _weighted_auc(y[keep] == data.pos, s[keep], weights[b][keep])
    return out


def _weighted_auc(positive: npt.NDArray[np.bool_], score: Any, weight: FloatArray) -> float:
    if positive.all() or not positive.any():
        return math.nan
    return float(skm.roc_auc_score(positive, score, sample_weight=weight))


def _interval(values: FloatArray, alpha: float) -> tuple[float | None, float | None]:
    """Percentile interval over defined replicates; None when under half are defined."""
    defined = values[np.isfinite(values)]
    if len(values) == 0 or len(defined) < max(2, len(values) / 2):
        return None, None
    lo, hi = np.quantile(defined, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _disparities(
    values: FloatArray, replicates: FloatArray, compared: npt.NDArray[np.bool_], alpha: float
) -> tuple[Disparity, Disparity]:
    if int(compared.sum()) < 2:
        why = "fewer than two groups with a defined value and enough rows"
        return Disparity(None, None, None, why), Disparity(None, None, None, why)
    point, reps = values[compared], replicates[:, compared]
    diff = Disparity(float(point.max() - point.min()), *_interval(_spread(reps, "diff"), alpha))
    if point.max() <= 0 or point.min() < 0:
        ratio = Disparity(None, None, None, "the ratio needs a positive largest value")
    else:
        ratio = Disparity(
            float(point.min() / point.max()), *_interval(_spread(reps, "ratio"), alpha)
        )
    return diff, ratio


def _spread(reps: FloatArray, kind: str) -> FloatArray:
    if reps.shape[0] == 0:
        return np.zeros(0)
    complete = np.isfinite(reps).all(axis=1)
    hi, lo = np.full(len(reps), np.nan), np.full(len(reps), np.nan)
    hi[complete], lo[complete] = reps[complete].max(axis=1), reps[complete].min(axis=1)
    if kind == "diff":
        diff: FloatArray = hi - lo
        return diff
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio: FloatArray = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), np.nan)
    return ratio


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _why_undefined(metric: str) -> str:
    return {
        "true_positive_rate": "no positive row in this group",
        "false_negative_rate": "no positive row in this group",
        "false_positive_rate": "no negative row in this group",
        "true_negative_rate": "no negative row in this group",
        "precision": "no positive prediction in this group",
        "f1": "no positive row or prediction in this group",
        "roc_auc": "only one class in this group",
    }.get(metric, "undefined in this group")
