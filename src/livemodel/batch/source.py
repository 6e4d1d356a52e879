"""The Parquet input of a batch job: its files, schema, fingerprint and partitions.

An input is one Parquet file or a directory of them (searched recursively; names
starting with ``.`` or ``_`` are skipped, as Spark, Arrow and DuckDB skip them, and any
other file must be Parquet). Only footers are read here, never data: the row counts of
the row groups plan the partitions and the footer bytes fingerprint the input.

A partition is a run of consecutive row groups of one file holding about
``partition_rows`` rows; a row group is never split, so a file written as one huge row
group is one partition (write smaller row groups for more parallelism).

The fingerprint is the SHA-256 of every file's relative path, size and footer (which
holds the row-group statistics), so it changes when the data does, without reading
gigabytes to say so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.schema.signature import ColumnType, Signature

__all__ = ["InputFile", "ParquetInput", "Partition", "check_feature_types", "open_input", "plan"]

_MAGIC: Final = b"PAR1"
_MAX_FOOTER: Final = 256 * 2**20


@dataclass(frozen=True)
class InputFile:
    """One Parquet file of the input and the row count of each of its row groups."""

    path: str
    size: int
    row_groups: tuple[int, ...]

    @property
    def rows(self) -> int:
        return sum(self.row_groups)


@dataclass(frozen=True)
class ParquetInput:
    """The files of an input, their common Arrow schema and the input's fingerprint."""

    path: str
    files: tuple[InputFile, ...]
    schema: pa.Schema
    fingerprint: str

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass(frozen=True)
class Partition:
    """Row groups ``row_groups`` of ``path``; its rows are input rows ``first_row`` on."""

    index: int
    path: str
    row_groups: tuple[int, ...]
    first_row: int
    rows: int


def open_input(path: str | os.PathLike[str]) -> ParquetInput:
    """Read the footers of a Parquet file or directory; bad input is one clear error."""
    root = Path(path).absolute()
    shown = repr(str(path))
    if root.is_dir():
        paths = _data_files(root)
        if not paths:
            raise InvalidInputError(f"the directory {shown} holds no Parquet files")
    elif root.is_file():
        paths = [root]
    else:
        raise InvalidInputError(f"no such file or directory: {shown}")
    digest = hashlib.sha256()
    files: list[InputFile] = []
    schema: pa.Schema | None = None
    for file in paths:
        name = file.name if file == root else str(file.relative_to(root))
        footer = _footer(file)
        try:
            parquet = pq.ParquetFile(file, pre_buffer=False)
            metadata = parquet.metadata
            file_schema = parquet.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read {str(file)!r} as Parquet: {_first(exc)}") from exc
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema, check_metadata=False):
            raise InvalidInputError(
                f"the files of {shown} do not share one schema: {name!r} differs from "
                f"{files[0].path!r} ({_difference(schema, file_schema)})"
            )
        groups = tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
        files.append(InputFile(str(file), file.stat().st_size, groups))
        digest.update(f"{name}\0{file.stat().st_size}\0".encode())
        digest.update(footer)
    if schema is None:  # pragma: no cover - paths is never empty here
        raise InvalidInputError(f"{shown} holds no Parquet files")
    found = ParquetInput(str(root), tuple(files), schema, digest.hexdigest())
    if found.rows == 0:
        raise InvalidInputError(f"{shown} has no rows to score")
    return found


def plan(source: ParquetInput, partition_rows: int) -> list[Partition]:
    """Partitions of about ``partition_rows`` rows each, in input order; none empty."""
    parts: list[Partition] = []
    first = 0
    for file in source.files:
        groups: list[int] = []
        rows = 0
        for i, n in enumerate(file.row_groups):
            if n == 0:
                continue
            if groups and rows + n > partition_rows:
                parts.append(Partition(len(parts), file.path, tuple(groups), first, rows))
                first += rows
                groups, rows = [], 0
            groups.append(i)
            rows += n
        if groups:
            parts.append(Partition(len(parts), file.path, tuple(groups), first, rows))
            first += rows
    return parts


def check_feature_types(signature: Signature, schema: pa.Schema, rejected: set[str]) -> None:
    """Refuse an input whose columns would make every row rejected, before reading it.

    ``rejected`` holds the violation kinds that reject a row. A feature missing from the
    input, or stored in an Arrow type whose every value validation calls the wrong type
    (text for a number, numbers for a category...), is one :class:`SchemaError` here
    instead of millions of rejected rows.
    """
    names = set(schema.names)
    missing = [c.name for c in signature.columns if c.name not in names]
    if missing and "missing_column" in rejected:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise SchemaError(f"the input lacks feature column(s) {shown}{more} the model needs")
    if "wrong_type" not in rejected:
        return
    for column in signature.columns:
        if column.name in names:
            kind = schema.field(column.name).type
            if not _compatible(column.type, kind):
                raise SchemaError(
                    f"column {column.name!r} is {kind} in the input but the model expects "
                    f"{column.type.value}: every value would be rejected as the wrong type"
                )


def _compatible(expected: ColumnType, kind: pa.DataType) -> bool:
    """False only when validation calls every non-null value of ``kind`` the wrong type."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_null(kind):
        return True
    text = bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )
    number = bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))
    if expected in (ColumnType.INTEGER, ColumnType.FLOAT):
        return number
    if expected is ColumnType.BOOLEAN:
        return bool(pa.types.is_boolean(kind))
    if expected is ColumnType.CATEGORICAL:
        return text
    return text or bool(pa.types.is_timestamp(kind) or pa.types.is_date(kind))


def _data_files(root: Path) -> list[Path]:
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "_")))
        found += [Path(directory) / n for n in sorted(names) if not n.startswith((".", "_"))]
    return found


def _footer(path: Path) -> bytes:
    """The Parquet footer of ``path``, after checking both magic numbers."""
    shown = repr(str(path))
    try:
        size = path.stat().st_size
        if size == 0:
            raise InvalidInputError(f"{shown} is empty")
        with path.open("rb") as fh:
            head = fh.read(4)
            if size < 12 or head != _MAGIC:
                raise InvalidInputError(f"{shown} is not a Parquet file")
            fh.seek(size - 8)
            tail = fh.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != _MAGIC or not 0 < length <= min(size - 12, _MAX_FOOTER):
                raise InvalidInputError(f"{shown} is not a complete Parquet file (bad footer)")
            fh.seek(size - 8 - length)
            return fh.read(length)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {shown}: {exc.strerror or exc}") from exc


def _difference(a: pa.Schema, b: pa.Schema) -> str:
    for field in a:
        if field.name not in b.names:
            return f"no column {field.name!r}"
        if b.field(field.name).type != field.type:
            return f"column {field.name!r} is {b.field(field.name).type}, not {field.type}"
    extra = [n for n in b.names if n not in a.names]
    return f"extra column {extra[0]!r}" if extra else "column order"


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
