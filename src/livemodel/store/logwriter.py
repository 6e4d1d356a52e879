"""Durable, group-committed writer of log segments, and :class:`PredictionLog`.

Durability: ``append`` returns only after its records were handed to the operating
system by ``write()`` on a segment opened with ``O_APPEND`` (so a SIGKILL of the process
loses nothing acknowledged); with ``LogOptions(fsync=True)`` the segment is also
``fdatasync``-ed first (so power loss loses nothing acknowledged).

Group commit: one writer thread per log object owns the files. Callers encode their
records (validation errors surface before anything is queued), add the bytes to the
*open batch* and wait; the writer thread takes the whole open batch, writes it with one
``write()`` per model segment, then wakes every caller of that batch. While it writes,
the next batch fills, so under contention many appends share one syscall, and an
``append`` never returns before its own records are written.

Back-pressure: bytes queued or being written are capped by ``max_pending_bytes``. A
caller that does not fit waits (thread) or awaits (task) up to ``timeout_s``, then gets
``StoreError("prediction log is saturated")``; nothing it passed was queued. A batch is
admitted into an empty queue even when it alone exceeds the cap.

If a write fails (disk full, I/O error) every caller of that batch gets ``StoreError``
and the segment is abandoned: cut back to the end of its last whole batch (so none of
the failed batch's records can be read or exported) and closed, or removed if that
leaves it empty. Only if even the cut fails may a partial line end a segment.

Shipping: given a :class:`~livemodel.store.logship.RemoteLog`, the compaction thread
ships each Parquet segment it makes (and any left from earlier failures in the same
folder) to that URL, then removes the local copy (see :mod:`livemodel.store.logship`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeAlias

from livemodel.errors import InvalidInputError, StoreError
from livemodel.store.logsegments import Compactor, OpenSegment, local_root, segment_stem
from livemodel.store.logship import RemoteLog, ship_directory
from livemodel.store.predlog import PREDICTIONS, PredictionRecord, prediction_line

_log = logging.getLogger(__name__)

_MiB = 2**20


@dataclass(frozen=True, slots=True)
class LogOptions:
    """Settings of a prediction or label log writer."""

    fsync: bool = False
    max_pending_bytes: int = 16 * _MiB
    timeout_s: float = 5.0
    max_segment_bytes: int = 64 * _MiB
    max_segment_age_s: float = 3600.0
    compact: bool = True  # compact closed segments to Parquet in a background thread

    def __post_init__(self) -> None:
        for name in ("max_pending_bytes", "max_segment_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"LogOptions.{name} must be a positive int: {value!r}")
        for name in ("timeout_s", "max_segment_age_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidInputError(f"LogOptions.{name} must be a positive number: {value!r}")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters since the writer was created (``write_calls`` counts ``write()`` syscalls)."""

    appends: int = 0
    records: int = 0
    batches: int = 0
    write_calls: int = 0
    fsyncs: int = 0
    bytes_written: int = 0
    segments: int = 0
    saturated: int = 0
    failed_batches: int = 0


_Failure: TypeAlias = tuple[str, BaseException] | None
_Waiter: TypeAlias = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class _Batch:
    __slots__ = (
        "appends",
        "async_waiters",
        "chunks",
        "done",
        "failure",
        "nbytes",
        "nrecords",
        "written",
    )

    def __init__(self, lock: threading.Lock) -> None:
        # Only this batch's callers wake when it is written (no thundering herd).
        self.written = threading.Condition(lock)
        self.chunks: dict[str, list[bytes]] = {}
        self.nbytes = self.nrecords = self.appends = 0
        self.done = False
        self.failure: _Failure = None
        self.async_waiters: list[_Waiter] = []


