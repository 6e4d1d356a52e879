"""Confidence-Based Performance Estimation (CBPE): classifier performance without labels.

The method is NannyML's. On a labelled reference, check whether the model's scores are
calibrated and, when isotonic regression lowers the expected calibration error on held-out
splits, fit a calibrator (multiclass: one per class, one-vs-rest, rows then renormalised).
On an unlabelled window, the calibrated probability ``q`` of each row is the chance its
label is each class, so

* the expected confusion matrix is ``sum_i q_i ⊗ onehot(prediction_i)``; expected
  accuracy, precision, recall and F1 are computed from it (ratios of expected counts);
* ROC AUC is the area under the expected ROC curve: the model's raw scores rank the rows and
  every row counts as a positive with weight ``q`` and as a negative with weight ``1 - q``.

Predicted labels come from the raw probabilities: ``>= threshold`` for binary, argmax for
multiclass.

The band is the sampling error of the realized metric at the window's size, found by a
seeded parametric bootstrap: ``n_simulations`` label sets are drawn from the calibrated
probabilities of the window itself, each realized metric is computed exactly (confusion
matrix; Mann-Whitney with mid-ranks for AUC, which equals scikit-learn's value). When a
calibrator is used, ``n_calibration_draws`` calibrators fitted on bootstrap resamples of
the reference give the spread the calibrator's own error adds; the two standard deviations
add in quadrature and the band is ``value ± band_sigmas · std_error``, clipped to [0, 1].
NannyML instead scales the std of the metric over reference chunks by ``sqrt(chunk / n)``;
simulating on the window adapts the band to the window's own score distribution. Cost is
``O(n_simulations · n · K)`` plus one point estimate per calibration draw.

Assumption and known limit: CBPE is right under covariate shift, while ``P(y | x)`` — and
so the calibration learned on the reference — stays fixed. Under concept drift the
calibrated probabilities are wrong and the estimate keeps reporting the reference-like
performance while the realized metric leaves the band; only labels reveal that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.metrics import (
    Average,
    EstimatedMetric,
    FloatArray,
    IntArray,
    as_labels,
    as_probabilities,
    encode,
    infer_classes,
)

CBPE_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
_ECE_BINS = 10
_CALIBRATION_SPLITS = 10
_SIM_CELLS = 4_000_000  # simulated label cells held in memory at once


def expected_calibration_error(y: npt.NDArray[np.bool_], p: FloatArray) -> float:
    """ECE over equal-count bins of ``p``: sum of |mean p - mean y| weighted by bin size."""
    bins = np.array_split(np.argsort(p, kind="stable"), min(_ECE_BINS, p.size))
    return float(sum(b.size * abs(p[b].mean() - y[b].mean()) for b in bins) / p.size)


def _needs_calibration(y: npt.NDArray[np.bool_], p: FloatArray, seed: int) -> bool:
    """True when isotonic calibration lowers the ECE on held-out splits (NannyML's check)."""
    splits = StratifiedShuffleSplit(_CALIBRATION_SPLITS, test_size=0.1, random_state=seed)
    raw, calibrated = [], []
    for train, test in splits.split(p.reshape(-1, 1), y):
        iso = _isotonic().fit(p[train], y[train])
        raw.append(expected_calibration_error(y[test], p[test]))
        calibrated.append(expected_calibration_error(y[test], iso.predict(p[test])))
    return float(np.mean(calibrated)) < float(np.mean(raw))


def _isotonic() -> IsotonicRegression:
    return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")


class CBPE:
    """Estimate classification metrics on unlabelled windows from calibrated probabilities.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> y = rng.uniform(size=2000) < p
    >>> est = CBPE(metrics=("accuracy",)).fit(y, p).estimate(rng.uniform(size=500))
    >>> acc = est["accuracy"]  # the truth is E[max(p, 1 - p)] = 0.75
    >>> acc.lower < 0.75 < acc.upper
    True
    """

    def __init__(
        self,
        task: Literal["binary", "multiclass"] = "binary",
        *,
        metrics: Sequence[str] = CBPE_METRICS,
        calibration: Literal["isotonic", "always"] | None = "isotonic",
        threshold: float = 0.5,
        average: Average = "macro",
        band_sigmas: float = 3.0,
        n_simulations: int = 300,
        n_calibration_draws: int = 20,
        seed: int = 0,
    ) -> None:
        self.task = task
        self.metrics = metrics
        self.calibration = calibration
        self.threshold = threshold
        self.average = average
        self.band_sigmas = band_sigmas
        self.n_simulations = n_simulations
        self.n_calibration_draws = n_calibration_draws
        self.seed = seed

    def _check_params(self) -> None:
        if self.task not in ("binary", "multiclass"):
            raise InvalidInputError(f"task must be 'binary' or 'multiclass', got {self.task!r}")
        unknown = [m for m in self.metrics if m not in CBPE_METRICS]
        if unknown or isinstance(self.metrics, str) or not self.metrics:
            raise InvalidInputError(f"metrics must be a non-empty subset of {CBPE_METRICS}")
        if self.calibration not in ("isotonic", "always", None):
            raise InvalidInputError(
                f"calibration must be 'isotonic', 'always' or None: {self.calibration!r}"
            )
        if not 0.0 < self.threshold < 1.0:
            raise InvalidInputError(f"threshold must lie in (0, 1), got {self.threshold}")
        if self.average not in ("macro", "micro", "weighted"):
            raise InvalidInputError(f"unknown average {self.average!r}")
        if not self.band_sigmas > 0 or self.n_simulations < 2 or self.n_calibration_draws < 0:
            raise InvalidInputError(
                "band_sigmas must be > 0, n_simulations >= 2 and n_calibration_draws >= 0"
            )

    def fit(
        self, y_true: npt.ArrayLike, y_proba: npt.ArrayLike, *, classes: Sequence[Any] | None = None
    ) -> CBPE:
        """Learn classes and, where needed, calibrators from a labelled reference.

        ``classes`` (default: sorted labels of ``y_true``) orders the columns of ``y_proba``;
        every class must occur in the reference at least twice.
        """
        self._check_params()
        labels = as_labels(y_true, "y_true")
        if labels.size == 0:
            raise StatisticsError("empty reference: CBPE cannot be fitted")
        resolved = list(classes) if classes is not None else infer_classes(labels)
        k = len(resolved)
        if len(set(resolved)) != k or (k != 2 if self.task == "binary" else k < 3):
            raise InvalidInputError(
                f"{self.task} CBPE needs {'2' if self.task == 'binary' else '3+'} distinct "
                f"classes, got {resolved}"
            )
        codes = encode(labels, resolved, "y_true")
        proba = as_probabilities(y_proba, k)
        if proba.shape[0] != codes.size:
            raise InvalidInputError(f"{codes.size} labels but {proba.shape[0]} probability rows")
        if int(np.bincount(codes, minlength=k).min()) < 2:
            raise InvalidInputError("every class must occur at least twice in the reference")
        columns = [1] if k == 2 else list(range(k))
        calibrators: dict[int, IsotonicRegression] = {}
        for c in columns if self.calibration in ("isotonic", "always") else []:
            try:
                needed = self.calibration == "always" or _needs_calibration(
                    codes == c, proba[:, c], self.seed
                )
            except ValueError as exc:  # too few rows for stratified held-out splits
                raise InvalidInputError(f"reference too small to check calibration: {exc}") from exc
            if needed:
                calibrators[c] = _isotonic().fit(proba[:, c], codes == c)
        rng = np.random.default_rng(self.seed)
        draws = []
        for _ in range(self.n_calibration_draws if calibrators else 0):
            rows = rng.integers(0, codes.size, codes.size)
            draws.append(
                {c: _isotonic().fit(proba[rows, c], codes[rows] == c) for c in calibrators}
            )
        self.classes_ = resolved
        self.calibrators_ = calibrators
        self.calibration_draws_ = draws
        self.n_reference_ = int(codes.size)
        return self

    def calibrate(self, y_proba: npt.ArrayLike) -> FloatArray:
        """Calibrated (n, K) probabilities; rows that calibrate to all zeros stay raw."""
        proba = as_probabilities(y_proba, len(self._fitted_classes()))
        return self._calibrate(proba, self.calibrators_)

    def _fitted_classes(self) -> list[Any]:
        if not hasattr(self, "classes_"):
            raise InvalidInputError("CBPE is not fitted: call fit(y_true, y_proba) first")
        return self.classes_

    @staticmethod
    def _calibrate(proba: FloatArray, calibrators: dict[int, IsotonicRegression]) -> FloatArray:
        out = proba.copy()
        for c, iso in calibrators.items():
            out[:, c] = iso.predict(proba[:, c])
        if out.shape[1] == 2:
            out[:, 0] = 1.0 - out[:, 1]
            return out
        sums = out.sum(axis=1, keepdims=True)
        return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), proba)

    def estimate(self, y_proba: npt.ArrayLike) -> dict[str, EstimatedMetric]:
        """Estimated metrics of an unlabelled window, keyed by metric name."""
        k = len(self._fitted_classes())
        raw = as_probabilities(y_proba, k)
        n = raw.shape[0]
        if n == 0:
            raise StatisticsError("empty window: performance cannot be estimated")
        if k == 2:
            pred = np.asarray(raw[:, 1] >= self.threshold, dtype=np.intp)
        else:
            pred = np.asarray(raw.argmax(axis=1), dtype=np.intp)
        names = tuple(dict.fromkeys(self.metrics))
        q = self._calibrate(raw, self.calibrators_)
        point = self._point(raw, q, pred, names)
        drawn = [
            self._point(raw, self._calibrate(raw, d), pred, names) for d in self.calibration_draws_
        ]
        sims = {m: np.empty(0) for m in names}
        label_names = [m for m in names if m != "roc_auc"]
        if label_names:
            parts = [
                _label_scores(c, label_names, self.average) for c in self._simulate(q, pred, k)
            ]
            sims |= {m: np.concatenate([p[m] for p in parts]) for m in label_names}
        if "roc_auc" in names:
            sims["roc_auc"] = _simulated_auc(raw, q, self.average, self.n_simulations, self.seed)
        return {
            m: self._result(m, point[m], sims[m], np.array([d[m] for d in drawn]), n) for m in names
        }

    def _point(
        self, raw: FloatArray, q: FloatArray, pred: IntArray, names: Sequence[str]
    ) -> dict[str, float]:
        """Estimated metrics from calibrated probabilities ``q``: expected confusion and ROC."""
        conf = (q.T @ np.eye(q.shape[1])[pred])[None]
        scores = _label_scores(conf, [m for m in names if m != "roc_auc"], self.average)
        out = {m: float(v[0]) for m, v in scores.items()}
        if "roc_auc" in names:
            out["roc_auc"] = _expected_auc(raw, q, self.average)
        return out

    def _simulate(self, q: FloatArray, pred: IntArray, k: int) -> list[FloatArray]:
        """Confusion matrices of label sets drawn from ``q``, in memory-bounded batches."""
        rng = np.random.default_rng(self.seed)
        n = q.shape[0]
        batch = max(1, _SIM_CELLS // (n * k))
        cum = np.cumsum(q, axis=1)[:, :-1]
        out = []
        for start in range(0, self.n_simulations, batch):
            b = min(batch, self.n_simulations - start)
            labels = _draw_labels(rng, cum, b)
            cells = labels * k + pred[None, :] + (np.arange(b) * k * k)[:, None]
            counts = np.bincount(cells.ravel(), minlength=b * k * k)
            out.append(counts.reshape(b, k, k).astype(np.float64))
        return out

    def _result(
        self, metric: str, value: float, sims: FloatArray, drawn: FloatArray, n: int
    ) -> EstimatedMetric:
        """Value and band; the std error adds sampling and calibration spread in quadrature."""
        if not np.isfinite(value):
            return EstimatedMetric(None, None, None, n, None, _UNDEFINED[metric])
        defined = np.isfinite(sims)
        if 2 * int(defined.sum()) < sims.size or sims.size < 2:
            reason = f"{metric} would be undefined for most label sets of this window"
            return EstimatedMetric(None, None, None, n, None, reason)
        sims, drawn = sims[defined], drawn[np.isfinite(drawn)]
        se = float(np.std(sims, ddof=1))
        if drawn.size > 1:
            se = float(np.hypot(se, np.std(drawn, ddof=1)))
        half = self.band_sigmas * se
        return EstimatedMetric(value, max(0.0, value - half), min(1.0, value + half), n, se)


_UNDEFINED = {
    "accuracy": "accuracy undefined",
    "precision": "no row is predicted in the class: precision undefined",
    "recall": "the class has zero expected occurrences: recall undefined",
    "f1": "no expected occurrence nor prediction: F1 undefined",
    "roc_auc": "only one class is expected: ROC AUC undefined",
}


def _draw_labels(rng: np.random.Generator, cum: FloatArray, b: int) -> IntArray:
    """``b`` label draws per row from categorical distributions with cumulative ``cum``."""
    u = rng.random((b, cum.shape[0], 1))
    return np.asarray((u > cum[None]).sum(axis=2), dtype=np.intp)


def _average(values: FloatArray, weights: FloatArray, average: Average) -> FloatArray:
    """Macro or support-weighted mean over the last axis, skipping undefined classes."""
    defined = np.isfinite(values)
    w = np.where(defined, weights if average == "weighted" else 1.0, 0.0)
    total = w.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (np.where(defined, values, 0.0) * w).sum(axis=-1) / total
    return np.asarray(mean, dtype=np.float64)


def _label_scores(conf: FloatArray, names: Sequence[str], average: Average) -> dict[str, Any]:
    """Accuracy/precision/recall/F1 from (..., K, K) confusion matrices [true, predicted]."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    predicted, actual = conf.sum(axis=-2), conf.sum(axis=-1)
    out: dict[str, Any] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "accuracy" in names:
            out["accuracy"] = tp.sum(-1) / conf.sum(axis=(-2, -1))
        per_class = {
            "precision": (tp, predicted),
            "recall": (tp, actual),
            "f1": (2 * tp, predicted + actual),
        }
        for name in (m for m in names if m in per_class):
            num, den = per_class[name]
            if conf.shape[-1] == 2:
                out[name] = num[..., 1] / den[..., 1]
            elif average == "micro":
                out[name] = num.sum(-1) / den.sum(-1)
            else:
                out[name] = _average(num / den, actual, average)
    return out


def _binary_expected_auc(score: FloatArray, weight: FloatArray) -> float:
    """Area under the expected ROC curve: each row a positive with weight q, else negative."""
    if weight.sum() <= 0 or (1.0 - weight).sum() <= 0:
        return float("nan")
    y = np.r_[np.ones(score.size), np.zeros(score.size)]
    return float(roc_auc_score(y, np.r_[score, score], sample_weight=np.r_[weight, 1 - weight]))


def _expected_auc(raw: FloatArray, q: FloatArray, average: Average) -> float:
    """Expected ROC AUC: binary, one-vs-rest averaged, or micro over the flattened matrix."""
    k = q.shape[1]
    if k == 2:
        return _binary_expected_auc(raw[:, 1], q[:, 1])
    if average == "micro":
        return _binary_expected_auc(raw.ravel(), q.ravel())
    per_class = np.array([_binary_expected_auc(raw[:, c], q[:, c]) for c in range(k)])
    return float(_average(per_class, q.sum(axis=0), average))


def _simulated_auc(
    raw: FloatArray, q: FloatArray, average: Average, n_simulations: int, seed: int
) -> FloatArray:
    """Realized ROC AUC of label sets drawn from q (Mann-Whitney with mid-ranks)."""
    n, k = q.shape
    rng = np.random.default_rng(seed + 1)
    cum = np.cumsum(q, axis=1)[:, :-1]
    flat_ranks = rankdata(raw.ravel()).reshape(n, k) if average == "micro" and k > 2 else None
    ranks = np.column_stack([rankdata(raw[:, c]) for c in range(k)])
    batch = max(1, _SIM_CELLS // (n * k))
    out = []
    for start in range(0, n_simulations, batch):
        labels = _draw_labels(rng, cum, min(batch, n_simulations - start))
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
        out.append(
            per_class[:, 0] if k == 2 else _average(per_class, np.stack(support, -1), average)
        )
    return np.asarray(np.concatenate(out), dtype=np.float64)
