"""Confidence-Based Performance Estimation (CBPE): classifier performance without labels.

The method is NannyML's. On a labelled reference, check whether the model's scores are
calibrated and, when isotonic regression lowers the expected calibration error on held-out
splits, fit a calibrator (multiclass: one per class, one-vs-rest, rows then renormalised).
On an unlabelled window, the calibrated probability ``q`` of each row is the chance its
label is each class. The *decision* of each row is the label the model gave it (its logged
``predict`` output): no threshold is assumed, so a model deciding at 0.8, a tuned threshold
or a cost-sensitive rule is estimated on what it actually decided. Then

* the expected confusion matrix is ``sum_i q_i ⊗ onehot(decision_i)`` (rows: true class,
  columns: decided class); expected accuracy is ``mean_i q_i[decision_i]`` (binary: ``p``
  where the decision is positive, ``1 - p`` where it is negative), and precision, recall
  and F1 are ratios of expected counts;
* ROC AUC is the area under the expected ROC curve: the model's raw scores rank the rows and
  every row counts as a positive with weight ``q`` and as a negative with weight ``1 - q``
  (it needs no decision).

The band is NannyML's idea — ``value ± band_sigmas · sampling error`` of the realized metric
at the window's size (NannyML: ``± 3 ·``) — with the sampling error found by a seeded
parametric bootstrap on the window itself: ``n_simulations`` label sets are drawn from the
calibrated probabilities, each realized metric is computed exactly against the window's
decisions (see :mod:`livemodel.stats.expected`). When a calibrator is used,
``n_calibration_draws`` calibrators fitted on bootstrap resamples of the reference give the
spread the calibrator's own error adds; the two standard deviations add in quadrature and
the band is clipped to [0, 1]. NannyML instead scales the spread of the metric's components
on the reference by ``1 / sqrt(n)``; simulating on the window adapts the band to the
window's own scores and decisions. Cost is ``O(n_simulations · n · K)`` plus one point
estimate per calibration draw.

Assumption and known limit: CBPE is right under covariate shift, while ``P(y | x)`` — and
so the calibration learned on the reference — stays fixed. Under concept drift the
calibrated probabilities are wrong and the estimate keeps reporting the reference-like
performance while the realized metric leaves the band; only labels reveal that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedShuffleSplit

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.expected import (
    expected_auc,
    expected_confusion,
    label_scores,
    simulated_auc,
    simulated_confusions,
)
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
DECISION_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})
_ECE_BINS = 10
_CALIBRATION_SPLITS = 10


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


@dataclass(frozen=True)
class EstimatedConfusion:
    """Expected confusion counts of a window, ``counts[true, decided]`` in ``classes`` order,
    with the band ``counts ± band_sigmas · std_error`` (clipped to [0, n])."""

    classes: tuple[Any, ...]
    counts: FloatArray
    lower: FloatArray
    upper: FloatArray
    std_error: FloatArray
    n: int


class CBPE:
    """Estimate classification metrics on unlabelled windows from calibrated probabilities
    and the decisions the model made.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(size=2000)
    >>> y = rng.uniform(size=2000) < p
    >>> cbpe = CBPE(metrics=("accuracy",)).fit(y, p)
    >>> window = rng.uniform(size=500)
    >>> acc = cbpe.estimate(window, window >= 0.8)["accuracy"]  # a model deciding at 0.8
    >>> acc.lower < 0.66 < acc.upper  # the truth: E[p if p >= 0.8 else 1 - p] = 0.66
    True
    """

    def __init__(
        self,
        task: Literal["binary", "multiclass"] = "binary",
        *,
        metrics: Sequence[str] = CBPE_METRICS,
        calibration: Literal["isotonic", "always"] | None = "isotonic",
        average: Average = "macro",
        band_sigmas: float = 3.0,
        n_simulations: int = 300,
        n_calibration_draws: int = 20,
        seed: int = 0,
    ) -> None:
        self.task = task
        self.metrics = metrics
        self.calibration = calibration
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

    def decisions(self, y_pred: npt.ArrayLike) -> IntArray:
        """Class indices of the model's decisions (labels as logged; a label is matched to a
        class by value, else by its text, so ``"1"`` from a log matches class ``1``)."""
        classes = self._fitted_classes()
        labels = as_labels(y_pred, "y_pred")
        try:
            return encode(labels, classes, "y_pred")
        except InvalidInputError:
            by_text = {str(c): i for i, c in enumerate(classes)}
            texts = [str(v) for v in labels.tolist()]
            unknown = sorted({t for t in texts if t not in by_text})
            if unknown:
                raise InvalidInputError(
                    f"y_pred has labels {unknown[:5]} not among classes {list(classes)}"
                ) from None
            return np.asarray([by_text[t] for t in texts], dtype=np.intp)

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

    def _window(
        self, y_proba: npt.ArrayLike, y_pred: npt.ArrayLike | None, need_decisions: bool
    ) -> tuple[FloatArray, IntArray | None]:
        k = len(self._fitted_classes())
        raw = as_probabilities(y_proba, k)
        if raw.shape[0] == 0:
            raise StatisticsError("empty window: performance cannot be estimated")
        if y_pred is None:
            if need_decisions:
                raise InvalidInputError(
                    "accuracy, precision, recall, F1 and the confusion matrix need the model's "
                    "decisions: pass y_pred, the labels the model predicted"
                )
            return raw, None
        decided = self.decisions(y_pred)
        if decided.size != raw.shape[0]:
            raise InvalidInputError(f"{raw.shape[0]} probability rows but {decided.size} y_pred")
        return raw, decided

    def estimate(
        self, y_proba: npt.ArrayLike, y_pred: npt.ArrayLike | None = None
    ) -> dict[str, EstimatedMetric]:
        """Estimated metrics of an unlabelled window, keyed by metric name.

        ``y_pred`` holds the labels the model decided (its ``predict`` output, as logged);
        it is required for every metric but ROC AUC.
        """
        names = tuple(dict.fromkeys(self.metrics))
        label_names = [m for m in names if m in DECISION_METRICS]
        raw, decided = self._window(y_proba, y_pred, bool(label_names))
        n = raw.shape[0]
        q = self._calibrate(raw, self.calibrators_)
        point = self._point(raw, q, decided, names)
        drawn = [
            self._point(raw, self._calibrate(raw, d), decided, names)
            for d in self.calibration_draws_
        ]
        sims = {m: np.empty(0) for m in names}
        if label_names and decided is not None:
            conf = simulated_confusions(
                q, decided, self.n_simulations, np.random.default_rng(self.seed)
            )
            sims |= label_scores(conf, label_names, self.average)
        if "roc_auc" in names:
            sims["roc_auc"] = simulated_auc(raw, q, self.average, self.n_simulations, self.seed)
        return {
            m: self._result(m, point[m], sims[m], np.array([d[m] for d in drawn]), n) for m in names
        }

    def estimate_confusion(
        self, y_proba: npt.ArrayLike, y_pred: npt.ArrayLike
    ) -> EstimatedConfusion:
        """Expected confusion counts ``[true, decided]`` of an unlabelled window and their band.

        Binary, in NannyML's terms: ``TP = sum(q where decided 1)``, ``FP = sum(1 - q where
        decided 1)``, ``FN = sum(q where decided 0)``, ``TN = sum(1 - q where decided 0)``."""
        raw, decided = self._window(y_proba, y_pred, True)
        if decided is None:  # _window raised already; this narrows the type
            raise InvalidInputError("y_pred is required")
        n = raw.shape[0]
        q = self._calibrate(raw, self.calibrators_)
        counts = expected_confusion(q, decided)
        sims = simulated_confusions(
            q, decided, self.n_simulations, np.random.default_rng(self.seed)
        )
        se = np.std(sims, axis=0, ddof=1)
        drawn = [
            expected_confusion(self._calibrate(raw, d), decided) for d in self.calibration_draws_
        ]
        if len(drawn) > 1:
            se = np.hypot(se, np.std(np.stack(drawn), axis=0, ddof=1))
        half = self.band_sigmas * se
        return EstimatedConfusion(
            tuple(self.classes_), counts, np.clip(counts - half, 0.0, n),
            np.clip(counts + half, 0.0, n), se, n,
        )  # fmt: skip

    def _point(
        self, raw: FloatArray, q: FloatArray, decided: IntArray | None, names: Sequence[str]
    ) -> dict[str, float]:
        """Estimated metrics from calibrated probabilities ``q``: expected confusion and ROC."""
        out: dict[str, float] = {}
        if decided is not None:
            conf = expected_confusion(q, decided)[None]
            scores = label_scores(conf, [m for m in names if m in DECISION_METRICS], self.average)
            out = {m: float(v[0]) for m, v in scores.items()}
        if "roc_auc" in names:
            out["roc_auc"] = expected_auc(raw, q, self.average)
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