class GroupCommitWriter:
    """Appends encoded lines to per-model segments of one kind, with group commit.

    The building block of :class:`PredictionLog` and ``LabelLog``; ``chunks`` map a
    model name (already validated) to complete JSON lines.
    """

    def __init__(
        self,
        root: Path,
        kind: str,
        options: LogOptions,
        what: str,
        remote: RemoteLog | None = None,
    ) -> None:
        self._root, self._kind, self._options, self._what = root, kind, options, what
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer thread waits here
        self._room = threading.Condition(self._lock)  # callers wait here for room
        self._batch: _Batch | None = None
        self._pending = 0
        self._room_waiters: list[_Waiter] = []
        self._counts: Counter[str] = Counter()
        self._closing = False
        self._thread: threading.Thread | None = None
        after = None
        if remote is not None:
            remote.check_apart(root)
            after = functools.partial(_ship_folder_of, remote)
        self._compactor = Compactor(kind, after) if options.compact else None
        self._segments: dict[str, OpenSegment] = {}  # touched by the writer thread only
        self._token, self._seq, self._pid = os.urandom(3).hex(), 0, os.getpid()

    def submit(self, chunks: Mapping[str, bytes], nrecords: int) -> None:
        """Queue lines and block until they are written (or raise ``StoreError``)."""
        nbytes = sum(len(c) for c in chunks.values())
        with self._lock:
            self._check_usable()
            deadline = time.monotonic() + self._options.timeout_s
            while not self._has_room(nbytes):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._saturated()
                self._room.wait(remaining)
                self._check_usable()
            batch = self._enqueue(chunks, nbytes, nrecords)
            while not batch.done:
                batch.written.wait()
        _raise_failure(batch.failure)

    async def submit_async(self, chunks: Mapping[str, bytes], nrecords: int) -> None:
        """Like :meth:`submit`, awaiting instead of blocking the event loop."""
        loop = asyncio.get_running_loop()
        nbytes = sum(len(c) for c in chunks.values())
        deadline = loop.time() + self._options.timeout_s
        while True:
            with self._lock:
                self._check_usable()
                if self._has_room(nbytes):
                    batch = self._enqueue(chunks, nbytes, nrecords)
                    done: asyncio.Future[None] = loop.create_future()
                    batch.async_waiters.append((loop, done))
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._saturated()
                room: asyncio.Future[None] = loop.create_future()
                self._room_waiters.append((loop, room))
            try:
                await asyncio.wait_for(room, remaining)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    if (loop, room) in self._room_waiters:
                        self._room_waiters.remove((loop, room))
        await done

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(**self._counts)

    def close(self) -> None:
        """Write what is queued, close (rename) open segments, finish compaction."""
        with self._lock:
            self._closing = True
            self._work.notify()
            self._room.notify_all()
            room, self._room_waiters = self._room_waiters, []
            thread = self._thread
        for loop, fut in room:
            _settle_threadsafe(loop, fut, None)
        if thread is not None:
            thread.join()
        if self._compactor is not None:
            self._compactor.close()

    # -- callers' side, under self._lock ------------------------------------------------

    def _check_usable(self) -> None:
        if self._closing:
            raise StoreError(f"{self._what} is closed")
        if os.getpid() != self._pid:
            raise StoreError(f"{self._what} was created before fork(); create one per process")

    def _has_room(self, nbytes: int) -> bool:
        return self._pending == 0 or self._pending + nbytes <= self._options.max_pending_bytes

    def _saturated(self) -> StoreError:
        self._counts["saturated"] += 1
        return StoreError(
            f"{self._what} is saturated: {self._pending} bytes pending "
            f"(cap {self._options.max_pending_bytes}) for {self._options.timeout_s} s"
        )

    def _enqueue(self, chunks: Mapping[str, bytes], nbytes: int, nrecords: int) -> _Batch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self._what}", daemon=True)
            self._thread.start()
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(self._lock)
        for model, data in chunks.items():
            batch.chunks.setdefault(model, []).append(data)
        batch.nbytes += nbytes
        batch.nrecords += nrecords
        batch.appends += 1
        self._pending += nbytes
        self._work.notify()
        return batch

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        tick = min(max(self._options.max_segment_age_s / 4, 0.05), 60.0)
        while True:
            with self._lock:
                if self._batch is None and not self._closing:
                    self._work.wait(tick)
                batch, self._batch = self._batch, None
                closing = self._closing
            if batch is not None:
                self._commit(batch)
                continue
            self._rotate(aged_only=not closing)
            if closing:
                return

    def _commit(self, batch: _Batch) -> None:
        counts: Counter[str] = Counter()
        failure: _Failure = None
        done: list[tuple[str, int]] = []  # models written by this batch, size before it
        try:
            for model, parts in batch.chunks.items():
                seg = self._segments.get(model)
                before = seg.size if seg is not None else 0
                self._write(model, b"".join(parts), counts)
                done.append((model, before))
        except Exception as exc:  # noqa: BLE001 - any failure must reach the callers
            failure = (f"cannot write {self._what}: {exc}", exc)
            counts["failed_batches"] += 1
            for model, before in done:  # the callers get an error: none of it may stay
                self._abandon(model, before)
        else:
            counts.update(appends=batch.appends, records=batch.nrecords, batches=1)
        with self._lock:
            batch.failure, batch.done = failure, True
            self._pending -= batch.nbytes
            self._counts.update(counts)
            batch.written.notify_all()
            self._room.notify_all()
            room, self._room_waiters = self._room_waiters, []
        for loop, fut in batch.async_waiters:
            _settle_threadsafe(loop, fut, failure)
        for loop, fut in room:
            _settle_threadsafe(loop, fut, None)

    def _write(self, model: str, data: bytes, counts: Counter[str]) -> None:
        seg = self._segments.get(model)
        options = self._options
        if seg is not None and seg.size > 0:
            too_big = seg.size + len(data) > options.max_segment_bytes
            if too_big or time.monotonic() - seg.opened >= options.max_segment_age_s:
                self._close_segment(model)
                seg = None
        if seg is None:
            self._seq += 1
            stem = segment_stem(os.getpid(), time.time_ns() // 1000, self._token, self._seq)
            seg = self._segments[model] = OpenSegment(
                self._root / model / self._kind, stem, options.fsync
            )
            counts["segments"] += 1
        try:
            counts["write_calls"] += seg.write(data)
            if options.fsync:
                os.fdatasync(seg.fd)
                counts["fsyncs"] += 1
        except OSError:
            # Abandon the segment, cut back to its last whole batch: the callers of this
            # one get an error, so none of its lines may stay readable (nor an empty file).
            self._abandon(model, seg.size)
            raise
        counts["bytes_written"] += len(data)

    def _abandon(self, model: str, size: int) -> None:
        """Close ``model``'s segment cut back to ``size`` bytes (removed if that is 0)."""
        seg = self._segments.pop(model, None)
        if seg is None:
            return
        seg.size = size
        try:
            closed = seg.abandon()
        except OSError:
            _log.exception("cannot abandon log segment %s", seg.path)
            return
        if closed is not None and self._compactor is not None:
            self._compactor.submit(closed)

    def _rotate(self, *, aged_only: bool) -> None:
        now = time.monotonic()
        for model, seg in list(self._segments.items()):
            if not aged_only or now - seg.opened >= self._options.max_segment_age_s:
                self._close_segment(model)

    def _close_segment(self, model: str) -> None:
        seg = self._segments.pop(model)
        try:
            closed = seg.close()
        except OSError:
            _log.exception("cannot close log segment %s; left as .open", seg.path)
            return
        if self._compactor is not None:
            self._compactor.submit(closed)


def _ship_folder_of(remote: RemoteLog, parquet: Path) -> None:
    ship_directory(remote, parquet.parent)


def _raise_failure(failure: _Failure) -> None:
    if failure is not None:
        message, cause = failure
        raise StoreError(message) from cause


def _settle(fut: asyncio.Future[None], failure: _Failure) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if failure is None:
        fut.set_result(None)
    else:
        error = StoreError(failure[0])
        error.__cause__ = failure[1]
        fut.set_exception(error)


def _settle_threadsafe(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], failure: _Failure
) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        loop.call_soon_threadsafe(_settle, fut, failure)


