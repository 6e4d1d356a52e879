"""Calculators on rows: realized and estimated performance, multivariate drift.

They read the window's bounded row samples (see :mod:`livemodel.monitor.summary`), so
their cost is bounded whatever the window's size.

* :class:`RealizedPerformance`: scikit-learn metrics on the labelled rows, with the band
  ``value ± band_sigmas · std_error``; the threshold is the metric on the reference
  sample and the alert means the window is significantly worse (the band lies entirely
  on the bad side of it).
* :class:`EstimatedPerformance`: CBPE (classifiers with probabilities) or DLE
  (regression), fitted on the reference sample, estimated on all rows of the window,
  labelled or not. The band is the sampling band of the realized metric at the window's
  size; the alert means the reference's value lies outside it, on the good side.
* :class:`MultivariateDrift`: mean PCA reconstruction error against its reference band.

A method that cannot run (no labels, no probabilities, too small a reference, an empty
window) gives results with ``value=None`` and a ``reason``; it never raises on data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.monitor.calculators import _check_fitted
from livemodel.monitor.reference import PREDICTION, MonitorReference
from livemodel.monitor.results import ESTIMATED, MULTIVARIATE, REALIZED, MetricResult
from livemodel.monitor.summary import WindowSummary
from livemodel.stats.cbpe import CBPE
from livemodel.stats.dle import DLE
from livemodel.stats.metrics import FloatArray, realized_metrics
from livemodel.stats.multivariate import PCAReconstructionDrift

__all__ = ["EstimatedPerformance", "MultivariateDrift", "RealizedPerformance"]

CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "precision", "recall", "f1")
REGRESSION_METRICS = ("mae", "rmse")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "mape", "log_loss"})
_BOUNDED = frozenset({"accuracy", "roc_auc", "precision", "recall", "f1"})
_ROW_ERRORS = (InvalidInputError, StatisticsError)


def _metrics_for(task: str | None) -> tuple[str, ...]:
    if task == "regression":
        return REGRESSION_METRICS
    return CLASSIFICATION_METRICS if task in ("binary", "multiclass") else ()


class _Outputs:
    """Labels, predicted labels/values and probabilities of rows, cleaned for the metrics.

    Only rows with a model output are kept: a failure the log records with no outputs (a
    row a version failed on with no fallback answering it) is never a prediction here,
    and is counted in ``dropped``."""

    def __init__(self, rows: pd.DataFrame, reference: MonitorReference, labelled: bool) -> None:
        keep = np.zeros(len(rows), dtype=bool)
        if PREDICTION in rows.columns:
            keep = rows[PREDICTION].notna().to_numpy(dtype=bool, copy=True)
        probas = list(reference.proba_columns)
        if probas:
            values = rows[probas].apply(pd.to_numeric, errors="coerce")
            keep = keep & np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan)).all(
                axis=1
            )
        if labelled and reference.target is not None:
            keep = keep & rows[reference.target].notna().to_numpy(dtype=bool)
        self.dropped = int((~keep).sum())
        kept = rows[keep]
        self.n = len(kept)
        self.rows = kept
        self.y_true: Any = (
            kept[reference.target].to_numpy() if labelled and reference.target else None
        )
        if reference.task == "regression":
            self.y_pred = pd.to_numeric(kept[PREDICTION], errors="coerce").to_numpy(np.float64)
        else:
            self.y_pred = kept[PREDICTION].to_numpy(dtype=object)
        self.proba: FloatArray | None = None
        if probas:
            self.proba = kept[probas].to_numpy(dtype=np.float64, na_value=np.nan)
        if reference.task == "regression" and self.y_true is not None:
            self.y_true = np.asarray(self.y_true, dtype=np.float64)


def _realized(
    reference: MonitorReference, out: _Outputs, metrics: Sequence[str], n_bootstrap: int
) -> dict[str, Any]:
    task = reference.task
    if task is None:
        raise InvalidInputError("the model has no task")
    proba = out.proba
    if proba is not None and task == "binary":
        proba = proba[:, 1]
    wanted = [m for m in metrics if m != "roc_auc" or proba is not None]
    return realized_metrics(
        task, out.y_true, out.y_pred if task == "regression" else out.y_pred.astype(object),
        None if task == "regression" else proba,
        classes=None if reference.classes is None else list(reference.classes),
        metrics=wanted, n_bootstrap=n_bootstrap,
    )  # fmt: skip


def _alert(metric: str, lower: float | None, upper: float | None, threshold: float | None) -> bool:
    """Significantly worse than ``threshold``: the whole band is on its bad side."""
    if threshold is None:
        return False
    if metric in LOWER_IS_BETTER:
        return lower is not None and lower > threshold
    return upper is not None and upper < threshold


def _reference_values(reference: MonitorReference, metrics: Sequence[str]) -> dict[str, float]:
    if not reference.has_labels:
        return {}
    try:
        out = _Outputs(reference.sample, reference, labelled=True)
        values = _realized(reference, out, metrics, n_bootstrap=2)
    except _ROW_ERRORS:
        return {}
    return {name: m.value for name, m in values.items() if m.value is not None}


class RealizedPerformance:
    """Metrics on the labelled rows of a window, against the reference's values."""

    name = REALIZED

    def __init__(
        self, metrics: Sequence[str] | None = None, *, band_sigmas: float = 3.0,
        n_bootstrap: int = 40,
    ) -> None:  # fmt: skip
        self.metrics = metrics
        self.band_sigmas = band_sigmas
        self.n_bootstrap = n_bootstrap

    def fit(self, reference: MonitorReference) -> Self:
        if not self.band_sigmas > 0:
            raise InvalidInputError("band_sigmas must be > 0")
        self.reference_ = reference
        self.metrics_ = tuple(self.metrics or _metrics_for(reference.task))
        self.thresholds_ = _reference_values(reference, self.metrics_)
        return self

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        ref = self.reference_
        if ref.task is None or ref.target is None:
            return (MetricResult(REALIZED, "-", None, None, reason="the model has no target"),)
        rows = window.labelled.rows()
        out = _Outputs(rows, ref, labelled=True)
        if out.n == 0:
            reason = "no labelled row has model outputs"
            if len(rows) == 0:
                reason = "empty window" if window.n_rows == 0 else "no labelled rows in this window"
            return tuple(
                MetricResult(REALIZED, m, None, None, reason=reason) for m in self.metrics_
            )
        try:
            values = _realized(ref, out, self.metrics_, self.n_bootstrap)
        except _ROW_ERRORS as exc:
            return tuple(
                MetricResult(REALIZED, m, None, None, n=out.n, reason=str(exc))
                for m in self.metrics_
            )
        results = []
        for metric, m in values.items():
            lower = upper = None
            if m.value is not None and m.std_error is not None:
                half = self.band_sigmas * m.std_error
                lower, upper = m.value - half, m.value + half
                if metric in _BOUNDED:
                    lower, upper = max(0.0, lower), min(1.0, upper)
            threshold = self.thresholds_.get(metric)
            results.append(
                MetricResult(
                    REALIZED, metric, None, m.value, lower, upper, threshold,
                    alert=_alert(metric, lower, upper, threshold), n=m.n, reason=m.reason,
                    details={"std_error": m.std_error, "dropped_rows": out.dropped,
                             "labelled_rows": window.n_labelled},
                )
            )  # fmt: skip
        return tuple(results)


