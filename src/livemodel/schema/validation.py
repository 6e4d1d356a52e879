"""Validate a request batch against a model signature, vectorized over columns.

:func:`validate` checks each signature column once, with vectorized operations, whether
the batch is a DataFrame or a list of JSON records (see :mod:`livemodel.schema.coercion`
for the type rules). Records are never turned into an intermediate frame: each column's
cells are pulled from them as sent, and the serving path (1 to ~64 records) costs about
as much as building the output frame itself (``benchmarks/validation.py``). The result
carries a frame ready for ``model.predict`` (signature order and dtypes, unexpected
columns dropped, wrong-type cells null), a per-row ``valid`` mask, counts for metrics
and, built only when asked for, one :class:`Violation` per problem.

Decisions worth knowing:

* A column missing from the batch makes **every** row invalid (each row lacks a value)
  and is one violation with ``row=None``. An unexpected column is also a ``row=None``
  violation, but it is dropped from the frame and does **not** make rows invalid; nor
  does the signature's target column, which is dropped silently (labelled windows).
* In JSON records a key absent from one record is a null in that row.
* ``tolerance`` widens ``[min, max]`` by that fraction of the training range on each
  side (only for columns with both bounds).

>>> import pandas as pd
>>> from livemodel.schema.signature import infer_signature
>>> sig = infer_signature(pd.DataFrame({"x": [1, 5], "c": ["a", "b"]}))
>>> result = validate(sig, [{"x": 3, "c": "a"}, {"x": 9, "c": "z", "extra": 1}])
>>> result.valid.tolist(), result.row_flags(1)
([True, False], ['out_of_range:x', 'unseen_category:c'])
>>> result.summary(limit=1)
"3 problems (1 of 2 rows invalid): unexpected column 'extra'; and 2 more"
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError
from livemodel.schema.coercion import (
    BoolArray,
    ColumnCheck,
    OutputArray,
    check_cells,
    check_column,
    missing_column,
)
from livemodel.schema.signature import ColumnType, Signature

__all__ = ["ValidationResult", "Violation", "ViolationKind", "validate"]


class ViolationKind(StrEnum):
    MISSING_COLUMN = "missing_column"
    UNEXPECTED_COLUMN = "unexpected_column"
    WRONG_TYPE = "wrong_type"
    NULL = "null"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"


@dataclass(frozen=True)
class Violation:
    """One problem: a cell (``row`` is its position in the batch) or a whole column."""

    row: int | None
    column: str
    kind: ViolationKind
    message: str


_CELL_KINDS = (
    ViolationKind.NULL,
    ViolationKind.WRONG_TYPE,
    ViolationKind.OUT_OF_RANGE,
    ViolationKind.UNSEEN_CATEGORY,
)
_NOUNS = {
    ViolationKind.NULL: ("null value", "null values"),
    ViolationKind.WRONG_TYPE: ("value of the wrong type", "values of the wrong type"),
    ViolationKind.OUT_OF_RANGE: ("value out of range", "values out of range"),
    ViolationKind.UNSEEN_CATEGORY: ("unseen category", "unseen categories"),
}


def _cell_masks(check: ColumnCheck) -> tuple[BoolArray, ...]:
    """The row masks of ``check`` for each of ``_CELL_KINDS``, in that order."""
    return (check.null_violation, check.wrong_type, check.out_of_range, check.unseen)


def _cell_mask(check: ColumnCheck, kind: ViolationKind) -> BoolArray:
    return _cell_masks(check)[_CELL_KINDS.index(kind)]


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """Outcome of :func:`validate`; ``checks`` holds the per-column masks quality reuses."""

    frame: pd.DataFrame
    valid: BoolArray
    counts: dict[tuple[str, ViolationKind], int]
    checks: tuple[ColumnCheck, ...]
    unexpected_columns: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return len(self.valid)

    @property
    def n_violations(self) -> int:
        return sum(self.counts.values())

    @cached_property
    def violations(self) -> tuple[Violation, ...]:
        """Column problems first, then cell problems by row and signature column order."""
        found = [
            Violation(None, c.schema.name, ViolationKind.MISSING_COLUMN, _missing(c.schema.name))
            for c in self.checks
            if not c.present
        ]
        found += [
            Violation(None, name, ViolationKind.UNEXPECTED_COLUMN, _unexpected(name))
            for name in self.unexpected_columns
        ]
        rows, cols, kinds = [], [], []
        for col_index, check in enumerate(self.checks):
            for kind_index, kind in enumerate(_CELL_KINDS):
                hit = np.flatnonzero(_cell_mask(check, kind))
                rows.append(hit)
                cols.append(np.full(hit.size, col_index))
                kinds.append(np.full(hit.size, kind_index))
        if rows:
            row_at, col_at, kind_at = (np.concatenate(a) for a in (rows, cols, kinds))
            for i in np.lexsort((kind_at, col_at, row_at)):
                check, r = self.checks[col_at[i]], int(row_at[i])
                cell_kind = _CELL_KINDS[kind_at[i]]
                message = f"row {r}: {_cell_message(check, cell_kind, r)}"
                found.append(Violation(r, check.schema.name, cell_kind, message))
        return tuple(found)

    def row_flags(self, i: int) -> list[str]:
        """Short codes for row ``i``, e.g. ``["null:dep_delay", "out_of_range:distance"]``."""
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise InvalidInputError(f"row index must be an int, got {type(i).__name__}")
        if not 0 <= i < self.n_rows:
            raise InvalidInputError(f"row {i} is outside this batch of {self.n_rows} rows")
        if self.valid[i]:
            return []  # the common case, for a server that asks about every row
        flags = []
        for check in self.checks:
            name = check.schema.name
            if not check.present:
                flags.append(f"{ViolationKind.MISSING_COLUMN}:{name}")
                continue
            flags += [f"{kind}:{name}" for kind in _CELL_KINDS if _cell_mask(check, kind)[i]]
        return flags

    def flag_matrix(self) -> tuple[list[str], BoolArray]:
        """The flags that occur in the batch and a (rows x flags) mask: the flags of row
        ``i``, in order, are those :meth:`row_flags` gives (vectorized for batch jobs)."""
        names: list[str] = []
        masks: list[BoolArray] = []
        for check in self.checks:
            name = check.schema.name
            if not check.present:
                names.append(f"{ViolationKind.MISSING_COLUMN}:{name}")
                masks.append(np.ones(self.n_rows, dtype=bool))
                continue
            for kind, mask in zip(_CELL_KINDS, _cell_masks(check), strict=True):
                if mask.any():
                    names.append(f"{kind}:{name}")
                    masks.append(mask)
        if not masks:
            return names, np.zeros((self.n_rows, 0), dtype=bool)
        return names, np.column_stack(masks)

    def summary(self, limit: int = 5) -> str:
        """At most ``limit`` problems, one per column and kind, in one human line."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit must be a non-negative int, got {limit!r}")
        total = self.n_violations
        if total == 0:
            return "no problems"
        groups = [_missing(c.schema.name) for c in self.checks if not c.present]
        groups += [_unexpected(name) for name in self.unexpected_columns]
        for check in self.checks:
            for kind in _CELL_KINDS:
                count = self.counts.get((check.schema.name, kind), 0)
                if count and len(groups) < limit + 1:
                    first = int(np.argmax(_cell_mask(check, kind)))
                    noun = _NOUNS[kind][count != 1]
                    detail = _cell_message(check, kind, first, with_column=False)
                    name = _short(check.schema.name)
                    groups.append(f"column {name}: {count} {noun} (row {first}: {detail})")
        n_groups = sum(1 for c in self.checks if not c.present) + len(self.unexpected_columns)
        n_groups += sum(1 for (_, kind) in self.counts if kind in _CELL_KINDS)
        invalid = int((~self.valid).sum())
        head = f"{total} problem{'s' if total != 1 else ''} "
        head += f"({invalid} of {self.n_rows} rows invalid)"
        if limit == 0:
            return head
        text = head + ": " + "; ".join(groups[:limit])
        return text + (f"; and {n_groups - limit} more" if n_groups > limit else "")


