"""Multivariate drift: changes a per-column test cannot see (correlations, joint shape).

Two detectors, both fitted on a reference frame and then applied to windows:

* :class:`PCAReconstructionDrift` (NannyML's data reconstruction): encode (impute NaNs with
  reference medians, one-hot or frequency-encode categoricals), standardise and compress
  with PCA keeping ``n_components`` of the variance; the statistic is the mean Euclidean
  distance between a row and its reconstruction. A change in correlation structure moves
  rows off the reference's principal subspace even when every marginal is unchanged.
  The reference error is measured out of fold (``n_folds`` models, each fitted on the
  other folds) and a window is scored by the same fold models, so the in-sample optimism of
  PCA never reads as drift. Thresholds: the std of the mean error over reference chunks,
  scaled to the window's size by ``sqrt(chunk_size / n)``, times ``threshold_sigmas``.
* :class:`DomainClassifierDrift`: the cross-validated ROC AUC of a seeded
  ``HistGradientBoostingClassifier`` telling reference rows from window rows (each side
  subsampled to ``max_rows``, so the cost is bounded). AUC ≈ 0.5 means indistinguishable;
  drift is flagged above ``threshold`` plus ``threshold_sigmas`` null standard deviations of
  the AUC, ``sqrt((n0 + n1 + 1) / (12 n0 n1))`` (Mann-Whitney).

Both run on ``n_threads`` threads (default 1: BLAS for PCA, OpenMP for the classifier), so
they never oversubscribe a shared machine; the results do not depend on it. Measured on a
2-core machine under load 18 (5,000 reference and 3,000 window flights, 10 features): the
domain classifier's two windows took 390 s on the default 2 OpenMP threads and 16 s on one,
PCA's fit and two windows 1.97 s on 2 BLAS threads and 0.37 s on one, with identical
statistics.

A frame is a pandas DataFrame, a mapping of column name to 1-D values, or a 2-D array.
Numeric columns (bool, int, float) keep NaN as missing; str/object columns are
categorical; other dtypes (datetimes, complex) are refused.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError, SchemaError, StatisticsError
from livemodel.stats.metrics import FloatArray, is_missing

_MISSING = "\x00missing"
_MAX_CODES = 254  # HistGradientBoosting bins categories into at most 255 codes
_ROUNDOFF = 1e-9  # reconstruction errors (standardised units) below this are round-off


class ColumnFrame(Protocol):
    """Anything with named columns: a pandas DataFrame or a dict of 1-D arrays."""

    def keys(self) -> Any: ...

    def __getitem__(self, key: Any, /) -> Any: ...


FrameLike = ColumnFrame | npt.NDArray[Any]


@dataclass(frozen=True)
class MultivariateDriftResult:
    """A window's statistic, the band it is compared with, and the verdict."""

    statistic: float
    lower: float | None
    upper: float
    drifted: bool
    n: int


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool
    median: float = 0.0
    levels: tuple[str, ...] = ()  # most frequent first
    freqs: tuple[float, ...] = ()


