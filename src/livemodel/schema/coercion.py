"""Per-column checks: coerce one batch column to its signature type and flag every cell.

A column arrives either as a pandas Series (a DataFrame batch, :func:`check_column`) or
as the list of cells that JSON records hold for it (the serving path, :func:`check_cells`).
Either way it is first reduced to the *plain form* of its type: a numpy array (INTEGER
int64, FLOAT float64, BOOLEAN bool, CATEGORICAL object of ``str`` or a typed column's own
Arrow strings, DATETIME int64 microseconds since 1970 UTC; ``_PLAIN`` says what a missing
cell holds) and ``null`` and ``wrong`` masks. Every check and the coerced output array are
computed from it, once, whatever the input was.

A Series of the right dtype reaches it in one vectorized step. Any other column is one of
Python objects, classified by the cells' types with ``pd.factorize`` (one C-level pass plus
an ``isinstance`` per distinct type); this object path alone decides what hostile values
(nested lists, huge integers, bytes) mean. A list of cells first tries a fast path for
the clean case (every cell of the expected Python type, or ``None``) and hands the whole
column to the object path on any surprise.

Type rules (strict, because a silent conversion hides a broken client):

=============  ========================================================================
INTEGER        ints and integral finite floats (``3.0``) that fit in int64; ``true``,
               ``"3"``, ``3.5``, ``inf`` and ``10**30`` are WRONG_TYPE
FLOAT          ints and floats; bools and strings are WRONG_TYPE; ``NaN`` is null;
               ``±inf`` is a float, so it is OUT_OF_RANGE unless training was unbounded
BOOLEAN        bools only (``0``/``1`` and ``"true"`` are WRONG_TYPE)
CATEGORICAL    strings only (numbers are WRONG_TYPE, and so is text that is not valid
               Unicode, such as a lone surrogate ``"\\ud800"`` that ``json.loads`` accepts)
DATETIME       ISO-8601 strings, ``datetime``/``Timestamp``/``datetime64``; naive values
               are read as UTC; unparsable text and bare numbers are WRONG_TYPE
=============  ========================================================================

Coerced dtypes (stable whatever the batch holds): INTEGER ``Int64``, FLOAT ``float64``,
BOOLEAN ``boolean``, CATEGORICAL ``str`` (pandas StringDtype, NaN for missing), DATETIME
``datetime64[us, UTC]``. WRONG_TYPE cells become null; out-of-range and unseen values are
kept. Categorical columns have no range.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.schema.signature import ColumnSchema, ColumnType

__all__ = ["ColumnCheck", "OutputArray", "check_cells", "check_column", "missing_column"]

BoolArray = npt.NDArray[np.bool_]
#: A coerced column: a float64 ndarray or a pandas extension array of the output dtype.
OutputArray = npt.NDArray[Any] | pd.api.extensions.ExtensionArray

# Cell kinds, as small ints so a whole column is classified into one int8 array.
_NULL, _BOOL, _INT, _FLOAT, _STR, _TIME, _OTHER = range(7)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_MAX = int(np.finfo(np.float64).max)
_NAT = np.iinfo(np.int64).min
# pandas parses these words relative to the clock: never a value a client meant to send.
_RELATIVE_WORDS = frozenset({"now", "today"})

STR_DTYPE = pd.StringDtype(na_value=np.nan)
DATETIME_DTYPE = pd.DatetimeTZDtype(unit="us", tz="UTC")


class _Plain(NamedTuple):
    """A column in the plain form of its type (see the module docstring)."""

    data: OutputArray  # an ndarray, or the Arrow strings of a typed CATEGORICAL column
    null: BoolArray
    wrong: BoolArray
    values: OutputArray | None = None  # the coerced column, when the input already was it


@dataclass(frozen=True, eq=False)
class ColumnCheck:
    """Everything validation and quality need to know about one column of one batch.

    Masks are per row and disjoint: a null cell is never also wrong-typed, a wrong-typed
    cell is never out of range. ``null`` counts missing values whether or not training
    allowed them; :attr:`null_violation` is the subset that breaks the signature.
    ``values`` is the coerced column; ``source`` the cells as the batch held them.
    """

    schema: ColumnSchema
    present: bool
    values: OutputArray
    source: pd.Series | Sequence[Any]
    null: BoolArray
    wrong_type: BoolArray
    out_of_range: BoolArray
    unseen: BoolArray

    def sent(self, row: int) -> Any:
        """The cell at position ``row`` as the batch held it."""
        if isinstance(self.source, pd.Series):
            return self.source.iloc[row]
        return self.source[row]

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
    cells = [None] * n
    values, _ = _output(schema.type, _plain_cells(schema.type, cells))
    none = np.zeros(n, dtype=np.bool_)
    return ColumnCheck(schema, False, values, cells, np.ones(n, dtype=np.bool_), none, none, none)


def check_column(schema: ColumnSchema, series: pd.Series, tolerance: float = 0.0) -> ColumnCheck:
    """Coerce ``series`` to ``schema``'s type and flag null, wrong-type, out-of-range cells."""
    series = series.reset_index(drop=True)
    return _checked(schema, _plain_series(schema.type, series), series, tolerance)


