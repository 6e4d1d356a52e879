"""The SQL pieces of :mod:`livemodel.store.logreader`: a tuned private DuckDB, quoting,
row filters and the latest-label query."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb

from livemodel.errors import InvalidInputError
from livemodel.store.logdecode import RowFilter
from livemodel.store.predlog import to_micros

__all__ = [
    "column_list",
    "conditions",
    "connect",
    "ident",
    "latest_labels",
    "literal",
    "row_filter",
]


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def connect(memory_mb: int | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB; with ``memory_mb``, tuned to stream in bounded memory;
    with ``threads``, using that many threads (DuckDB's default: one per core)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    spill = Path(tempfile.gettempdir()) / f"livemodel-duckdb-{os.getpid()}-{uuid.uuid4().hex}"
    con.execute(f"SET temp_directory = {literal(str(spill))}")
    if memory_mb is not None:
        con.execute(f"SET memory_limit = '{int(memory_mb)}MiB'")
        con.execute("SET preserve_insertion_order = false")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def check_limits(**limits: int | None) -> None:
    """Each of ``limits`` None or a positive int, else :class:`InvalidInputError`."""
    for name, value in limits.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidInputError(f"{name} must be a positive int: {value!r}")


def latest_labels(sql: str) -> str:
    """The latest label of each prediction id among the label rows of ``sql``."""
    return (
        f"SELECT prediction_id, label, label_time, label_source FROM ({sql}) "
        "QUALIFY row_number() OVER (PARTITION BY prediction_id "
        # The file name, not its path: the same wherever the segment lives.
        "ORDER BY written_time DESC, regexp_extract(_file, '[^/]*$') DESC) = 1"
    )


def row_filter(version: int | None, start: datetime | None, end: datetime | None) -> RowFilter:
    """The version and time bounds of a read, checked."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInputError(f"version must be an int or None: {version!r}")
    start_us = None if start is None else to_micros(start, "start")
    end_us = None if end is None else to_micros(end, "end")
    return RowFilter(version, start_us, end_us)


def conditions(where: RowFilter) -> tuple[list[str], list[object]]:
    """SQL conditions on the predictions (alias ``p``) and their parameters."""
    found: list[str] = []
    params: list[object] = []
    if where.version is not None:
        found.append("p.version = ?")
        params.append(where.version)
    if where.start_us is not None:
        found.append("p.time >= make_timestamp(?::BIGINT)::TIMESTAMPTZ")
        params.append(where.start_us)
    if where.end_us is not None:
        found.append("p.time < make_timestamp(?::BIGINT)::TIMESTAMPTZ")
        params.append(where.end_us)
    return found, params


def column_list(columns: Sequence[str] | None) -> list[str] | None:
    """Requested column names, checked and de-duplicated (``None``: all)."""
    if columns is None:
        return None
    if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns):
        raise InvalidInputError("columns must be a sequence of non-empty column names")
    return list(dict.fromkeys(columns))
