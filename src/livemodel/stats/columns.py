"""Per-column mergeable profiles and the conversions that feed them.

A numeric column's values become float64 (datetimes and timedeltas as seconds since the
epoch / in seconds, booleans as 0/1). ``None``/``NaN``/``NaT`` are *missing*; ``±inf`` are
counted apart as *infinite* and, like missing values, take no part in the moments, the
histogram or the quantile sketch (an infinite value has no place on a quantile scale;
data-quality checks read the ``infinite`` count).

A categorical column's values are matched against the spec's categories by value (so the
integer ``1`` and the float ``1.0`` are the same category, as in a Python dict). Values
that are not ``str``/``bool``/``int``/finite ``float`` are keyed by their ``str()``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.stats.sketch import (
    FloatArray,
    FrequentValues,
    IntArray,
    bucket_counts,
    copy_kll,
    kll_quantiles,
    n_buckets,
    new_kll,
)

CategoryValue = str | bool | int | float
SUMMARY_QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5}
SUMMARY_QUANTILES |= {"p75": 0.75, "p95": 0.95, "p99": 0.99}
SUMMARY_TOP = 20

_SAFE_OBJECT_KINDS = frozenset({"string", "integer", "boolean", "empty"})


def numeric_values(name: str, series: pd.Series[Any]) -> FloatArray:
    """The column as float64 with NaN for missing; :class:`SchemaError` if not numeric."""
    dtype = series.dtype
    try:
        if isinstance(dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            dtype = series.dtype
        if pd.api.types.is_datetime64_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            raw = series.to_numpy()
            unit, step = np.datetime_data(raw.dtype)
            seconds = raw.view(np.int64).astype(np.float64) * _unit_seconds(unit, step)
            seconds[np.isnat(raw)] = np.nan
            return cast(FloatArray, seconds)
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return cast(FloatArray, series.to_numpy(dtype=np.float64, na_value=np.nan))
        if pd.api.types.is_object_dtype(dtype):
            converted = pd.to_numeric(series, errors="raise")
            return cast(FloatArray, converted.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError, OverflowError) as exc:
        raise SchemaError(f"column {name!r} is not numeric: {exc}") from exc
    raise SchemaError(f"column {name!r} has dtype {dtype}, which is not numeric")


def _unit_seconds(unit: str, step: int) -> float:
    per_unit = {"D": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    per_unit.update({"ns": 1e-9, "ps": 1e-12, "fs": 1e-15, "as": 1e-18, "W": 604800.0})
    if unit not in per_unit:
        raise SchemaError(f"unsupported time unit {unit!r}")
    return per_unit[unit] * step


def category_key(value: object) -> CategoryValue:
    """The JSON-safe key of one category value (numpy scalars unwrapped, others ``str``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, str | bool | int):
        return value
    return str(value)