def _columns(frame: FrameLike) -> dict[str, npt.NDArray[Any]]:
    """Name -> 1-D array for every column; all columns of one length."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 2:
            raise InvalidInputError(f"an array frame must be 2-D, got shape {frame.shape}")
        cols = {str(i): frame[:, i] for i in range(frame.shape[1])}
    elif hasattr(frame, "keys") and hasattr(frame, "__getitem__"):
        try:
            cols = {str(k): np.asarray(frame[k]) for k in list(frame.keys())}
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"cannot read the frame's columns: {exc}") from exc
    else:
        raise InvalidInputError("a frame must be a DataFrame, a mapping of columns or a 2-D array")
    if not cols:
        raise InvalidInputError("the frame has no columns")
    if any(c.ndim != 1 for c in cols.values()) or len({c.size for c in cols.values()}) != 1:
        raise InvalidInputError("every column must be 1-D and all of the same length")
    return cols


def _is_numeric(arr: npt.NDArray[Any], name: str) -> bool:
    if arr.dtype.kind in "biuf":
        return True
    if arr.dtype.kind in "US":
        return False
    if arr.dtype.kind == "O":
        values = _keyed_values(arr)[1]
        return bool(values) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )
    raise InvalidInputError(f"column {name!r} has unsupported dtype {arr.dtype}")


def _as_float(arr: npt.NDArray[Any], name: str) -> FloatArray:
    if arr.dtype.kind not in "biufO":
        raise SchemaError(f"column {name!r} is numeric in the reference, got dtype {arr.dtype}")
    try:
        if arr.dtype.kind == "O":
            return np.array([np.nan if is_missing(v) else float(v) for v in arr.tolist()])
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"column {name!r} is numeric in the reference: {exc}") from exc
    if bool(np.isinf(out).any()):
        raise InvalidInputError(f"column {name!r} contains infinite values")
    return out


def _keyed_values(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """``(codes, distinct non-missing values)``; missing values get code -1."""
    values = np.asarray(arr, dtype=object)
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): one key per text
        texts = np.array([None if is_missing(v) else str(v) for v in values.tolist()], object)
        codes, uniques = pd.factorize(texts, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), list(uniques)


def _keyed(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], list[str]]:
    """``(codes, keys)``: each value's code into ``keys``, the text of the distinct values
    then ``_MISSING`` (code -1 picks it). One ``str()`` per distinct value, not per row."""
    codes, uniques = _keyed_values(arr)
    return codes, [*(str(u) for u in uniques), _MISSING]


def _as_keys(arr: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    codes, keys = _keyed(arr)
    return np.asarray(np.array(keys, dtype=object)[codes], dtype=object)


def _lookup(arr: npt.NDArray[Any], table: dict[str, float], default: float) -> FloatArray:
    """``table[key]`` (``default`` when absent) for every value's key."""
    codes, keys = _keyed(arr)
    return np.array([table.get(k, default) for k in keys], dtype=np.float64)[codes]


def _fit_columns(cols: dict[str, npt.NDArray[Any]]) -> list[_Column]:
    specs = []
    for name, arr in cols.items():
        if _is_numeric(arr, name):
            values = _as_float(arr, name)
            finite = values[~np.isnan(values)]
            specs.append(_Column(name, True, float(np.median(finite)) if finite.size else 0.0))
        else:
            counts = Counter(_as_keys(arr).tolist()).most_common()
            n = sum(c for _, c in counts)
            levels = tuple(k for k, _ in counts)
            specs.append(_Column(name, False, levels=levels, freqs=tuple(c / n for _, c in counts)))
    return specs


def _column(cols: dict[str, npt.NDArray[Any]], name: str) -> npt.NDArray[Any]:
    if name not in cols:
        raise SchemaError(f"column {name!r} of the reference is missing from the frame")
    return cols[name]


def _dense(cols: dict[str, npt.NDArray[Any]], specs: list[_Column], max_onehot: int) -> FloatArray:
    """Imputed numerics, one-hot (few levels) or frequency (many levels) categoricals."""
    parts: list[FloatArray] = []
    for spec in specs:
        arr = _column(cols, spec.name)
        if spec.numeric:
            values = _as_float(arr, spec.name)
            parts.append(np.where(np.isnan(values), spec.median, values)[:, None])
            continue
        if len(spec.levels) <= max_onehot:
            codes, keys = _keyed(arr)
            level_of = np.array([spec.levels.index(k) if k in spec.levels else -1 for k in keys])
            onehot = level_of[codes][:, None] == np.arange(len(spec.levels))[None, :]
            parts.append(onehot.astype(np.float64))
        else:
            freq = dict(zip(spec.levels, spec.freqs, strict=True))
            parts.append(_lookup(arr, freq, 0.0)[:, None])
    return np.hstack(parts)


def _ordinal(cols: dict[str, npt.NDArray[Any]], specs: list[_Column]) -> FloatArray:
    """Numerics with NaN kept; categoricals as codes of their frequent levels (rest: 254)."""
    parts = []
    for spec in specs:
        arr = _column(cols, spec.name)
        if spec.numeric:
            parts.append(_as_float(arr, spec.name))
            continue
        code = {lv: float(i) for i, lv in enumerate(spec.levels[:_MAX_CODES])}
        parts.append(_lookup(arr, code, float(_MAX_CODES)))
    return np.column_stack(parts)