def check_cells(schema: ColumnSchema, cells: Sequence[Any], tolerance: float = 0.0) -> ColumnCheck:
    """Like :func:`check_column` for one column of JSON records (``None`` for an absent key)."""
    return _checked(schema, _plain_cells(schema.type, cells), cells, tolerance)


def _plain_cells(col_type: ColumnType, cells: Sequence[Any]) -> _Plain:
    plain = _fast(col_type, cells)
    if plain is None:
        # fromiter keeps a nested list as one cell, where np.array would add a dimension.
        plain = _OBJECTS[col_type](np.fromiter(cells, dtype=object, count=len(cells)))
    return plain


def _checked(
    schema: ColumnSchema, plain: _Plain, source: pd.Series | Sequence[Any], tolerance: float
) -> ColumnCheck:
    values, (data, null, wrong, _) = _output(schema.type, plain)
    n = len(data)
    out_of_range, unseen = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
    if schema.categories is not None:
        unseen = ~_known(data, frozenset(schema.categories))
        unseen &= ~null & ~wrong
    ranged = schema.min is not None or schema.max is not None
    if ranged and schema.type is not ColumnType.CATEGORICAL:
        out_of_range = _out_of_range(schema, np.asarray(data), tolerance)
        out_of_range &= ~null & ~wrong
    return ColumnCheck(schema, True, values, source, null, wrong, out_of_range, unseen)


def _known(cells: OutputArray, categories: frozenset[str]) -> BoolArray:
    """Cells whose value is one of ``categories`` (never a missing one)."""
    if isinstance(cells, np.ndarray):
        return np.fromiter(map(categories.__contains__, cells), dtype=np.bool_, count=len(cells))
    # Arrow strings of a typed column, maybe millions: look each distinct one up once.
    codes, uniques = cells.factorize()
    found = np.fromiter(map(categories.__contains__, uniques), dtype=np.bool_, count=len(uniques))
    known: BoolArray = np.append(found, False)[codes]  # code -1 is a missing cell
    return known


