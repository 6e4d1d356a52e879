"""Realized performance metrics, computed by scikit-learn, each with a sampling-error band.

:func:`realized_metrics` validates labels, predictions and probabilities, then calls
scikit-learn for every value; nothing here re-implements a metric. Each
:class:`MetricValue` also carries ``std_error``, the standard error of the metric at the
sample size given:

* closed form where one exists: accuracy ``sqrt(a(1-a)/n)``; binary precision
  ``sqrt(p(1-p)/n_predicted_positive)``; binary recall ``sqrt(r(1-r)/n_positive)``; binary
  ROC AUC by Hanley & McNeil (1982); log loss, MAE and MAPE as the standard error of a mean
  of per-row losses; RMSE by the delta method from the standard error of the MSE;
* a seeded bootstrap (``n_bootstrap`` resamples drawn as row weights, ``seed``) for F1 and
  for every averaged multiclass metric except accuracy and log loss.

A metric that is undefined for the data (ROC AUC with one class present, precision with
no positive prediction, MAPE with a zero target) has ``value=None`` and a ``reason``;
never NaN. Malformed input raises :class:`~livemodel.errors.InvalidInputError`; an empty
sample raises :class:`~livemodel.errors.StatisticsError`.

Multiclass precision, recall and F1 follow scikit-learn's ``zero_division=nan``: a class
whose value is undefined in this sample (never predicted, or absent) is left out of the
macro average rather than counted as 0.

>>> m = realized_metrics("binary", [0, 1, 1, 0], y_proba=[0.2, 0.9, 0.4, 0.1])
>>> m["accuracy"].value, m["roc_auc"].value
(0.75, 1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

from livemodel.errors import InvalidInputError, StatisticsError

Task = Literal["binary", "multiclass", "regression"]
Average = Literal["macro", "micro", "weighted"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

LABEL_METRICS = ("accuracy", "precision", "recall", "f1")
PROBA_METRICS = ("roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape")
_TASKS = ("binary", "multiclass", "regression")
_AVERAGES = ("macro", "micro", "weighted")


@dataclass(frozen=True)
class MetricValue:
    """A realized metric: ``value`` is None exactly when undefined, and ``reason`` says why."""

    value: float | None
    n: int
    reason: str | None = None
    std_error: float | None = None


@dataclass(frozen=True)
class EstimatedMetric:
    """A metric estimated without labels, with the band ``[lower, upper]`` at size ``n``."""

    value: float | None
    lower: float | None
    upper: float | None
    n: int
    std_error: float | None = None
    reason: str | None = None


def is_missing(value: object) -> bool:
    """True for None, float NaN and pandas' NA / NaT scalars (without importing pandas)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)


