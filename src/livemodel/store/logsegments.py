"""Log segments on disk: naming, listing, decoding to Arrow, compaction to Parquet.

The format itself is specified in :mod:`livemodel.store.predlog`. Everything here works
on one local directory of segments; closed segments are immutable, which is the seam
where they could later be shipped to an fsspec URL.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from livemodel.errors import ConfigError, StoreError
from livemodel.store.predlog import LABELS, PREDICTIONS, check_model_name

SegmentState: TypeAlias = Literal["parquet", "closed", "open"]

OPEN_SUFFIX: Final = ".open.jsonl"
CLOSED_SUFFIX: Final = ".jsonl"
PARQUET_SUFFIX: Final = ".parquet"
# Longest suffix first: ".open.jsonl" also ends in ".jsonl".
_SUFFIXES: Final[tuple[tuple[str, SegmentState], ...]] = (
    (PARQUET_SUFFIX, "parquet"),
    (OPEN_SUFFIX, "open"),
    (CLOSED_SUFFIX, "closed"),
)
_RANK: Final[dict[SegmentState, int]] = {"parquet": 0, "closed": 1, "open": 2}
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
    },
}
_ROW_GROUP_ROWS = 131_072


def local_root(root: str | os.PathLike[str]) -> Path:
    """The log root as a local path; URLs are refused until object storage is built."""
    text = os.fspath(root)
    if not isinstance(text, str) or not text or "://" in text:
        raise ConfigError(f"the log root must be a local directory path, got {root!r}")
    return Path(text)


def fixed_types(kind: str) -> dict[str, pa.DataType]:
    """The columns every table of ``kind`` has, with their types."""
    return dict(_FIXED_TYPES[kind])


def segment_stem(pid: int, start_us: int, token: str, seq: int) -> str:
    """``<host>_<pid>_<start µs>_<token>_<seq>``, with ``_`` kept out of the host part."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"
    return f"{host}_{pid}_{start_us:016d}_{token}_{seq:06d}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment file in its most compacted state."""

    stem: str
    path: Path
    state: SegmentState


def list_segments(directory: Path) -> list[Segment]:
    """Segments of a directory, one per stem, preferring parquet > closed > open."""
    try:
        names = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        return []
    best: dict[str, Segment] = {}
    for name in names:
        for suffix, state in _SUFFIXES:
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                current = best.get(stem)
                if current is None or _RANK[state] < _RANK[current.state]:
                    best[stem] = Segment(stem, directory / name, state)
                break
    return sorted(best.values(), key=lambda s: s.stem)


def read_jsonl(segment: Segment) -> tuple[Segment, bytes | None]:
    """The bytes of a JSON-lines segment, following it if it was closed or compacted.

    Returns the segment actually read and its bytes, or a parquet segment and ``None``
    when the file was compacted between listing and reading.
    """
    order = (OPEN_SUFFIX, CLOSED_SUFFIX, PARQUET_SUFFIX)
    states: tuple[SegmentState, ...] = ("open", "closed", "parquet")
    start = order.index(segment.path.name[len(segment.stem) :])
    for suffix, state in zip(order[start:], states[start:], strict=True):
        path = segment.path.with_name(segment.stem + suffix)
        if state == "parquet":
            if path.exists():
                return Segment(segment.stem, path, state), None
            break
        try:
            return Segment(segment.stem, path, state), path.read_bytes()
        except FileNotFoundError:
            continue
    raise StoreError(f"log segment {segment.path} vanished while being read")


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


def compact_segment(path: Path, kind: str) -> Path:
    """Rewrite a closed JSON-lines segment as Parquet (zstd); return the Parquet path.

    Idempotent and crash-safe: the Parquet file appears by an atomic rename after it is
    fsynced, and only then is the JSON-lines file removed.
    """
    stem = path.name.removesuffix(OPEN_SUFFIX).removesuffix(CLOSED_SUFFIX)
    target = path.with_name(stem + PARQUET_SUFFIX)
    if not target.exists():
        table = decode_segment(path.read_bytes(), path, kind)
        table = table.replace_schema_metadata({"livemodel.format": "1", "livemodel.kind": kind})
        tmp = path.with_name(stem + PARQUET_SUFFIX + ".tmp")
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=_ROW_GROUP_ROWS)
            fsync_path(tmp)
            tmp.replace(target)
            fsync_path(path.parent)
        except OSError as exc:
            raise StoreError(f"cannot compact log segment {path}: {exc}") from exc
    path.unlink(missing_ok=True)
    return target


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (so a rename or a new file survives power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def abandoned_segments(directory: Path) -> list[Path]:
    """``.open`` segments on this host whose writer process no longer exists."""
    found = []
    for seg in list_segments(directory):
        if seg.state != "open":
            continue
        parts = seg.stem.split("_")
        if (
            len(parts) == 5  # host, pid, start, token, seq
            and parts[0] == segment_stem(0, 0, "", 0).split("_")[0]
            and parts[1].isdigit()
            and not _pid_alive(int(parts[1]))
        ):
            found.append(seg.path)
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def compact(root: str | os.PathLike[str], model: str, *, abandoned: bool = True) -> list[Path]:
    """Compact every closed segment of ``model`` (predictions and labels) to Parquet.

    With ``abandoned``, ``.open`` segments left by dead writer processes on this host are
    compacted too (their torn tail, if any, is dropped). Returns the Parquet files made.
    """
    made = []
    for kind in (PREDICTIONS, LABELS):
        directory = Path(root) / check_model_name(model) / kind
        paths = [s.path for s in list_segments(directory) if s.state == "closed"]
        if abandoned:
            paths += abandoned_segments(directory)
        made += [compact_segment(p, kind) for p in paths]
    return made
