"""Per-column checks: coerce one batch column to its signature type and flag every cell.

One :func:`check_column` call per signature column does all the work of validation and
data-quality monitoring with vectorized operations (no Python loop over rows for the
common, well-typed case). Cells of an ``object`` column are classified by their Python
type with ``pd.factorize`` over the cells' types, so even mixed, hostile columns (nested
lists, huge integers, bytes) cost one C-level pass plus a handful of ``isinstance`` calls.

Type rules (strict, because a silent conversion hides a broken client):

=============  ========================================================================
INTEGER        ints and integral finite floats (``3.0``) that fit in int64; ``true``,
               ``"3"``, ``3.5``, ``inf`` and ``10**30`` are WRONG_TYPE
FLOAT          ints and floats; bools and strings are WRONG_TYPE; ``NaN`` is null;
               ``±inf`` is a float, so it is OUT_OF_RANGE unless training was unbounded
BOOLEAN        bools only (``0``/``1`` and ``"true"`` are WRONG_TYPE)
CATEGORICAL    strings only (numbers are WRONG_TYPE)
DATETIME       ISO-8601 strings, ``datetime``/``Timestamp``/``datetime64``; naive values
               are read as UTC; unparsable text and bare numbers are WRONG_TYPE
=============  ========================================================================

Coerced dtypes (stable whatever the batch holds): INTEGER ``Int64``, FLOAT ``float64``,
BOOLEAN ``boolean``, CATEGORICAL ``str`` (pandas StringDtype, NaN for missing), DATETIME
``datetime64[us, UTC]``. WRONG_TYPE cells become null; out-of-range and unseen values
are kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.schema.signature import ColumnSchema, ColumnType, epoch_seconds

__all__ = ["ColumnCheck", "check_column", "missing_column", "output_dtype"]

BoolArray = npt.NDArray[np.bool_]

# Cell kinds, as small ints so a whole column is classified into one int8 array.
_NULL, _BOOL, _INT, _FLOAT, _STR, _TIME, _OTHER = range(7)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = int(np.finfo(np.float64).max)
# pandas parses these words relative to the clock: never a value a client meant to send.
_RELATIVE_WORDS = frozenset({"now", "today"})

STR_DTYPE = pd.StringDtype(na_value=np.nan)
DATETIME_DTYPE = pd.DatetimeTZDtype(unit="us", tz="UTC")


def output_dtype(col_type: ColumnType) -> str | pd.api.extensions.ExtensionDtype:
    """The dtype validation gives a column of this type in its coerced frame."""
    dtypes: dict[ColumnType, str | pd.api.extensions.ExtensionDtype] = {
        ColumnType.INTEGER: "Int64",
        ColumnType.FLOAT: "float64",
        ColumnType.BOOLEAN: "boolean",
        ColumnType.CATEGORICAL: STR_DTYPE,
        ColumnType.DATETIME: DATETIME_DTYPE,
    }
    return dtypes[col_type]


@dataclass(frozen=True, eq=False)
class ColumnCheck:
    """Everything validation and quality need to know about one column of one batch.

    Masks are per row and disjoint: a null cell is never also wrong-typed, a wrong-typed
    cell is never out of range. ``null`` counts missing values whether or not training
    allowed them; :attr:`null_violation` is the subset that breaks the signature.
    """

    schema: ColumnSchema
    present: bool
    values: pd.Series
    source: pd.Series
    null: BoolArray
    wrong_type: BoolArray
    out_of_range: BoolArray
    unseen: BoolArray

    @property
    def null_violation(self) -> BoolArray:
        if self.schema.nullable or not self.present:
            return np.zeros(len(self.null), dtype=np.bool_)
        return self.null

    @property
    def any_violation(self) -> BoolArray:
        """Rows with a violation in this column (every row when the column is missing)."""
        if not self.present:
            return np.ones(len(self.null), dtype=np.bool_)
        return self.null_violation | self.wrong_type | self.out_of_range | self.unseen


def missing_column(schema: ColumnSchema, n: int) -> ColumnCheck:
    """The check of a column absent from the batch: all null, no per-cell flags."""
    none = np.zeros(n, dtype=np.bool_)
    values = pd.Series([None] * n, dtype=output_dtype(schema.type))
    source = pd.Series([None] * n, dtype=object)
    return ColumnCheck(schema, False, values, source, np.ones(n, dtype=np.bool_), none, none, none)


def check_column(schema: ColumnSchema, series: pd.Series, tolerance: float = 0.0) -> ColumnCheck:
    """Coerce ``series`` to ``schema``'s type and flag null, wrong-type, out-of-range cells."""
    series = series.reset_index(drop=True)
    coerce = _COERCERS[schema.type]
    values, null, wrong = coerce(series)
    ok = ~null & ~wrong
    out_of_range = _out_of_range(schema, values, ok, tolerance)
    unseen = np.zeros(len(series), dtype=np.bool_)
    if schema.categories is not None:
        unseen = ok & ~values.isin(schema.categories).to_numpy(dtype=np.bool_)
    return ColumnCheck(schema, True, values, series, null, wrong, out_of_range, unseen)