def factorize_categories(series: pd.Series[Any]) -> tuple[IntArray, list[CategoryValue]]:
    """Codes per row (-1 for missing) and the JSON-safe key of each distinct value."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError:  # unhashable objects (lists, dicts): key them by their text
        missing = series.isna().to_numpy(dtype=bool)
        text = series.astype(str).to_numpy(dtype=object)
        text[missing] = None
        codes, text_uniques = pd.factorize(text, use_na_sentinel=True)
        uniques = pd.Index(text_uniques, dtype=object)
    values = np.asarray(uniques)
    if values.dtype.kind in "biuU" or (
        values.dtype == object and pd.api.types.infer_dtype(values) in _SAFE_OBJECT_KINDS
    ):
        keys: list[CategoryValue] = values.tolist()
    elif values.dtype.kind == "f" and np.isfinite(values).all():
        keys = values.tolist()
    else:
        keys = [category_key(v) for v in values]
    return np.asarray(codes, dtype=np.int64), keys


class NumericColumnProfile:
    """Counts, extremes, moments, a histogram on fixed edges and a KLL quantile sketch."""

    __slots__ = ("_hist", "_ints", "_moments", "edges", "sketch")

    def __init__(self, edges: tuple[float, ...], sketch_k: int) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        # count, missing, infinite (the finite count is what remains)
        self._ints = np.zeros(3, dtype=np.int64)
        # min, max, sum, mean, m2 (sum of squared deviations from the mean)
        self._moments = np.array([np.inf, -np.inf, 0.0, 0.0, 0.0])
        self._hist = np.zeros(n_buckets(len(edges)), dtype=np.int64)
        self.sketch = new_kll(sketch_k)

    # -- state -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Rows seen, missing and infinite included."""
        return int(self._ints[0])

    @property
    def missing(self) -> int:
        return int(self._ints[1])

    @property
    def infinite(self) -> int:
        return int(self._ints[2])

    @property
    def n(self) -> int:
        """Finite values, the sample every statistic below is computed on."""
        return int(self._ints[0] - self._ints[1] - self._ints[2])

    @property
    def min(self) -> float | None:
        return float(self._moments[0]) if self.n else None

    @property
    def max(self) -> float | None:
        return float(self._moments[1]) if self.n else None

    @property
    def sum(self) -> float | None:
        return _finite_or_none(self._moments[2]) if self.n else None

    @property
    def mean(self) -> float | None:
        return _finite_or_none(self._moments[3]) if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (ddof=1); ``None`` below two values or on overflow."""
        if self.n < 2:
            return None
        return _finite_or_none(self._moments[4] / (self.n - 1))

    @property
    def std(self) -> float | None:
        var = self.variance
        return None if var is None else float(np.sqrt(var))

    @property
    def histogram(self) -> IntArray:
        """Bucket counts: underflow, bins on ``edges`` (last one closed), overflow."""
        return self._hist.copy()

    def quantiles(self, ranks: FloatArray) -> FloatArray | None:
        return None if self.n == 0 else kll_quantiles(self.sketch, ranks)

    def summary(self) -> dict[str, Any]:
        values = self.quantiles(np.array(list(SUMMARY_QUANTILES.values())))
        return _base_summary(self, "numeric") | {
            "infinite": self.infinite,
            "n": self.n,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "quantiles": {
                key: None if values is None else float(values[i])
                for i, key in enumerate(SUMMARY_QUANTILES)
            },
        }

    # -- monoid ------------------------------------------------------------------------
    def update(self, values: FloatArray) -> None:
        """Add a batch of float64 values (NaN = missing)."""
        finite_mask = np.isfinite(values)
        n_finite = int(np.count_nonzero(finite_mask))
        n_missing = int(np.count_nonzero(np.isnan(values)))
        batch_ints = np.array([values.size, n_missing, values.size - n_missing - n_finite])
        if n_finite == 0:
            self._ints += batch_ints
            return
        x = values if n_finite == values.size else values[finite_mask]
        if not (x.flags.c_contiguous and x.flags.writeable):
            x = x.copy()  # the sketch binding takes writeable contiguous arrays only
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.sum(x))
            mean = float(np.mean(x))
            if not np.isfinite(mean):  # the sum overflowed: average scaled values instead
                scale = float(np.max(np.abs(x)))
                mean = float(np.mean(x / scale)) * scale
            m2 = float(np.sum(np.square(x - mean)))
        batch = np.array([np.min(x), np.max(x), total, mean, m2])
        self._hist += bucket_counts(self.edges, x)
        self.sketch.update(x)
        self._combine(batch_ints, batch)

    def merge_from(self, other: NumericColumnProfile) -> None:
        """Absorb ``other`` (same spec) into this profile."""
        self._hist += other._hist
        self.sketch.merge(other.sketch)
        self._combine(other._ints, other._moments)

    def copy(self) -> NumericColumnProfile:
        clone = NumericColumnProfile.__new__(NumericColumnProfile)
        clone.edges = self.edges
        clone._ints = self._ints.copy()
        clone._moments = self._moments.copy()
        clone._hist = self._hist.copy()
        clone.sketch = copy_kll(self.sketch)
        return clone

    def _combine(self, ints: IntArray, moments: FloatArray) -> None:
        n_a = self.n
        n_b = int(ints[0] - ints[1] - ints[2])
        self._ints += ints
        if n_b == 0:
            return
        if n_a == 0:
            self._moments = moments.copy()
            return
        a = self._moments
        n = n_a + n_b
        with np.errstate(over="ignore", invalid="ignore"):
            # Chan, Golub & LeVeque (1979): pairwise update of mean and M2.
            delta = moments[3] - a[3]
            mean = a[3] + delta * (n_b / n)
            m2 = a[4] + moments[4] + delta * delta * (n_a / n) * n_b
        self._moments = np.array(
            [min(a[0], moments[0]), max(a[1], moments[1]), a[2] + moments[2], mean, m2]
        )

    # -- serialization helpers (used by the profile codec) -----------------------------
    def state_arrays(self) -> tuple[IntArray, FloatArray, IntArray]:
        return self._ints, self._moments, self._hist

    def set_state(self, ints: IntArray, moments: FloatArray, hist: IntArray) -> None:
        if ints.shape != (3,) or moments.shape != (5,) or hist.shape != self._hist.shape:
            raise InvalidInputError("numeric column state has the wrong shape")
        if (ints < 0).any() or (hist < 0).any() or ints[1] + ints[2] > ints[0]:
            raise InvalidInputError("numeric column state has impossible counts")
        self._ints, self._moments, self._hist = ints.copy(), moments.copy(), hist.copy()
        n = self.n
        if int(hist.sum()) != n or self.sketch.n != n:
            raise InvalidInputError("numeric column state is inconsistent")


class CategoricalColumnProfile:
    """Exact counts of the spec's categories, an "other" count and bounded unseen values."""

    __slots__ = ("_counts", "_ints", "categories", "unseen")

    def __init__(self, categories: tuple[CategoryValue, ...], unseen_capacity: int) -> None:
        self.categories = categories
        self._ints = np.zeros(3, dtype=np.int64)  # count, missing, other
        self._counts = np.zeros(len(categories), dtype=np.int64)
        self.unseen = FrequentValues(unseen_capacity)

    @property
    def count(self) -> int:
        return int(self._ints[0])

    @property
    def missing(self) -> int:
        return int(self._ints[1])

    @property
    def other(self) -> int:
        """Non-missing values outside the spec's categories."""
        return int(self._ints[2])

    @property
    def n(self) -> int:
        """Non-missing values."""
        return int(self._ints[0] - self._ints[1])

    @property
    def counts(self) -> IntArray:
        """Counts aligned with ``categories``."""
        return self._counts.copy()

    def bucket_counts(self) -> IntArray:
        """Category counts followed by the "other" count (what drift tests compare)."""
        return np.append(self._counts, self._ints[2])

    def summary(self) -> dict[str, Any]:
        counts = self._counts
        order = np.argsort(-counts, kind="stable")[:SUMMARY_TOP]
        top = [{"value": self.categories[i], "count": int(counts[i])} for i in order.tolist()]
        return _base_summary(self, "categorical") | {
            "n": self.n,
            "top": [entry for entry in top if entry["count"]],
            "n_other": self.other,
            "top_other": [{"value": k, "count": v} for k, v in self.unseen.items()[:SUMMARY_TOP]],
        }

    def update(self, series: pd.Series[Any]) -> None:
        codes, keys = factorize_categories(series)
        per_unique = np.bincount(codes[codes >= 0], minlength=len(keys)).astype(np.int64)
        lookup = pd.Index(np.array(list(self.categories), dtype=object), dtype=object)
        if keys:
            target = pd.Index(np.array(keys, dtype=object), dtype=object)
            position = np.asarray(lookup.get_indexer(target), dtype=np.int64)
        else:
            position = np.empty(0, dtype=np.int64)
        known = position >= 0
        self._counts += np.bincount(
            position[known], weights=per_unique[known], minlength=len(self.categories)
        ).astype(np.int64)
        unseen_idx = np.flatnonzero(~known)
        unseen_counts = per_unique[unseen_idx]
        n_missing = int(np.count_nonzero(codes < 0))
        self._ints += np.array([codes.size, n_missing, int(unseen_counts.sum())])
        if unseen_idx.size > self.unseen.capacity:
            # Reduce the batch's exact counts first (a valid Misra-Gries summary of the
            # batch), so only `capacity` values are ever turned into text.
            order = np.argsort(-unseen_counts, kind="stable")
            cut = unseen_counts[order[self.unseen.capacity]]
            order = order[: self.unseen.capacity]
            unseen_idx, unseen_counts = unseen_idx[order], unseen_counts[order] - cut
        self.unseen.add_counts([str(keys[i]) for i in unseen_idx.tolist()], unseen_counts)

    def merge_from(self, other: CategoricalColumnProfile) -> None:
        self._ints += other._ints
        self._counts += other._counts
        self.unseen = self.unseen.merged(other.unseen)

    def copy(self) -> CategoricalColumnProfile:
        clone = CategoricalColumnProfile.__new__(CategoricalColumnProfile)
        clone.categories = self.categories
        clone._ints = self._ints.copy()
        clone._counts = self._counts.copy()
        clone.unseen = FrequentValues(self.unseen.capacity, self.unseen.to_dict())
        return clone

    def state_arrays(self) -> tuple[IntArray, IntArray]:
        return self._ints, self._counts

    def set_state(self, ints: IntArray, counts: IntArray, unseen: FrequentValues) -> None:
        if ints.shape != (3,) or counts.shape != self._counts.shape:
            raise InvalidInputError("categorical column state has the wrong shape")
        if (ints < 0).any() or (counts < 0).any() or ints[1] + ints[2] > ints[0]:
            raise InvalidInputError("categorical column state has impossible counts")
        if int(counts.sum()) + int(ints[2]) != int(ints[0] - ints[1]):
            raise InvalidInputError("categorical column state is inconsistent")
        self._ints, self._counts, self.unseen = ints.copy(), counts.copy(), unseen


ColumnProfile = NumericColumnProfile | CategoricalColumnProfile


def _base_summary(col: ColumnProfile, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "count": col.count,
        "missing": col.missing,
        "missing_rate": col.missing / col.count if col.count else None,
    }


def _finite_or_none(value: float | np.floating[Any]) -> float | None:
    return float(value) if np.isfinite(value) else None