def as_labels(values: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
    """A 1-D label array with no missing value, or :class:`InvalidInputError`."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} is not an array of labels: {exc}") from exc
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and bool(np.isnan(arr).any()):
        raise InvalidInputError(f"{name} contains NaN; drop unlabelled rows first")
    if arr.dtype.kind == "O" and any(is_missing(v) for v in arr.tolist()):
        raise InvalidInputError(f"{name} contains missing values; drop them first")
    if arr.dtype.kind not in "biufOUS":
        raise InvalidInputError(f"{name} has unsupported label dtype {arr.dtype}")
    return arr


def as_finite(values: npt.ArrayLike, name: str, ndim: int | None = 1) -> FloatArray:
    """A float array (of rank ``ndim`` unless None) of finite values, or InvalidInputError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric: {exc}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not bool(np.isfinite(arr).all()):
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return arr


def as_probabilities(values: npt.ArrayLike, n_classes: int, name: str = "y_proba") -> FloatArray:
    """Probabilities as an (n, K) array: a 1-D binary input is the positive-class column.

    Rows must lie in [0, 1] and, for K columns, sum to 1 within 1e-5 (then renormalised).
    """
    arr = as_finite(values, name, ndim=None)
    if arr.ndim == 1 and n_classes == 2:
        arr = np.column_stack([1.0 - arr, arr])
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise InvalidInputError(f"{name} must have shape (n, {n_classes}), got {arr.shape}")
    if bool((arr < 0.0).any()) or bool((arr > 1.0).any()):
        raise InvalidInputError(f"{name} must lie in [0, 1]")
    sums = arr.sum(axis=1)
    if not bool(np.allclose(sums, 1.0, atol=1e-5, rtol=0.0)):
        raise InvalidInputError(f"rows of {name} must sum to 1")
    return np.asarray(arr / sums[:, None], dtype=np.float64)


def infer_classes(*arrays: npt.NDArray[Any] | None) -> list[Any]:
    """Sorted union of the labels seen, or :class:`InvalidInputError` for mixed types."""
    seen = [a for a in arrays if a is not None and a.size]
    try:
        return list(np.unique(np.concatenate(seen))) if seen else []
    except TypeError as exc:
        raise InvalidInputError(f"labels of mixed, unorderable types: {exc}") from exc


def encode(labels: npt.NDArray[Any], classes: Sequence[Any], name: str) -> IntArray:
    """Integer codes of ``labels`` in ``classes``; an unseen label raises InvalidInputError."""
    try:
        uniques, inverse = np.unique(labels, return_inverse=True)
    except TypeError as exc:
        raise InvalidInputError(f"{name} has labels of mixed types: {exc}") from exc
    index: dict[Any, int] = {}
    for i, c in enumerate(classes):
        index.setdefault(c, i)
    lut = np.empty(len(uniques), dtype=np.intp)
    for j, u in enumerate(uniques.tolist()):
        if u not in index:
            raise InvalidInputError(f"{name} has label {u!r} not among classes {list(classes)}")
        lut[j] = index[u]
    return np.asarray(lut[inverse.reshape(-1)], dtype=np.intp)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _mean_se(losses: FloatArray) -> float | None:
    return float(np.std(losses, ddof=1) / math.sqrt(losses.size)) if losses.size > 1 else None


def _bootstrap_se(
    fn: Callable[[FloatArray], float], counts: npt.NDArray[np.int64], n_bootstrap: int, seed: int
) -> float | None:
    """Std of ``fn(weights)`` over seeded resamples of rows that occur ``counts`` times.

    A resample is drawn as multinomial weights over the distinct rows, so label metrics
    bootstrap over the few cells of the confusion matrix whatever the sample size.
    """
    rng = np.random.default_rng(seed)
    n = int(counts.sum())
    values: list[float] = []
    for _ in range(n_bootstrap):
        weights = rng.multinomial(n, counts / n).astype(np.float64)
        with warnings.catch_warnings():
            # A resample can lose a class; that replicate is undefined and skipped.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            try:
                value = float(fn(weights))
            except ValueError:
                continue
        if math.isfinite(value):
            values.append(value)
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n)


@dataclass(frozen=True)
class _Classified:
    true: IntArray
    pred: IntArray | None
    proba: FloatArray | None
    n_classes: int
    average: Average
    n_bootstrap: int
    seed: int


def _label_metric(c: _Classified, metric: str) -> MetricValue:
    if c.pred is None:
        raise InvalidInputError(f"{metric} needs y_pred or y_proba")
    t, p, n = c.true, c.pred, c.true.size
    if metric == "accuracy":
        acc = float(skm.accuracy_score(t, p))
        return MetricValue(acc, n, std_error=_binomial_se(acc, n))
    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
    binary = c.n_classes == 2
    kwargs: dict[str, Any] = {"zero_division": np.nan}
    if binary:
        kwargs |= {"average": "binary", "pos_label": 1}
        n_pos, n_pred = int((t == 1).sum()), int((p == 1).sum())
        if metric == "precision" and n_pred == 0:
            return MetricValue(None, n, "no positive prediction: precision undefined")
        if metric == "recall" and n_pos == 0:
            return MetricValue(None, n, "no positive label: recall undefined")
        if metric == "f1" and n_pos == 0 and n_pred == 0:
            return MetricValue(None, n, "no positive label or prediction: F1 undefined")
    else:
        kwargs |= {"average": c.average, "labels": list(range(c.n_classes))}
    value = _finite_or_none(float(fn(t, p, **kwargs)))
    if value is None:
        return MetricValue(None, n, f"{metric} undefined for every class in this sample")
    if binary and metric == "precision":
        return MetricValue(value, n, std_error=_binomial_se(value, n_pred))
    if binary and metric == "recall":
        return MetricValue(value, n, std_error=_binomial_se(value, n_pos))
    cells, counts = np.unique(np.column_stack([t, p]), axis=0, return_counts=True)
    se = _bootstrap_se(
        lambda w: float(fn(cells[:, 0], cells[:, 1], sample_weight=w, **kwargs)),
        counts,
        c.n_bootstrap,
        c.seed,
    )
    return MetricValue(value, n, std_error=se)