def validate(
    signature: Signature,
    batch: pd.DataFrame | list[dict[str, Any]] | tuple[dict[str, Any], ...],
    *,
    tolerance: float = 0.0,
) -> ValidationResult:
    """Check ``batch`` against ``signature``; never raises for bad *values*, only for a
    malformed batch (not a frame or list of dicts, empty, non-string or duplicate names):
    :class:`InvalidInputError`.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise InvalidInputError(f"tolerance must be a number, got {type(tolerance).__name__}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidInputError(f"tolerance must be finite and >= 0, got {tolerance}")
    if isinstance(batch, pd.DataFrame):
        frame = _checked_frame(batch)
        present = set(frame.columns)
        checks = tuple(
            check_column(col, frame[col.name], tolerance)
            if col.name in present
            else missing_column(col, len(frame))
            for col in signature.columns
        )
        return _result(signature, checks, list(frame.columns), frame.index)
    if isinstance(batch, list | tuple):
        keys, columns = _record_columns(batch, signature.names)
        checks = tuple(
            missing_column(col, len(batch)) if cells is None else check_cells(col, cells, tolerance)
            for col, cells in zip(signature.columns, columns, strict=True)
        )
        return _result(signature, checks, keys, pd.RangeIndex(len(batch)))
    raise InvalidInputError(
        f"a batch must be a DataFrame or a list of records, got {type(batch).__name__}"
    )


def _result(
    signature: Signature, checks: tuple[ColumnCheck, ...], names: Iterable[str], index: pd.Index
) -> ValidationResult:
    ignored = set(signature.names)
    if signature.task is not None:
        ignored.add(signature.task.target)
    unexpected = tuple(name for name in names if name not in ignored)
    counts: dict[tuple[str, ViolationKind], int] = {}
    masks: list[BoolArray] = []
    for check in checks:
        if check.present:
            masks += _cell_masks(check)
    # One (columns x kinds, rows) array: two numpy calls instead of four per column.
    stacked = np.array(masks, dtype=np.bool_).reshape(len(masks), len(index))
    totals = np.count_nonzero(stacked, axis=1).reshape(-1, len(_CELL_KINDS)).tolist()
    invalid: BoolArray = np.logical_or.reduce(stacked, axis=0)
    per_check = iter(totals)
    for check in checks:
        name = check.schema.name
        if not check.present:
            counts[(name, ViolationKind.MISSING_COLUMN)] = 1
            invalid[:] = True
            continue
        for kind, count in zip(_CELL_KINDS, next(per_check), strict=True):
            if count:
                counts[(name, kind)] = count
    for name in unexpected:
        counts[(name, ViolationKind.UNEXPECTED_COLUMN)] = 1
    frame = _frame([c.values for c in checks], signature.names, index)
    return ValidationResult(frame, ~invalid, counts, checks, unexpected)


# pd.DataFrame(dict) re-checks and copies every column (about 15 us each, the largest
# cost of a small batch); the columns here are already arrays of the right dtype and
# length, which is what DataFrame._from_arrays(verify_integrity=False) takes as is.
_FROM_ARRAYS = getattr(pd.DataFrame, "_from_arrays", None)


@functools.lru_cache(maxsize=64)
def _columns(names: tuple[str, ...]) -> pd.Index:
    # Building an Index of str costs more than checking a small batch; a server asks for
    # the same few signatures' columns again and again.
    return pd.Index(list(names))


def _frame(arrays: list[OutputArray], names: tuple[str, ...], index: pd.Index) -> pd.DataFrame:
    columns = _columns(names).view()  # a new Index object: renaming it touches no other frame
    if _FROM_ARRAYS is None:  # a pandas without it: same frame, slower
        return pd.DataFrame(dict(zip(names, arrays, strict=True)), index=index, columns=columns)
    frame: pd.DataFrame = _FROM_ARRAYS(arrays, columns, index, verify_integrity=False)
    return frame


def _checked_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) == 0:
        raise InvalidInputError("empty batch: there are no rows to validate")
    names = list(frame.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad or isinstance(frame.columns, pd.MultiIndex):
        shown = _short(bad[0] if bad else names[0])
        raise InvalidInputError(f"column names must be strings, got {shown}")
    if frame.columns.has_duplicates:
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise InvalidInputError(f"duplicate column names in batch: {_short(dupes)}")
    return frame


def _record_columns(
    records: list[Any] | tuple[Any, ...], wanted: tuple[str, ...]
) -> tuple[Iterable[str], list[Sequence[Any] | None]]:
    """The batch's keys and each wanted column's cells (``None`` if no record has it)."""
    if len(records) == 0:
        raise InvalidInputError("empty batch: there are no records to validate")
    if all(type(r) is dict for r in records):
        # The common case, every record holding exactly the wanted keys, in C-level passes.
        if wanted and set(map(len, records)) == {len(wanted)}:
            try:
                rows = list(map(operator.itemgetter(*wanted), records))
            except KeyError:
                pass
            else:
                return wanted, [rows] if len(wanted) == 1 else list(zip(*rows, strict=True))
    else:
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInputError(
                    f"record {i} is a {type(record).__name__}, not a JSON object (dict)"
                )
    keys = _record_keys(records)
    return keys, [[r.get(name) for r in records] if name in keys else None for name in wanted]


_NO_KEY = object()


def _record_keys(records: list[Any] | tuple[Any, ...]) -> dict[str, None]:
    """The union of the records' keys, in order of first appearance (as pandas orders it)."""
    keys: dict[Any, None] = dict.fromkeys(itertools.chain.from_iterable(records))
    if not all(isinstance(k, str) for k in keys):
        for i, record in enumerate(records):
            key = next((k for k in record if not isinstance(k, str)), _NO_KEY)
            if key is not _NO_KEY:
                raise InvalidInputError(f"record {i} has a non-string key {_short(key)}")
    return keys