def encode_features(frame: pd.DataFrame, reference: MonitorReference) -> FloatArray:
    """Features as floats for DLE: categories as their code in the reference profile
    (unknown or missing: NaN), datetimes as epoch seconds, others as numbers."""
    parts = []
    categorical = set(reference.categorical)
    for name in reference.features:
        series = frame[name]
        if name in categorical:
            col = reference.profile.columns[name]
            index = {str(c): float(i) for i, c in enumerate(getattr(col, "categories", ()))}
            codes = [np.nan if pd.isna(v) else index.get(str(v), np.nan) for v in series.tolist()]
            parts.append(np.asarray(codes, dtype=np.float64))
        elif name in reference.datetime_columns:
            stamps = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
            seconds = stamps.astype("int64").to_numpy(np.float64) / 1e9
            seconds[stamps.isna().to_numpy()] = np.nan
            parts.append(seconds)
        else:
            values = pd.to_numeric(series.astype(object), errors="coerce").to_numpy(np.float64)
            parts.append(np.where(np.isfinite(values), values, np.nan))
    return np.column_stack(parts) if parts else np.empty((len(frame), 0))


class EstimatedPerformance:
    """CBPE or DLE, fitted on the reference sample, on every row of a window."""

    name = ESTIMATED

    def __init__(
        self, metrics: Sequence[str] | None = None, *, band_sigmas: float = 3.0,
        n_simulations: int = 300, seed: int = 0,
    ) -> None:  # fmt: skip
        self.metrics = metrics
        self.band_sigmas = band_sigmas
        self.n_simulations = n_simulations
        self.seed = seed

    def fit(self, reference: MonitorReference) -> Self:
        self.reference_ = reference
        self.metrics_ = tuple(self.metrics or _metrics_for(reference.task))
        self.estimator_: CBPE | DLE | None = None
        self.reason_: str | None = None
        self.thresholds_ = _reference_values(reference, self.metrics_)
        try:
            self.estimator_ = self._fit(reference)
        except _ROW_ERRORS as exc:
            self.reason_ = f"cannot fit on the reference: {exc}"
        return self

    def with_thresholds(self, reference: MonitorReference) -> EstimatedPerformance:
        """A copy sharing the fitted estimator, with thresholds from ``reference`` (a
        segment): estimators are fitted once on the whole reference."""
        _check_fitted(self, "reference_")
        clone = EstimatedPerformance(self.metrics, band_sigmas=self.band_sigmas,
                                     n_simulations=self.n_simulations, seed=self.seed)  # fmt: skip
        clone.reference_, clone.metrics_ = self.reference_, self.metrics_
        clone.estimator_, clone.reason_ = self.estimator_, self.reason_
        clone.thresholds_ = _reference_values(reference, self.metrics_) or self.thresholds_
        return clone

    def _fit(self, ref: MonitorReference) -> CBPE | DLE | None:
        if ref.task is None or not ref.has_labels:
            self.reason_ = "the reference has no labels and model outputs to fit on"
            return None
        out = _Outputs(ref.sample, ref, labelled=True)
        if ref.task == "regression":
            dle = DLE(metrics=[m for m in self.metrics_ if m in ("mae", "mse", "rmse")],
                      band_sigmas=self.band_sigmas, seed=self.seed)  # fmt: skip
            return dle.fit(encode_features(out.rows, ref), out.y_true, out.y_pred)
        if out.proba is None:
            self.reason_ = "the model gives no probabilities: CBPE needs them"
            return None
        cbpe = CBPE(
            ref.task, metrics=[m for m in self.metrics_ if m != "log_loss"],
            band_sigmas=self.band_sigmas, n_simulations=self.n_simulations, seed=self.seed,
        )  # fmt: skip
        return cbpe.fit(out.y_true, out.proba, classes=list(ref.classes or ()))

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        if self.estimator_ is None:
            reason = self.reason_ or "no estimator"
            return tuple(
                MetricResult(ESTIMATED, m, None, None, reason=reason) for m in self.metrics_
            )
        ref = self.reference_
        out = _Outputs(window.rows.rows(), ref, labelled=False)
        try:
            if window.n_rows == 0:
                raise StatisticsError("empty window")
            if out.n == 0:
                raise StatisticsError("no row with model outputs in this window")
            if isinstance(self.estimator_, CBPE):
                if out.proba is None:
                    raise InvalidInputError("the window has no probabilities")
                # the logged label is the model's decision: no threshold is assumed
                estimates = self.estimator_.estimate(out.proba, out.y_pred)
            else:
                estimates = self.estimator_.estimate(encode_features(out.rows, ref), out.y_pred)
        except _ROW_ERRORS as exc:
            return tuple(
                MetricResult(ESTIMATED, m, None, None, n=out.n, reason=str(exc))
                for m in self.metrics_
            )
        results = []
        for metric, e in estimates.items():
            threshold = self.thresholds_.get(metric)
            results.append(
                MetricResult(
                    ESTIMATED, metric, None, e.value, e.lower, e.upper, threshold,
                    # the reference's value outside the band, on the good side
                    alert=threshold is not None and _outside(metric, e, threshold),
                    n=e.n, reason=e.reason,
                    details={"std_error": e.std_error, "method": type(self.estimator_).__name__,
                             "dropped_rows": out.dropped},
                )
            )  # fmt: skip
        return tuple(results)


