"""Decoding JSON-lines log segments into flat Arrow tables (the format is in ``predlog``).

Typing follows the data, segment by segment: a column is bool, int64, float64 (ints and
floats mixed) or string, and values of mixed other kinds are kept as JSON text, so a
feature whose type drifts never fails a read. Readers union segments by column name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from livemodel.errors import StoreError
from livemodel.store.predlog import LABELS, PREDICTIONS

_TIME = pa.timestamp("us", tz="UTC")
_FIXED_TYPES: Final[dict[str, dict[str, pa.DataType]]] = {
    PREDICTIONS: {
        "prediction_id": pa.string(),
        "time": _TIME,
        "model": pa.string(),
        "version": pa.int64(),
        "latency_ms": pa.float64(),
        "flags": pa.list_(pa.string()),
        "arm": pa.string(),
    },
    LABELS: {
        "prediction_id": pa.string(),
        "label": pa.null(),  # inferred per segment like a feature
        "label_time": _TIME,
        "label_source": pa.string(),
        "written_time": _TIME,
        "label_by": pa.string(),
    },
}


def fixed_types(kind: str) -> dict[str, pa.DataType]:
    """The columns every table of ``kind`` has, with their types."""
    return dict(_FIXED_TYPES[kind])


def iter_lines(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    """Parse complete lines; bytes after the last newline are a torn write and skipped."""
    view = memoryview(data)
    end = data.rfind(b"\n") + 1
    pos, lineno = 0, 0
    while pos < end:
        newline = data.index(b"\n", pos)
        lineno += 1
        try:
            obj = orjson.loads(view[pos:newline])
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"corrupt log segment {path}, line {lineno}: {exc}") from exc
        if not isinstance(obj, dict):
            raise StoreError(f"corrupt log segment {path}, line {lineno}: not a JSON object")
        yield obj
        pos = newline + 1


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Rows kept while decoding predictions: version and ``start <= time < end`` (µs)."""

    version: int | None = None
    start_us: int | None = None
    end_us: int | None = None

    def keep(self, version: object, ts: int) -> bool:
        return (
            (self.version is None or version == self.version)
            and (self.start_us is None or ts >= self.start_us)
            and (self.end_us is None or ts < self.end_us)
        )


def decode_segment(
    data: bytes,
    path: Path,
    kind: str,
    *,
    where: RowFilter | None = None,
    columns: frozenset[str] | None = None,
) -> pa.Table:
    """Decode a JSON-lines segment of ``kind`` into a flat Arrow table.

    ``where`` filters prediction rows, ``columns`` restricts the columns built (``None``
    builds all). Structural damage in a complete line raises :class:`StoreError`.
    """
    builder = _Columns()
    for obj in iter_lines(data, path):
        try:
            row = _prediction_row(obj, where) if kind == PREDICTIONS else _label_row(obj)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"corrupt log segment {path}: bad record {exc!s:.200}") from exc
        if row is not None:
            builder.add(row if columns is None else {k: row[k] for k in columns if k in row})
    try:
        return builder.table(_FIXED_TYPES[kind], columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise StoreError(f"corrupt log segment {path}: {exc}") from exc


def _prediction_row(obj: Mapping[str, Any], where: RowFilter | None) -> dict[str, object] | None:
    ts, version = obj["ts"], obj["version"]
    if not isinstance(ts, int) or not isinstance(version, int):
        raise TypeError("'ts' and 'version' must be integers")
    if where is not None and not where.keep(version, ts):
        return None
    flags = obj.get("flags") or []
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise TypeError("'flags' must be a list of strings")
    row: dict[str, object] = {
        "prediction_id": _typed(obj["id"], str, "id"),
        "time": ts,
        "model": _typed(obj["model"], str, "model"),
        "version": version,
        "latency_ms": _typed(obj.get("latency_ms"), (int, float, type(None)), "latency_ms"),
        "flags": flags,
        "arm": _typed(obj.get("arm"), (str, type(None)), "arm"),
    }
    for name, value in obj["features"].items():
        row[f"f.{name}"] = value
    _flatten("o", obj["outputs"], row)
    return row


def _flatten(prefix: str, obj: Mapping[str, Any], out: dict[str, object]) -> None:
    for key, value in obj.items():
        if isinstance(value, dict):
            _flatten(f"{prefix}.{key}", value, out)
        else:
            out[f"{prefix}.{key}"] = value


def _label_row(obj: Mapping[str, Any]) -> dict[str, object]:
    return {
        "prediction_id": _typed(obj["id"], str, "id"),
        "label": obj["label"],
        "label_time": _typed(obj["ts"], int, "ts"),
        "label_source": _typed(obj.get("source"), (str, type(None)), "source"),
        "written_time": _typed(obj["written"], int, "written"),
        "label_by": _typed(obj.get("by"), (str, type(None)), "by"),
    }


def _typed(value: object, kind: type | tuple[type, ...], key: str) -> object:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key!r} has the wrong type: {value!r:.50}")
    return value


class _Columns:
    """Column lists grown row by row; a column first seen late is back-filled with None."""

    def __init__(self) -> None:
        self.cols: dict[str, list[object]] = {}
        self.rows = 0

    def add(self, row: Mapping[str, object]) -> None:
        for name, value in row.items():
            col = self.cols.get(name)
            if col is None:
                col = self.cols[name] = [None] * self.rows
            col.append(value)
        self.rows += 1
        for col in self.cols.values():
            if len(col) < self.rows:
                col.append(None)

    def table(self, fixed: Mapping[str, pa.DataType], columns: frozenset[str] | None) -> pa.Table:
        names = [n for n in fixed if columns is None or n in columns]
        names += sorted(n for n in self.cols if n not in fixed)
        arrays = []
        for name in names:
            values = self.cols.get(name, [None] * self.rows)
            kind = fixed.get(name)
            if kind is None or pa.types.is_null(kind):
                arrays.append(infer_array(values))
            else:
                arrays.append(pa.array(values, type=kind))
        return pa.Table.from_arrays(arrays, names=names)


def infer_array(values: list[object]) -> pa.Array:
    """bool, int64, float64 (ints and floats mixed) or string; anything else as JSON text."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {bool}:
        return pa.array(values, type=pa.bool_())
    if kinds == {int}:
        return pa.array(values, type=pa.int64())
    if kinds <= {int, float}:
        # float() first: pyarrow refuses ints that a double cannot hold exactly.
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())  # type: ignore[arg-type]
    if kinds == {str}:
        return pa.array(values, type=pa.string())
    return pa.array(
        [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        type=pa.string(),
    )
