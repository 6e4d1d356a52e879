"""One partition of a batch job, streamed: the pure function the engines map.

:func:`score_partition` reads its row groups in chunks of ``batch_size`` rows
(``iter_batches`` with ``pre_buffer=False`` and a 1 MiB read buffer, so only the chunk
at hand and a page per column are in memory whatever the size of the file or its row
groups), scores each chunk
(:func:`~livemodel.batch.chunk.score_chunk`) and streams the results into one output
part file and one staged log segment. The files are written by a thread of their own
while the next chunk is scored (:class:`_WriteBehind`): Parquet encoding and zstd
release the GIL, so on a second core they overlap the model. Everything it needs is
plain picklable data (:class:`PartitionTask`), so it runs the same in this process and
in a Ray worker; its errors come back in the result instead of being raised, because
Ray would wrap them.

The model travels as a :class:`ModelSource` (its version and where its artifact is),
not as bytes: each process loads an artifact once, verified by its SHA-256, and keeps
it for the partitions that follow. The driver hands over the handle it already loaded,
so the local engine never loads twice.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from livemodel.batch.chunk import ChunkCounts, output_fields, score_chunk
from livemodel.batch.source import Partition
from livemodel.errors import InvalidInputError, LivemodelError, StoreError
from livemodel.registry.model_io import load_model
from livemodel.registry.version import ModelVersion
from livemodel.serving.handles import ModelHandle
from livemodel.serving.options import ModelOptions
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.logbatch import StagedSegment, batch_stem, dictionary_columns

__all__ = ["ModelSource", "PartitionResult", "PartitionTask", "remember", "score_partition"]

_CACHE_SIZE = 4
# Read column chunks through a buffer of this size: with none (pyarrow's default) each
# column chunk of a row group is read whole, which for one huge row group is the file.
_READ_BUFFER = 1 << 20
_models: OrderedDict[str, Any] = OrderedDict()  # artifact sha256 -> deserialized estimator


@dataclass(frozen=True)
class ModelSource:
    """Where a worker finds the model: the version, its artifact store and output classes.

    The store pickles as its fsspec filesystem does (URL and storage options).
    """

    version: ModelVersion
    classes: tuple[Any, ...] | None
    store: ArtifactStore = field(repr=False)


@dataclass(frozen=True)
class JobSpec:
    """What every partition of one job shares."""

    run_id: str
    model: ModelSource
    options: ModelOptions
    keep: tuple[str, ...]
    read: tuple[str, ...]  # input columns read: features present, then kept ones
    output_schema: pa.Schema
    output_dir: str
    log_root: str | None
    batch_size: int


@dataclass(frozen=True)
class PartitionTask:
    job: JobSpec
    partition: Partition


@dataclass(frozen=True)
class PartitionResult:
    index: int
    counts: ChunkCounts
    output: str | None = None
    segment: str | None = None  # the staged log segment, if any row was logged
    error: LivemodelError | None = None


def remember(handle: ModelHandle) -> None:
    """Keep ``handle``'s estimator as this process's loaded copy of its artifact."""
    sha = handle.version.artifact.sha256
    _models[sha] = handle.model
    _models.move_to_end(sha)
    while len(_models) > _CACHE_SIZE:
        _models.popitem(last=False)


def model_handle(source: ModelSource) -> ModelHandle:
    """The model of ``source``, loaded (and verified) once per process.

    Only the estimator is cached: the same artifact may be another version or model.
    """
    model = _models.get(source.version.artifact.sha256)
    if model is None:
        model = load_model(source.store.get(source.version.artifact))
    handle = ModelHandle(version=source.version, model=model, classes=source.classes)
    remember(handle)
    return handle


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def score_partition(
    task: PartitionTask, progress: Callable[[int], None] | None = None
) -> PartitionResult:
    """Score one partition into its output part and staged log segment (module doc).

    ``progress`` is called with the number of rows of each chunk done (local engine).
    """
    job, part = task.job, task.partition
    counts = ChunkCounts()
    output = Path(job.output_dir) / part_name(part.index)
    segment: StagedSegment | None = None
    writer: pq.ParquetWriter | None = None
    try:
        handle = model_handle(job.model)
        if job.log_root is not None:
            segment = StagedSegment(job.log_root, handle.name, batch_stem(job.run_id, part.index))
        writer = _writer(output, job.output_schema)
        behind = _WriteBehind(progress)
        try:
            row = part.first_row
            for batch in _batches(part, job):
                chunk = score_chunk(
                    handle,
                    job.options,
                    batch,
                    keep=job.keep,
                    first_row=row,
                    run_id=job.run_id,
                    time_us=time.time_ns() // 1_000,
                )
                table = chunk.output.cast(job.output_schema)
                write = functools.partial(_write_chunk, writer, output, table, segment, chunk.log)
                behind.submit(write, batch.num_rows)
                counts.add(chunk.counts)
                row += batch.num_rows
            behind.wait()
        finally:
            behind.stop()
        _close(writer, output)
        writer = None
        staged = segment.close() if segment is not None else None
    except LivemodelError as exc:
        if writer is not None:
            writer.close()
        output.unlink(missing_ok=True)
        if segment is not None:
            segment.abort()
        return PartitionResult(part.index, counts, error=exc)
    return PartitionResult(part.index, counts, str(output), None if staged is None else str(staged))


class _WriteBehind:
    """Writes each chunk in one background thread while the caller scores the next.

    At most one chunk is in flight: :meth:`submit` first waits for the one before, so
    the files get the chunks in order and memory holds one chunk more than writing in
    line would. A write's error is raised by the next :meth:`submit` or :meth:`wait`;
    ``progress`` is called with a chunk's rows once they are written.
    """

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livemodel-write")
        self._pending: tuple[Future[None], int] | None = None
        self._progress = progress

    def submit(self, write: Callable[[], None], rows: int) -> None:
        self.wait()
        self._pending = (self._pool.submit(write), rows)

    def wait(self) -> None:
        """Wait for the chunk in flight; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[0].result()
            if self._progress is not None:
                self._progress(pending[1])

    def stop(self) -> None:
        """End the thread, after the chunk in flight if any (then the caller is failing
        already, and that write's own outcome no longer matters)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[0].exception()
        self._pool.shutdown(wait=True)


def _write_chunk(
    writer: pq.ParquetWriter,
    path: Path,
    table: pa.Table,
    segment: StagedSegment | None,
    log: pa.Table | None,
) -> None:
    _write(writer, path, table)
    if segment is not None and log is not None:
        segment.write(log)


def _batches(part: Partition, job: JobSpec) -> Iterator[pa.RecordBatch]:
    """The partition's rows in chunks; unreadable data is an InvalidInputError."""
    shown = repr(part.path)
    try:
        with pq.ParquetFile(part.path, pre_buffer=False, buffer_size=_READ_BUFFER) as parquet:
            reader = parquet.iter_batches(
                batch_size=job.batch_size,
                row_groups=list(part.row_groups),
                columns=list(job.read),
                use_threads=False,
            )
            for batch in reader:
                if batch.num_rows:
                    yield batch
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        groups = f"row groups {part.row_groups[0]}-{part.row_groups[-1]}"
        raise InvalidInputError(f"cannot read {shown} ({groups}): {first}") from exc


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    try:
        return pq.ParquetWriter(
            path, schema, compression="zstd", use_dictionary=dictionary_columns(schema)
        )
    except OSError as exc:
        raise StoreError(f"cannot write the output {str(path)!r}: {exc}") from exc


def _write(writer: pq.ParquetWriter, path: Path, table: pa.Table) -> None:
    try:
        writer.write_table(table)
    except OSError as exc:
        raise StoreError(f"cannot write the output {str(path)!r}: {exc}") from exc


def _close(writer: pq.ParquetWriter, path: Path) -> None:
    try:
        writer.close()
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot write the output {str(path)!r}: {exc}") from exc


def job_output_schema(keep_schema: pa.Schema, handle: ModelHandle) -> pa.Schema:
    """The schema of every output part: kept input columns, then the model's columns."""
    return pa.schema([*keep_schema, *output_fields(handle)])