def _take(cols: dict[str, npt.NDArray[Any]], rows: npt.NDArray[np.intp]) -> dict[str, Any]:
    return {name: arr[rows] for name, arr in cols.items()}


def _check_threads(n_threads: object) -> None:
    if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
        raise InvalidInputError("n_threads must be None (the default of the libraries) or >= 1")


def _valid_components(n_components: object) -> bool:
    if isinstance(n_components, bool):
        return False
    if isinstance(n_components, float):
        return 0.0 < n_components < 1.0
    return isinstance(n_components, int) and n_components >= 1


@dataclass(frozen=True)
class _FoldModel:
    specs: list[_Column]
    scaler: StandardScaler
    pca: PCA


class PCAReconstructionDrift:
    """Mean PCA reconstruction error of a window against reference-derived thresholds."""

    def __init__(
        self,
        n_components: float | int = 0.65,
        *,
        chunk_size: int | None = None,
        threshold_sigmas: float = 3.0,
        max_onehot: int = 10,
        n_folds: int = 5,
        n_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        self.n_components = n_components
        self.chunk_size = chunk_size
        self.threshold_sigmas = threshold_sigmas
        self.max_onehot = max_onehot
        self.n_folds = n_folds
        self.n_threads = n_threads
        self.seed = seed

    def _threads(self) -> Any:
        """At most ``n_threads`` BLAS threads (``None``: the library's default)."""
        return threadpool_limits(limits=self.n_threads, user_api="blas")

    def _fit_fold(self, cols: dict[str, npt.NDArray[Any]]) -> _FoldModel:
        specs = _fit_columns(cols)
        scaled_input = _dense(cols, specs, self.max_onehot)
        if scaled_input.shape[1] < 2:
            raise InvalidInputError("PCA reconstruction needs at least 2 encoded columns")
        scaler = StandardScaler().fit(scaled_input)
        scaled = scaler.transform(scaled_input)
        if float(scaled.var(axis=0).sum()) <= 0.0:
            raise StatisticsError("every reference column is constant: nothing to reconstruct")
        pca = PCA(n_components=self.n_components, svd_solver="full", random_state=self.seed)
        try:
            return _FoldModel(specs, scaler, pca.fit(scaled))
        except ValueError as exc:  # e.g. more components than encoded columns
            raise InvalidInputError(f"PCA cannot be fitted: {exc}") from exc

    def _errors(self, cols: dict[str, npt.NDArray[Any]], model: _FoldModel) -> FloatArray:
        scaled = model.scaler.transform(_dense(cols, model.specs, self.max_onehot))
        rebuilt = model.pca.inverse_transform(model.pca.transform(scaled))
        return np.asarray(np.linalg.norm(scaled - rebuilt, axis=1), dtype=np.float64)

    def fit(self, reference: FrameLike) -> PCAReconstructionDrift:
        """Fit fold models and the reference's error distribution."""
        _check_threads(self.n_threads)
        with self._threads():
            return self._fit(reference)

    def _fit(self, reference: FrameLike) -> PCAReconstructionDrift:
        if not _valid_components(self.n_components):
            raise InvalidInputError("n_components: a variance fraction in (0, 1) or a count >= 1")
        if self.n_folds < 2 or not self.threshold_sigmas > 0 or self.max_onehot < 1:
            raise InvalidInputError("n_folds >= 2, threshold_sigmas > 0, max_onehot >= 1")
        cols = _columns(reference)
        n = next(iter(cols.values())).size
        chunk = self.chunk_size or max(1, n // 20)
        if n < 2 * self.n_folds or n // chunk < 2:
            raise StatisticsError(f"reference of {n} rows is too small (chunk size {chunk})")
        oof = np.empty(n)
        models = []
        for train, test in KFold(self.n_folds, shuffle=True, random_state=self.seed).split(oof):
            model = self._fit_fold(_take(cols, train))
            oof[test] = self._errors(_take(cols, test), model)
            models.append(model)
        means = oof[: (n // chunk) * chunk].reshape(-1, chunk).mean(axis=1)
        self.fold_models_ = models
        self.reference_error_ = float(oof.mean())
        self.chunk_std_ = float(np.std(means, ddof=1))
        self.chunk_size_ = chunk
        return self

    def calculate(self, frame: FrameLike) -> MultivariateDriftResult:
        """Mean reconstruction error of ``frame`` and whether it leaves the reference band."""
        if not hasattr(self, "fold_models_"):
            raise InvalidInputError("PCAReconstructionDrift is not fitted: call fit(reference)")
        cols = _columns(frame)
        n = next(iter(cols.values())).size
        if n == 0:
            raise StatisticsError("empty window: reconstruction error undefined")
        with self._threads():
            errors = np.mean([self._errors(cols, m) for m in self.fold_models_], axis=0)
        statistic = float(errors.mean())
        half = self.threshold_sigmas * self.chunk_std_ * math.sqrt(self.chunk_size_ / n)
        # Round-off floor: when PCA keeps every informative direction the errors are ~1e-16.
        half = max(half, _ROUNDOFF * (1.0 + self.reference_error_))
        lower, upper = max(0.0, self.reference_error_ - half), self.reference_error_ + half
        return MultivariateDriftResult(
            statistic, lower, upper, not lower <= statistic <= upper, int(n)
        )


class DomainClassifierDrift:
    """Cross-validated ROC AUC of a classifier separating the reference from a window."""

    def __init__(
        self,
        *,
        threshold: float = 0.55,
        threshold_sigmas: float = 3.0,
        max_rows: int = 10_000,
        n_folds: int = 5,
        max_iter: int = 100,
        n_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        self.threshold = threshold
        self.threshold_sigmas = threshold_sigmas
        self.max_rows = max_rows
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.seed = seed

    def _subsample(self, matrix: FloatArray, salt: int) -> FloatArray:
        if matrix.shape[0] <= self.max_rows:
            return matrix
        rng = np.random.default_rng([self.seed, salt])
        return matrix[np.sort(rng.choice(matrix.shape[0], self.max_rows, replace=False))]

    def fit(self, reference: FrameLike) -> DomainClassifierDrift:
        """Learn the column encoding and keep a bounded sample of the encoded reference."""
        if not 0.5 <= self.threshold < 1 or not self.threshold_sigmas >= 0:
            raise InvalidInputError("threshold must lie in [0.5, 1) and threshold_sigmas >= 0")
        if self.max_rows < self.n_folds or self.n_folds < 2 or self.max_iter < 1:
            raise InvalidInputError("need n_folds >= 2, max_rows >= n_folds, max_iter >= 1")
        _check_threads(self.n_threads)
        cols = _columns(reference)
        specs = _fit_columns(cols)
        matrix = _ordinal(cols, specs)
        if matrix.shape[0] < self.n_folds:
            raise StatisticsError(f"reference needs at least {self.n_folds} rows")
        self.specs_ = specs
        self.categorical_ = np.array([not s.numeric for s in specs])
        self.reference_sample_ = self._subsample(matrix, 0)
        return self

    def calculate(self, frame: FrameLike) -> MultivariateDriftResult:
        """How well a classifier tells ``frame`` from the reference (0.5: not at all)."""
        if not hasattr(self, "specs_"):
            raise InvalidInputError("DomainClassifierDrift is not fitted: call fit(reference)")
        current = self._subsample(_ordinal(_columns(frame), self.specs_), 1)
        n0, n1 = self.reference_sample_.shape[0], current.shape[0]
        if n1 < self.n_folds:
            raise StatisticsError(f"window needs at least {self.n_folds} rows")
        x = np.vstack([self.reference_sample_, current])
        y = np.r_[np.zeros(n0), np.ones(n1)]
        classifier = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            early_stopping=False,
            categorical_features=self.categorical_,
            random_state=self.seed,
        )
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed)
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            scores = cross_val_predict(classifier, x, y, cv=folds, method="predict_proba")[:, 1]
        auc = float(roc_auc_score(y, scores))
        null_sd = math.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))
        upper = self.threshold + self.threshold_sigmas * null_sd
        return MultivariateDriftResult(auc, None, upper, auc > upper, int(n1))