_EXPECTED = {
    ColumnType.INTEGER: "an integer",
    ColumnType.FLOAT: "a number",
    ColumnType.BOOLEAN: "true or false",
    ColumnType.CATEGORICAL: "a string",
    ColumnType.DATETIME: "an ISO-8601 datetime",
}


def _missing(name: str) -> str:
    return f"column {_short(name)} is missing"


def _unexpected(name: str) -> str:
    return f"unexpected column {_short(name)}"


def _cell_message(
    check: ColumnCheck, kind: ViolationKind, row: int, with_column: bool = True
) -> str:
    schema = check.schema
    prefix = f"column {_short(schema.name)}: " if with_column else ""
    value = check.sent(row)
    if kind is ViolationKind.NULL:
        return f"{prefix}value is null but was never null in training"
    if kind is ViolationKind.WRONG_TYPE:
        return f"{prefix}expected {_EXPECTED[schema.type]}, got {_described(value)}"
    if kind is ViolationKind.UNSEEN_CATEGORY:
        return f"{prefix}{_short(value)} was not seen in training"
    lo = "-inf" if schema.min is None else f"{schema.min:g}"
    hi = "inf" if schema.max is None else f"{schema.max:g}"
    if schema.type is ColumnType.DATETIME:
        lo = "-inf" if schema.min is None else _iso(schema.min)
        hi = "inf" if schema.max is None else _iso(schema.max)
    return f"{prefix}{_short(value)} is outside the training range [{lo}, {hi}]"


def _iso(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


_REPR = reprlib.Repr()
_REPR.maxstring = 40
_REPR.maxother = 40
_REPR.maxlevel = 2


def _short(value: Any) -> str:
    """A bounded repr of a user value: long strings, deep nesting and huge ints are cut."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # repr() of a 5000-digit int raises ValueError (int max str digits) or is huge.
        return f"<{value.bit_length()}-bit integer>"
    if isinstance(value, np.generic):
        value = value.item()
    try:
        return _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a user object's __repr__ may raise anything
        return f"<{type(value).__name__}>"


def _described(value: Any) -> str:
    name = type(value).__name__
    return f"{name} {_short(value)}" if not isinstance(value, dict | list) else name