def _output(col_type: ColumnType, plain: _Plain) -> tuple[OutputArray, _Plain]:
    """The coerced column; building a ``str`` one can still find wrong-typed cells."""
    data, null, wrong, values = plain
    if values is not None:
        return values, plain
    data = np.asarray(data)
    if col_type is ColumnType.FLOAT:
        return data, plain
    if col_type is ColumnType.INTEGER:
        return pd.arrays.IntegerArray(data, null | wrong), plain
    if col_type is ColumnType.BOOLEAN:
        return pd.arrays.BooleanArray(data, null | wrong), plain
    if col_type is ColumnType.DATETIME:
        return _STAMPS._from_sequence(data.view("M8[us]"), dtype=DATETIME_DTYPE), plain
    try:
        return _STRINGS._from_sequence(data, dtype=STR_DTYPE), plain
    except UnicodeEncodeError:
        # A lone surrogate cannot be stored as UTF-8 text, so it is not a string value.
        bad = np.fromiter((_unencodable(v) for v in data), dtype=np.bool_, count=len(data))
        data = np.where(bad, np.nan, data)
        return _STRINGS._from_sequence(data, dtype=STR_DTYPE), _Plain(data, null, wrong | bad)


# _from_sequence, the ExtensionArray constructor pd.array dispatches to, costs a third of
# pd.array on a small batch; ``data`` is already what each expects (str and NaN; M8[us]).
_STRINGS: Any = STR_DTYPE.construct_array_type()
_STAMPS: Any = DATETIME_DTYPE.construct_array_type()