def _outside(metric: str, estimate: Any, threshold: float) -> bool:
    if estimate.value is None or estimate.lower is None or estimate.upper is None:
        return False
    if metric in LOWER_IS_BETTER:
        return bool(threshold < estimate.lower)
    return bool(threshold > estimate.upper)


def rows_for_pca(frame: pd.DataFrame, reference: MonitorReference) -> dict[str, Any]:
    """Feature columns as PCA reconstruction takes them: numbers or text."""
    columns: dict[str, Any] = {}
    categorical = set(reference.categorical)
    for name in reference.features:
        series = frame[name]
        if name in categorical:
            text = series.astype(object).to_numpy(dtype=object)
            columns[name] = np.array([None if pd.isna(v) else str(v) for v in text], dtype=object)
        else:
            columns[name] = encode_features(frame[[name]], _only(reference, name))[:, 0]
    return columns


def _only(reference: MonitorReference, name: str) -> MonitorReference:
    from dataclasses import replace

    return replace(reference, features=(name,))


class MultivariateDrift:
    """PCA reconstruction error of the window's rows (a uniform sample of them)."""

    name = MULTIVARIATE

    def __init__(self, n_components: float | int = 0.65, *, threshold_sigmas: float = 3.0,
                 seed: int = 0) -> None:  # fmt: skip
        self.n_components = n_components
        self.threshold_sigmas = threshold_sigmas
        self.seed = seed

    def fit(self, reference: MonitorReference) -> Self:
        self.reference_ = reference
        self.detector_: PCAReconstructionDrift | None = None
        self.reason_: str | None = None
        detector = PCAReconstructionDrift(
            self.n_components, threshold_sigmas=self.threshold_sigmas, seed=self.seed
        )
        try:
            self.detector_ = detector.fit(rows_for_pca(reference.sample, reference))
        except _ROW_ERRORS as exc:
            self.reason_ = f"cannot fit on the reference: {exc}"
        return self

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        metric = "pca_reconstruction_error"
        if self.detector_ is None:
            return (MetricResult(MULTIVARIATE, metric, None, None, reason=self.reason_),)
        rows = window.rows.rows()
        try:
            if rows.empty:
                raise StatisticsError("empty window")
            result = self.detector_.calculate(rows_for_pca(rows, self.reference_))
        except _ROW_ERRORS as exc:
            return (MetricResult(MULTIVARIATE, metric, None, None, n=len(rows), reason=str(exc)),)
        return (
            MetricResult(
                MULTIVARIATE, metric, None, result.statistic, result.lower, result.upper,
                alert=result.drifted, n=result.n,
                details={"reference_error": self.detector_.reference_error_},
            ),
        )  # fmt: skip