def _proba_metric(c: _Classified, metric: str) -> MetricValue:
    if c.proba is None:
        raise InvalidInputError(f"{metric} needs y_proba")
    t, proba, n, k = c.true, c.proba, c.true.size, c.n_classes
    if metric == "log_loss":
        value = float(skm.log_loss(t, proba, labels=list(range(k))))
        eps = np.finfo(proba.dtype).eps  # the clipping scikit-learn applies
        per_row = -np.log(np.clip(proba[np.arange(n), t], eps, 1.0))
        return MetricValue(value, n, std_error=_mean_se(per_row))
    counts = np.bincount(t, minlength=k)
    if k == 2:
        if counts.min() == 0:
            return MetricValue(None, n, "only one class present: ROC AUC undefined")
        auc = float(skm.roc_auc_score(t, proba[:, 1]))
        return MetricValue(auc, n, std_error=_hanley_mcneil_se(auc, counts[1], counts[0]))
    if c.average == "micro":
        onehot = label_binarize(t, classes=list(range(k)))

        def score(w: FloatArray | None) -> float:
            return float(skm.roc_auc_score(onehot, proba, average="micro", sample_weight=w))
    else:
        absent = [i for i in range(k) if counts[i] == 0]
        if absent:
            return MetricValue(None, n, f"class index {absent} absent: one-vs-rest AUC undefined")

        def score(w: FloatArray | None) -> float:
            return float(
                skm.roc_auc_score(
                    t, proba, multi_class="ovr", average=c.average, labels=list(range(k)),
                    sample_weight=w,
                )
            )  # fmt: skip

    value = score(None)
    ones = np.ones(n, dtype=np.int64)
    return MetricValue(value, n, std_error=_bootstrap_se(score, ones, c.n_bootstrap, c.seed))


def _regression_metric(y: FloatArray, yhat: FloatArray, metric: str) -> MetricValue:
    n = y.size
    with np.errstate(over="ignore", invalid="ignore"):
        err = y - yhat
        if metric == "mae":
            value, se = float(skm.mean_absolute_error(y, yhat)), _mean_se(np.abs(err))
        elif metric == "rmse":
            value = float(skm.root_mean_squared_error(y, yhat))
            mse_se = _mean_se(err * err)
            se = None if mse_se is None else (0.0 if value == 0 else mse_se / (2.0 * value))
        else:
            if bool((y == 0).any()):
                return MetricValue(None, n, "y_true contains 0: MAPE undefined")
            value = float(skm.mean_absolute_percentage_error(y, yhat))
            se = _mean_se(np.abs(err / y))
    if not math.isfinite(value):
        return MetricValue(None, n, f"{metric} overflowed: values too large")
    return MetricValue(value, n, std_error=None if se is None else _finite_or_none(se))


def _pick_metrics(
    metrics: Sequence[str] | None, allowed: tuple[str, ...], available: tuple[str, ...]
) -> tuple[str, ...]:
    if metrics is None:
        return available
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise InvalidInputError(f"unknown metrics {unknown}; choose from {list(allowed)}")
    return tuple(dict.fromkeys(metrics))