def encode_by_model(lines: Sequence[tuple[str, bytes]]) -> dict[str, bytes]:
    """Join encoded lines per model, keeping their order."""
    parts: dict[str, list[bytes]] = {}
    for model, line in lines:
        parts.setdefault(model, []).append(line)
    return {model: b"".join(p) for model, p in parts.items()}


class PredictionLog:
    """Durable, group-committed prediction log under ``<root>/<model>/predictions/``.

    Safe to share between threads and asyncio tasks of one process; create one per
    process (each writes its own segments). ``close()`` (or ``with``) flushes, closes
    the segments and compacts them (and ships them to ``remote``, if given).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        options: LogOptions | None = None,
        *,
        remote: RemoteLog | None = None,
    ) -> None:
        self.root = local_root(root)
        self.options = options if options is not None else LogOptions()
        self.remote = remote
        self._writer = GroupCommitWriter(
            self.root, PREDICTIONS, self.options, "prediction log", remote
        )

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write ``records``; return once they are handed to the OS (fsynced if asked)."""
        chunks, n = _encode(records)
        if n:
            self._writer.submit(chunks, n)

    async def append_async(self, records: Sequence[PredictionRecord]) -> None:
        """Like :meth:`append`, awaiting without blocking the event loop."""
        chunks, n = _encode(records)
        if n:
            await self._writer.submit_async(chunks, n)

    def stats(self) -> WriterStats:
        return self._writer.stats()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _encode(records: Sequence[PredictionRecord]) -> tuple[dict[str, bytes], int]:
    if isinstance(records, PredictionRecord) or not isinstance(records, Sequence):
        raise InvalidInputError("append() takes a sequence of PredictionRecord")
    lines = [prediction_line(r) for r in records]  # validates every record first
    return encode_by_model([(r.model, line) for r, line in zip(records, lines, strict=True)]), len(
        lines
    )
