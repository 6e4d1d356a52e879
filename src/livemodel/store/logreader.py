"""Columnar reads of the prediction and label log, with DuckDB.

Parquet segments are scanned by DuckDB (``read_parquet(..., union_by_name=true)``, so
projections and filters are pushed down and only needed row groups are read); JSON-lines
segments (the open one of each writer, and any not yet compacted) are decoded by
:func:`~livemodel.store.logdecode.decode_segment` with the filter and projection
applied while decoding, and joined in with ``UNION ALL BY NAME``. Columns are named as
documented in :mod:`livemodel.store.predlog` (``f.<feature>``, ``o.<output path>``).

Memory: :meth:`LogReader.iter_batches` streams Parquet segments in batches; the matching
rows of JSON-lines segments are held in memory, which compaction keeps small (one open
segment per live writer).

Shipped segments: with a :class:`~livemodel.store.logship.RemoteLog` the reader takes
the union of the local folder and the Parquet segments at the URL, each stem once (the
local copy first: a crash between upload and local removal leaves both). DuckDB reads
remote files through the fsspec filesystem registered on its connection. A local file
shipped away between listing and reading makes the read start over with a fresh listing
(up to three times, and for a stream only before its first batch).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import duckdb
import pyarrow as pa

from livemodel.errors import InvalidInputError, StoreError
from livemodel.store.answered import answered_ids
from livemodel.store.logdecode import RowFilter, decode_segment, fixed_types
from livemodel.store.logsegments import list_segments, local_root, read_jsonl
from livemodel.store.logship import RemoteLog, remote_models, remote_segments
from livemodel.store.logsql import (
    check_limits,
    column_list,
    conditions,
    connect,
    ident,
    latest_labels,
    literal,
    row_filter,
)
from livemodel.store.predlog import LABELS, PREDICTIONS, check_id, check_model_name

_LABEL_JOIN = ("label", "label_time", "label_source")
_T = TypeVar("_T")
_Build = Callable[[duckdb.DuckDBPyConnection], tuple[str, list[object]]]


class _VanishedError(StoreError):
    """A segment file vanished between listing and reading (shipped): list again."""


@dataclass
class _Sources:
    """One DuckDB connection with a relation over every segment of one kind."""

    con: duckdb.DuckDBPyConnection
    kind: str
    sql: str = ""
    columns: list[str] = field(default_factory=list)
    keep: list[pa.Table] = field(default_factory=list)  # registered tables stay alive


class LogReader:
    """Reads windows of the prediction log (and labels) under a root directory.

    Time bounds are timezone-aware datetimes, ``start`` inclusive and ``end`` exclusive.
    ``columns`` selects output columns by name; a name that no segment has reads as an
    all-null column (a feature never logged in the window). A torn trailing line is
    skipped; a corrupt file raises :class:`StoreError` naming it. With ``remote``, the
    segments shipped to that URL are read too. Streamed reads (:meth:`iter_batches`) keep
    DuckDB within ``stream_memory_mb`` and, if given, ``stream_threads`` threads.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        stream_memory_mb: int = 512,
        stream_threads: int | None = None,
        remote: RemoteLog | None = None,
    ) -> None:
        check_limits(stream_memory_mb=stream_memory_mb, stream_threads=stream_threads)
        self.root = local_root(root)
        self.stream_memory_mb = stream_memory_mb
        self.stream_threads = stream_threads
        self.remote = remote
        self._attempts = 1 if remote is None else 3

    def models(self) -> list[str]:
        """Names of the models that have a log directory (here or at the URL)."""
        found = set(remote_models(self.remote)) if self.remote is not None else set()
        if self.root.is_dir():
            found.update(p.name for p in self.root.iterdir() if (p / PREDICTIONS).is_dir())
        return sorted(found)

    def window(
        self,
        model: str,
        *,
        version: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        with_labels: bool = False,
    ) -> pa.Table:
        """Predictions of ``model`` in a window, ordered by time then prediction id.

        With ``with_labels`` the latest label of each prediction is joined as ``label``,
        ``label_time`` and ``label_source`` (null while unlabelled).
        """

        def query(con: duckdb.DuckDBPyConnection) -> pa.Table:
            sql, params = self._query(
                con,
                model,
                version=version,
                start=start,
                end=end,
                columns=columns,
                labels=with_labels,
            )
            return con.sql(f"{sql} ORDER BY __t, __id", params=params).to_arrow_table()

        return self._read(query, f"cannot read the prediction log of {model!r}")

    def iter_batches(
        self,
        model: str,
        *,
        version: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
        with_labels: bool = False,
        batch_size: int = 65_536,
        segments: Collection[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Like :meth:`window`, streamed as record batches of one schema, in no order.

        DuckDB works within ``stream_memory_mb`` (spilling joins to a temporary
        directory), so a window of any length is read in bounded memory. ``segments``
        restricts the predictions read to the segments of those stems (see
        :meth:`segments`); labels are always joined from every label segment.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int: {batch_size!r}")

        def build(con: duckdb.DuckDBPyConnection) -> tuple[str, list[object]]:
            return self._query(
                con,
                model,
                version=version,
                start=start,
                end=end,
                columns=columns,
                labels=with_labels,
                segments=segments,
            )

        con, query = self._built(build, model)
        return self._stream(con, query, build, model, batch_size)

    def segments(self, model: str) -> list[tuple[str, int]]:
        """``(stem, bytes)`` of every prediction segment of ``model`` (local and shipped,
        each stem once): the partitions of its log, for work spread over processes or
        machines."""
        out = []
        for segment in list_segments(self.root / check_model_name(model) / PREDICTIONS):
            try:
                out.append((segment.stem, segment.path.stat().st_size))
            except FileNotFoundError:  # compacted or shipped meanwhile: the stem stays
                out.append((segment.stem, 0))
        if self.remote is not None:
            local = {stem for stem, _ in out}
            shipped = remote_segments(self.remote, model, PREDICTIONS)
            out += [(r.stem, r.size) for r in shipped if r.stem not in local]
            out.sort()
        return out

    def labels(self, model: str, *, history: bool = False) -> pa.Table:
        """Labels of ``model``: the latest per prediction id, or with ``history`` all of them.

        Latest means last written (``written_time``, ties broken by segment name).
        """

        def query(con: duckdb.DuckDBPyConnection) -> pa.Table:
            src = self._sources(con, model, LABELS, None, None)
            if history:
                sql = f"SELECT * EXCLUDE (_file) FROM ({src.sql}) ORDER BY 1, written_time"
            else:
                sql = f"SELECT * FROM ({latest_labels(src.sql)}) ORDER BY 1"
            return con.sql(sql).to_arrow_table()

        return self._read(query, f"cannot read the label log of {model!r}")

    def known_ids(self, model: str, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that are answered predictions of ``model``: not failures no
        fallback answered, nor copies no client saw (:mod:`livemodel.store.answered`)."""
        wanted = pa.table({"id": pa.array([check_id(i) for i in ids], type=pa.string())})
        if not wanted.num_rows:
            return set()

        def query(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
            needed = frozenset({"prediction_id", "flags", "arm"})
            src = self._sources(con, model, PREDICTIONS, None, needed)
            con.register("wanted", wanted)
            return con.sql(
                f"SELECT prediction_id, flags, arm FROM ({src.sql}) "
                "WHERE prediction_id IN (SELECT id FROM wanted)"
            ).fetchall()

        rows = self._read(query, f"cannot read the prediction log of {model!r}")
        return answered_ids((r[0] for r in rows), (r[2] for r in rows), (r[1] for r in rows))

    # -- connections and retries ----------------------------------------------------------

    def _connect(
        self, memory_mb: int | None = None, threads: int | None = None
    ) -> duckdb.DuckDBPyConnection:
        con = connect(memory_mb, threads)
        if self.remote is not None and not self.remote.is_local:
            try:
                con.register_filesystem(self.remote.open()[0])
            except BaseException:
                con.close()
                raise
        return con

    def _read(self, query: Callable[[duckdb.DuckDBPyConnection], _T], what: str) -> _T:
        """``query`` on a fresh connection, again (with a remote log) if a segment was
        shipped away between listing and reading."""
        attempt = 1
        while True:
            con = self._connect()
            try:
                return query(con)
            except (duckdb.IOException, _VanishedError) as exc:
                if attempt >= self._attempts:
                    raise StoreError(f"{what}: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreError(f"{what}: {exc}") from exc
            finally:
                con.close()
            attempt += 1

    def _built(
        self, build: _Build, model: str
    ) -> tuple[duckdb.DuckDBPyConnection, tuple[str, list[object]]]:
        """A streaming connection and the query ``build`` made on it (retried like
        :meth:`_read`)."""
        attempt = 1
        while True:
            con = self._connect(self.stream_memory_mb, self.stream_threads)
            try:
                return con, build(con)
            except _VanishedError:
                con.close()
                if attempt >= self._attempts:
                    raise
            except duckdb.Error as exc:
                con.close()
                raise StoreError(f"cannot read the prediction log of {model!r}: {exc}") from exc
            except BaseException:
                con.close()
                raise
            attempt += 1

    # -- query building -------------------------------------------------------------------

    def _query(
        self,
        con: duckdb.DuckDBPyConnection,
        model: str,
        *,
        version: int | None,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[str] | None,
        labels: bool,
        segments: Collection[str] | None = None,
    ) -> tuple[str, list[object]]:
        where = row_filter(version, start, end)
        wanted = column_list(columns)
        needed = (
            None if wanted is None else frozenset(wanted) | {"time", "prediction_id", "version"}
        )
        only = None if segments is None else frozenset(segments)
        src = self._sources(con, model, PREDICTIONS, where, needed, only=only)
        names = src.columns if wanted is None else wanted
        select = [f"p.{ident(n)}" if n in src.columns else f"NULL AS {ident(n)}" for n in names]
        join = ""
        if labels:
            label_src = self._sources(con, model, LABELS, None, None)
            select += [f"l.{c}" for c in _LABEL_JOIN]
            join = f" LEFT JOIN ({latest_labels(label_src.sql)}) l USING (prediction_id)"
        sql = (
            f"SELECT p.time AS __t, p.prediction_id AS __id, {', '.join(select)} "
            f"FROM ({src.sql}) p{join}"
        )
        where_sql, params = conditions(where)
        if where_sql:
            sql += " WHERE " + " AND ".join(where_sql)
        outer = ", ".join(ident(n) for n in [*names, *(_LABEL_JOIN if labels else ())])
        return f"SELECT {outer} FROM ({sql})", params

    def _sources(
        self,
        con: duckdb.DuckDBPyConnection,
        model: str,
        kind: str,
        where: RowFilter | None,
        columns: frozenset[str] | None,
        *,
        only: frozenset[str] | None = None,
    ) -> _Sources:
        directory = self.root / check_model_name(model) / kind
        src = _Sources(con, kind)
        parquet: list[str] = []
        parts: list[str] = []
        local = list_segments(directory)
        if self.remote is not None:
            stems = {s.stem for s in local}
            shipped = remote_segments(self.remote, model, kind)
            parquet += [
                r.location
                for r in shipped
                if r.stem not in stems and (only is None or r.stem in only)
            ]
        for listed in local:
            if only is not None and listed.stem not in only:
                continue
            segment, data = (listed, None) if listed.state == "parquet" else read_jsonl(listed)
            if segment.state == "parquet" or data is None:
                parquet.append(str(segment.path))
                continue
            table = decode_segment(data, segment.path, kind, where=where, columns=columns)
            if table.num_rows:
                name = f"{kind}_{len(src.keep)}"
                con.register(name, table)
                src.keep.append(table)
                parts.append(f"SELECT *, {literal(str(segment.path))} AS _file FROM {name}")
        if parquet:
            files = ", ".join(literal(p) for p in parquet)
            parts.insert(
                0, f"SELECT * FROM read_parquet([{files}], union_by_name=true, filename='_file')"
            )
        empty = pa.table({n: pa.array([], t) for n, t in fixed_types(kind).items()})
        if columns is not None:
            empty = empty.select([n for n in empty.column_names if n in columns])
        con.register(f"{kind}_empty", empty)
        parts.append(f"SELECT *, NULL::VARCHAR AS _file FROM {kind}_empty")
        src.sql = " UNION ALL BY NAME ".join(f"({p})" for p in parts)
        try:
            found = set(con.sql(src.sql).columns) - {"_file"}
        except duckdb.IOException as exc:
            if self.remote is not None:
                raise _VanishedError(f"cannot read log segments in {directory}: {exc}") from exc
            raise StoreError(f"cannot read log segments in {directory}: {exc}") from exc
        except duckdb.Error as exc:
            raise StoreError(f"cannot read log segments in {directory}: {exc}") from exc
        fixed = [n for n in fixed_types(kind) if n in found]
        src.columns = fixed + sorted(found.difference(fixed))
        return src

    def _stream(
        self,
        con: duckdb.DuckDBPyConnection,
        query: tuple[str, list[object]],
        build: _Build,
        model: str,
        batch_size: int,
    ) -> Iterator[pa.RecordBatch]:
        yielded, attempt = False, 1
        try:
            while True:
                try:
                    for batch in con.sql(query[0], params=query[1]).to_arrow_reader(batch_size):
                        if batch.num_rows:
                            yielded = True
                            yield batch
                    return
                except duckdb.IOException as exc:
                    if yielded or attempt >= self._attempts:
                        raise StoreError(
                            f"cannot read the prediction log of {model!r}: {exc}"
                        ) from exc
                except duckdb.Error as exc:
                    raise StoreError(f"cannot read the prediction log of {model!r}: {exc}") from exc
                con.close()
                con, query = self._built(build, model)
                attempt += 1
        finally:
            con.close()