def _out_of_range(
    schema: ColumnSchema, values: pd.Series, ok: BoolArray, tolerance: float
) -> BoolArray:
    if schema.min is None and schema.max is None:
        return np.zeros(len(values), dtype=np.bool_)
    if schema.type is ColumnType.DATETIME:
        numbers = epoch_seconds(values)
    else:
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    slack = 0.0
    if schema.min is not None and schema.max is not None:
        slack = tolerance * (schema.max - schema.min)
    outside = np.zeros(len(values), dtype=np.bool_)
    # NaN compares False, so nulls and wrong-typed cells are never "out of range".
    with np.errstate(invalid="ignore"):
        if schema.min is not None:
            outside |= numbers < schema.min - slack
        if schema.max is not None:
            outside |= numbers > schema.max + slack
    return outside & ok


def _kinds(cells: npt.NDArray[np.object_]) -> npt.NDArray[np.int8]:
    """Classify every cell (null, bool, int, float, str, datetime, other) in one pass."""
    null = pd.isna(cells)
    # Fast path: pandas' C type inference recognises a homogeneous column outright.
    uniform = _UNIFORM.get(pd.api.types.infer_dtype(cells, skipna=True))
    if uniform is not None:
        kinds = np.full(len(cells), uniform, dtype=np.int8)
    else:
        types = cast(npt.NDArray[np.object_], np.frompyfunc(type, 1, 1)(cells))
        codes, uniques = pd.factorize(types)
        table = np.array([_kind_of_type(t) for t in uniques] + [_NULL], dtype=np.int8)
        kinds = table[codes]
    kinds[null] = _NULL
    return kinds


_UNIFORM = {"integer": _INT, "floating": _FLOAT, "string": _STR, "boolean": _BOOL, "empty": _NULL}


def _kind_of_type(cls: type) -> int:
    if issubclass(cls, bool | np.bool_):
        return _BOOL
    if issubclass(cls, int | np.integer):
        return _INT
    if issubclass(cls, float | np.floating):
        return _FLOAT
    if issubclass(cls, str):
        return _STR
    if issubclass(cls, dt.datetime | np.datetime64):
        return _TIME
    return _OTHER


def _object_cells(series: pd.Series) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int8]]:
    cells = series.to_numpy(dtype=object)
    return cells, _kinds(cells)


def _int_fits(cells: npt.NDArray[np.object_], lo: int, hi: int) -> BoolArray:
    """Elementwise ``lo <= cell <= hi`` for python/numpy ints of any size, without overflow."""
    if cells.size == 0:
        return np.zeros(0, dtype=np.bool_)
    return np.asarray((cells >= lo) & (cells <= hi), dtype=np.bool_)


def _coerce_integer(series: pd.Series) -> tuple[pd.Series, BoolArray, BoolArray]:
    n = len(series)
    api = pd.api.types
    if api.is_integer_dtype(series.dtype) and not api.is_unsigned_integer_dtype(series.dtype):
        null = series.isna().to_numpy(dtype=np.bool_)
        return series.astype("Int64"), null, np.zeros(n, dtype=np.bool_)
    data = np.zeros(n, dtype=np.int64)
    good = np.zeros(n, dtype=np.bool_)
    if api.is_float_dtype(series.dtype):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        null = np.isnan(floats)
        float_idx = np.flatnonzero(~null)
        int_idx = np.zeros(0, dtype=np.intp)
        cells = np.zeros(0, dtype=object)
    else:
        cells, kinds = _object_cells(series)
        null = kinds == _NULL
        float_idx = np.flatnonzero(kinds == _FLOAT)
        int_idx = np.flatnonzero(kinds == _INT)
        floats = np.zeros(n, dtype=np.float64)
        floats[float_idx] = cells[float_idx].astype(np.float64)
    if int_idx.size:
        fits = _int_fits(cells[int_idx], _INT64_MIN, _INT64_MAX)
        idx = int_idx[fits]
        data[idx] = cells[idx].astype(np.int64)
        good[idx] = True
    if float_idx.size:
        f = floats[float_idx]
        # 2**63 itself is not an int64, hence the strict upper bound.
        with np.errstate(invalid="ignore"):
            fits = np.isfinite(f) & (f == np.floor(f)) & (f >= -(2.0**63)) & (f < 2.0**63)
        idx = float_idx[fits]
        data[idx] = floats[idx].astype(np.int64)
        good[idx] = True
    values = pd.Series(pd.arrays.IntegerArray(data, ~good))
    return values, null, ~good & ~null