def realized_metrics(
    task: Task,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    y_proba: npt.ArrayLike | None = None,
    *,
    classes: Sequence[Any] | None = None,
    metrics: Sequence[str] | None = None,
    average: Average = "macro",
    threshold: float = 0.5,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """Metrics of predictions against labels, keyed by metric name.

    Classification: ``classes`` orders the columns of ``y_proba`` (default: sorted labels
    seen; for binary 0/1 labels ``[0, 1]``); a binary 1-D ``y_proba`` is the probability
    of ``classes[1]``. Without ``y_pred``, labels are derived from ``y_proba``
    (``>= threshold`` for binary, argmax for multiclass). ``metrics`` defaults to every
    metric the inputs allow. Regression needs ``y_pred``.
    """
    if task not in _TASKS:
        raise InvalidInputError(f"task must be one of {_TASKS}, got {task!r}")
    if average not in _AVERAGES:
        raise InvalidInputError(f"average must be one of {_AVERAGES}, got {average!r}")
    if not 0.0 < threshold < 1.0:
        raise InvalidInputError(f"threshold must lie in (0, 1), got {threshold}")
    if task == "regression":
        if y_proba is not None or classes is not None:
            raise InvalidInputError("regression takes neither y_proba nor classes")
        if y_pred is None:
            raise InvalidInputError("regression metrics need y_pred")
        y, yhat = as_finite(y_true, "y_true"), as_finite(y_pred, "y_pred")
        _check_lengths(y.size, yhat.size)
        names = _pick_metrics(metrics, REGRESSION_METRICS, REGRESSION_METRICS)
        return {m: _regression_metric(y, yhat, m) for m in names}

    truth = as_labels(y_true, "y_true")
    pred = None if y_pred is None else as_labels(y_pred, "y_pred")
    if pred is None and y_proba is None:
        raise InvalidInputError("classification metrics need y_pred or y_proba")
    for other in (pred, y_proba):
        if other is not None:
            _check_lengths(truth.size, np.shape(other)[0] if np.ndim(other) else -1)
    classes = _resolve_classes(task, classes, truth, pred, y_proba)
    k = len(classes)
    true_codes = encode(truth, classes, "y_true")
    proba = None if y_proba is None else as_probabilities(y_proba, k)
    pred_codes = None if pred is None else encode(pred, classes, "y_pred")
    if pred_codes is None and proba is not None:
        pred_codes = _labels_from_proba(proba, threshold)
    available = (LABEL_METRICS if pred_codes is not None else ()) + (
        PROBA_METRICS if proba is not None else ()
    )
    names = _pick_metrics(metrics, LABEL_METRICS + PROBA_METRICS, available)
    data = _Classified(true_codes, pred_codes, proba, k, average, n_bootstrap, seed)
    return {
        m: _label_metric(data, m) if m in LABEL_METRICS else _proba_metric(data, m) for m in names
    }


def _labels_from_proba(proba: FloatArray, threshold: float) -> IntArray:
    if proba.shape[1] == 2:
        return np.asarray(proba[:, 1] >= threshold, dtype=np.intp)
    return np.asarray(np.argmax(proba, axis=1), dtype=np.intp)


def _check_lengths(n_true: int, n_other: int) -> None:
    if n_true != n_other:
        raise InvalidInputError(f"length mismatch: {n_true} labels vs {n_other} predictions")
    if n_true == 0:
        raise StatisticsError("no rows: metrics are undefined for an empty sample")


def _resolve_classes(
    task: Task,
    classes: Sequence[Any] | None,
    truth: npt.NDArray[Any],
    pred: npt.NDArray[Any] | None,
    y_proba: npt.ArrayLike | None,
) -> list[Any]:
    if classes is not None:
        resolved = list(classes)
        if len(set(resolved)) != len(resolved):
            raise InvalidInputError(f"classes must be distinct, got {resolved}")
    else:
        resolved = infer_classes(truth, pred)
        if task == "binary" and len(resolved) == 1 and resolved[0] in (0, 1):
            resolved = [type(resolved[0])(0), type(resolved[0])(1)]
        width = np.shape(y_proba)[1] if y_proba is not None and np.ndim(y_proba) == 2 else None
        if width is not None and width != len(resolved):
            raise InvalidInputError(
                f"y_proba has {width} columns but {len(resolved)} labels were seen: pass classes="
            )
    if task == "binary" and len(resolved) != 2:
        raise InvalidInputError(f"binary task needs exactly 2 classes, got {resolved}")
    if task == "multiclass" and len(resolved) < 2:
        raise InvalidInputError(f"multiclass task needs at least 2 classes, got {resolved}")
    return resolved