def _unencodable(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _out_of_range(schema: ColumnSchema, data: npt.NDArray[Any], tolerance: float) -> BoolArray:
    """Cells outside the widened training range; missing cells hold placeholders (NaN, 0,
    NaT's int), so the caller keeps only the well-typed ones."""
    if schema.type is ColumnType.DATETIME:
        numbers = data / 1e6  # epoch seconds, like the signature's bounds
    else:
        numbers = data.astype(np.float64, copy=False)
    slack = 0.0
    if schema.min is not None and schema.max is not None:
        slack = tolerance * (schema.max - schema.min)
    lo = -np.inf if schema.min is None else schema.min - slack
    hi = np.inf if schema.max is None else schema.max + slack
    outside: BoolArray = (numbers < lo) | (numbers > hi)
    return outside


# --- Series of the expected dtype (DataFrame batches) ------------------------------------


def _plain_series(col_type: ColumnType, series: pd.Series) -> _Plain:
    api, dtype, n = pd.api.types, series.dtype, len(series)
    if col_type is ColumnType.INTEGER and api.is_float_dtype(dtype):
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        null = np.isnan(floats)
        return _integers(null, _NO_CELLS, _NO_INDEX, floats, np.flatnonzero(~null))
    arrow_text = isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    fits = {
        ColumnType.INTEGER: api.is_signed_integer_dtype(dtype),
        ColumnType.FLOAT: api.is_float_dtype(dtype) or api.is_integer_dtype(dtype),
        ColumnType.BOOLEAN: api.is_bool_dtype(dtype),
        ColumnType.CATEGORICAL: arrow_text,
        ColumnType.DATETIME: api.is_datetime64_any_dtype(dtype),
    }
    if not fits[col_type]:
        return _OBJECTS[col_type](series.to_numpy(dtype=object))
    if col_type is ColumnType.CATEGORICAL:
        # Kept as Arrow strings (to_numpy would make a Python object per cell); Arrow
        # buffers are immutable, so the copy is cheap.
        values = series.astype(STR_DTYPE).array.copy()
        null = series.isna().to_numpy(dtype=np.bool_)
        return _Plain(values, null, np.zeros(n, dtype=np.bool_), values)
    if col_type is ColumnType.DATETIME:
        null = series.isna().to_numpy(dtype=np.bool_)
        micros = _utc_micros(series)
        return _Plain(micros, null, (micros == _NAT) & ~null)
    # A copy, because the coerced frame must never share memory with the caller's frame
    # (to_numpy(copy=True) with an na_value can still return the Series' own array).
    plain_dtype, placeholder = _PLAIN[col_type]
    data = series.to_numpy(dtype=plain_dtype, na_value=placeholder).copy()
    if col_type is ColumnType.FLOAT:
        null = np.isnan(data)
    else:
        null = series.isna().to_numpy(dtype=np.bool_)
    return _Plain(data, null, np.zeros(n, dtype=np.bool_))


# The dtype of each type's plain form, and what a missing cell holds there (DATETIME:
# int64 microseconds since 1970 UTC, missing as NaT's int).
_PLAIN: dict[ColumnType, tuple[type, Any]] = {
    ColumnType.INTEGER: (np.int64, 0),
    ColumnType.FLOAT: (np.float64, np.nan),
    ColumnType.BOOLEAN: (np.bool_, False),
    ColumnType.CATEGORICAL: (object, np.nan),  # the str cells themselves
}
_NO_CELLS = np.zeros(0, dtype=object)
_NO_INDEX = np.zeros(0, dtype=np.intp)


def _utc_micros(values: pd.Series) -> npt.NDArray[np.int64]:
    """Microseconds since 1970 (UTC) of a datetime Series; naive values are read as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC")
    else:
        values = values.dt.tz_localize("UTC")
    try:
        values = values.astype(DATETIME_DTYPE)
    except (OverflowError, ValueError):
        # Finer units than microseconds cannot overflow at us resolution; keep it safe anyway.
        return np.full(len(values), _NAT, dtype=np.int64)
    naive = values.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return cast(npt.NDArray[np.int64], naive.view(np.int64).copy())


# --- Python objects (object columns, and any list of cells the fast paths decline) -------


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


def _int_fits(cells: npt.NDArray[np.object_], lo: int, hi: int) -> BoolArray:
    """Elementwise ``lo <= cell <= hi`` for python/numpy ints of any size, without overflow."""
    if cells.size == 0:
        return np.zeros(0, dtype=np.bool_)
    return np.asarray((cells >= lo) & (cells <= hi), dtype=np.bool_)


def _integers(
    null: BoolArray,
    cells: npt.NDArray[np.object_],
    int_idx: npt.NDArray[np.intp],
    floats: npt.NDArray[np.float64],
    float_idx: npt.NDArray[np.intp],
) -> _Plain:
    """int64s from the int cells at ``int_idx`` and the float values at ``float_idx``."""
    n = len(null)
    data = np.zeros(n, dtype=np.int64)
    good = np.zeros(n, dtype=np.bool_)
    if int_idx.size:
        idx = int_idx[_int_fits(cells[int_idx], _INT64_MIN, _INT64_MAX)]
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
    return _Plain(data, null, ~good & ~null)


def _objects_integer(cells: npt.NDArray[np.object_]) -> _Plain:
    kinds = _kinds(cells)
    float_idx = np.flatnonzero(kinds == _FLOAT)
    floats = np.zeros(len(cells), dtype=np.float64)
    floats[float_idx] = cells[float_idx].astype(np.float64)
    return _integers(kinds == _NULL, cells, np.flatnonzero(kinds == _INT), floats, float_idx)


def _objects_float(cells: npt.NDArray[np.object_]) -> _Plain:
    kinds = _kinds(cells)
    floats = np.full(len(cells), np.nan)
    good = kinds == _FLOAT
    floats[good] = cells[good].astype(np.float64)
    int_idx = np.flatnonzero(kinds == _INT)
    if int_idx.size:
        # Ints beyond the float range (10**400) cannot be a float at all.
        idx = int_idx[_int_fits(cells[int_idx], -_FLOAT_MAX, _FLOAT_MAX)]
        floats[idx] = cells[idx].astype(np.float64)
        good[idx] = True
    # A float cell that is NaN was already classified null by pd.isna.
    null = kinds == _NULL
    return _Plain(floats, null, ~good & ~null)


def _objects_of_one_kind(col_type: ColumnType, kind: int, cells: npt.NDArray[np.object_]) -> _Plain:
    """BOOLEAN and CATEGORICAL: the cells of one kind (bools, strings) are the values."""
    kinds = _kinds(cells)
    good = kinds == kind
    plain_dtype, placeholder = _PLAIN[col_type]
    data: npt.NDArray[Any] = np.full(len(cells), placeholder, dtype=plain_dtype)
    data[good] = cells[good]
    null = kinds == _NULL
    return _Plain(data, null, ~good & ~null)


def _objects_datetime(cells: npt.NDArray[np.object_]) -> _Plain:
    kinds = _kinds(cells)
    micros = np.full(len(cells), _NAT, dtype=np.int64)
    for kind, fmt in ((_STR, "ISO8601"), (_TIME, None)):
        idx = np.flatnonzero(kinds == kind)
        if idx.size == 0:
            continue
        chunk = pd.Series(cells[idx], dtype=object)
        if kind == _STR:
            words = chunk.str.strip().str.lower()
            chunk = chunk.where(~words.isin(_RELATIVE_WORDS), None)
        micros[idx] = _utc_micros(pd.to_datetime(chunk, errors="coerce", utc=True, format=fmt))
    null = kinds == _NULL
    return _Plain(micros, null, (micros == _NAT) & ~null)


# --- Lists of clean cells: every cell of the expected Python type, or None -------------


def _fast(col_type: ColumnType, cells: Sequence[Any]) -> _Plain | None:
    """The plain form of a clean column; ``None`` on any surprise, for the object path.

    Within its domain it must agree with the object path exactly (a property test checks).
    """
    types = set(map(type, cells))
    if not types <= _CLEAN[col_type]:
        return None
    n = len(cells)
    null = np.zeros(n, dtype=np.bool_)
    if _NONE in types:
        null = np.fromiter((v is None for v in cells), dtype=np.bool_, count=n)
    if col_type is ColumnType.DATETIME:
        micros = [_NAT if v is None else _iso_micros(v) for v in cells]
        if None in micros:
            return None
        return _Plain(np.array(micros, dtype=np.int64), null, np.zeros(n, dtype=np.bool_))
    # float() rounds an int a little above the largest float down to it; the rule (as on
    # the object path) is that such an int is not a float at all.
    floats = col_type is ColumnType.FLOAT
    if floats and int in types and any(abs(v) > _FLOAT_MAX for v in cells if type(v) is int):
        return None
    dtype, placeholder = _PLAIN[col_type]
    if _NONE in types:
        cells = [placeholder if v is None else v for v in cells]
    try:  # an int beyond int64 overflows: the object path says why
        data: npt.NDArray[Any] = np.array(cells, dtype=dtype)
    except OverflowError:
        return None
    if floats:
        null = np.isnan(data)
    return _Plain(data, null, np.zeros(n, dtype=np.bool_))


_NONE = type(None)
_CLEAN: dict[ColumnType, set[type]] = {
    ColumnType.INTEGER: {int, _NONE},
    ColumnType.FLOAT: {float, int, _NONE},
    ColumnType.BOOLEAN: {bool, _NONE},
    ColumnType.CATEGORICAL: {str, _NONE},
    ColumnType.DATETIME: {str, _NONE},
}
# The ISO-8601 shapes on which datetime.fromisoformat and pandas' parser agree exactly.
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _iso_micros(text: str) -> int | None:
    """Microseconds since 1970 UTC of an ISO-8601 string of a simple shape, else None."""
    if _ISO.fullmatch(text) is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:  # e.g. month 13: the object path reports it
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return (stamp - _EPOCH) // _MICROSECOND


_OBJECTS: dict[ColumnType, Callable[[npt.NDArray[np.object_]], _Plain]] = {
    ColumnType.INTEGER: _objects_integer,
    ColumnType.FLOAT: _objects_float,
    ColumnType.BOOLEAN: functools.partial(_objects_of_one_kind, ColumnType.BOOLEAN, _BOOL),
    ColumnType.CATEGORICAL: functools.partial(_objects_of_one_kind, ColumnType.CATEGORICAL, _STR),
    ColumnType.DATETIME: _objects_datetime,
}