def _coerce_float(series: pd.Series) -> tuple[pd.Series, BoolArray, BoolArray]:
    n = len(series)
    api = pd.api.types
    if api.is_float_dtype(series.dtype) or (
        api.is_integer_dtype(series.dtype) and not api.is_bool_dtype(series.dtype)
    ):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(floats), np.isnan(floats), np.zeros(n, dtype=np.bool_)
    cells, kinds = _object_cells(series)
    null = kinds == _NULL
    floats = np.full(n, np.nan)
    good = kinds == _FLOAT
    floats[good] = cells[good].astype(np.float64)
    int_idx = np.flatnonzero(kinds == _INT)
    if int_idx.size:
        # Ints beyond the float range (10**400) cannot be a float at all.
        idx = int_idx[_int_fits(cells[int_idx], -_FLOAT_MAX, _FLOAT_MAX)]
        floats[idx] = cells[idx].astype(np.float64)
        good[idx] = True
    # A float cell that is NaN was already classified null by pd.isna.
    return pd.Series(floats), null, ~good & ~null


def _coerce_boolean(series: pd.Series) -> tuple[pd.Series, BoolArray, BoolArray]:
    n = len(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        null = series.isna().to_numpy(dtype=np.bool_)
        return series.astype("boolean"), null, np.zeros(n, dtype=np.bool_)
    cells, kinds = _object_cells(series)
    good = kinds == _BOOL
    data = np.zeros(n, dtype=np.bool_)
    data[good] = cells[good].astype(np.bool_)
    values = pd.Series(pd.arrays.BooleanArray(data, ~good))
    null = kinds == _NULL
    return values, null, ~good & ~null


def _coerce_categorical(series: pd.Series) -> tuple[pd.Series, BoolArray, BoolArray]:
    n = len(series)
    if isinstance(series.dtype, pd.StringDtype):
        null = series.isna().to_numpy(dtype=np.bool_)
        return series.astype(STR_DTYPE), null, np.zeros(n, dtype=np.bool_)
    cells, kinds = _object_cells(series)
    good = kinds == _STR
    strings = np.full(n, np.nan, dtype=object)
    strings[good] = cells[good]
    null = kinds == _NULL
    return pd.Series(strings, dtype=STR_DTYPE), null, ~good & ~null


def _coerce_datetime(series: pd.Series) -> tuple[pd.Series, BoolArray, BoolArray]:
    n = len(series)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        null = series.isna().to_numpy(dtype=np.bool_)
        return _to_utc(series), null, np.zeros(n, dtype=np.bool_)
    cells, kinds = _object_cells(series)
    null = kinds == _NULL
    micros = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)  # the NaT sentinel
    for kind, fmt in ((_STR, "ISO8601"), (_TIME, None)):
        idx = np.flatnonzero(kinds == kind)
        if idx.size == 0:
            continue
        chunk = pd.Series(cells[idx], dtype=object)
        if kind == _STR:
            words = chunk.str.strip().str.lower()
            chunk = chunk.where(~words.isin(_RELATIVE_WORDS), None)
        converted = _to_utc(pd.to_datetime(chunk, errors="coerce", utc=True, format=fmt))
        naive = converted.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        micros[idx] = naive.view(np.int64)
    parsed = pd.Series(micros.view("datetime64[us]")).dt.tz_localize("UTC")
    good = parsed.notna().to_numpy(dtype=np.bool_)
    return parsed, null, ~good & ~null


def _to_utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC")
    else:
        values = values.dt.tz_localize("UTC")
    try:
        return values.astype(DATETIME_DTYPE)
    except (OverflowError, ValueError):
        # Finer units than microseconds cannot overflow at us resolution; keep it safe anyway.
        return pd.Series(pd.NaT, index=values.index, dtype=DATETIME_DTYPE)


_COERCERS = {
    ColumnType.INTEGER: _coerce_integer,
    ColumnType.FLOAT: _coerce_float,
    ColumnType.BOOLEAN: _coerce_boolean,
    ColumnType.CATEGORICAL: _coerce_categorical,
    ColumnType.DATETIME: _coerce_datetime,
}
