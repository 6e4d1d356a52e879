"""Log segment files: naming, listing, the open segment a writer appends to, compaction.

The format itself is specified in :mod:`livemodel.store.predlog`. Everything here works
on one local directory of segments (a replica's spool); closed segments are immutable,
and once compacted :mod:`livemodel.store.logship` may ship them to an fsspec URL (the
:class:`Compactor`'s ``after`` hook).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias

import pyarrow.parquet as pq

from livemodel.errors import ConfigError, LivemodelError, StoreError
from livemodel.store.logdecode import decode_segment
from livemodel.store.predlog import LABELS, PREDICTIONS, check_model_name

_log = logging.getLogger(__name__)

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
_ROW_GROUP_ROWS = 131_072


def local_root(root: str | os.PathLike[str]) -> Path:
    """The log root (the spool) as a local path; URLs are refused: ``O_APPEND`` and
    ``fsync`` need a local filesystem (segments reach object storage by shipping)."""
    text = os.fspath(root)
    if not isinstance(text, str) or not text or "://" in text:
        raise ConfigError(f"the log root must be a local directory path, got {root!r}")
    return Path(text)


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


def compact_segment(path: Path, kind: str) -> Path:
    """Rewrite a closed JSON-lines segment as Parquet (zstd); return the Parquet path.

    Idempotent and crash-safe: the Parquet file appears by an atomic rename after it is
    fsynced, and only then is the JSON-lines file removed. Two processes compacting the
    same segment (abandoned segments are compacted by whoever finds them) write their own
    temporary files, and either rename gives the same Parquet file.
    """
    stem = path.name.removesuffix(OPEN_SUFFIX).removesuffix(CLOSED_SUFFIX)
    target = path.with_name(stem + PARQUET_SUFFIX)
    if not target.exists():
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if target.exists():  # compacted by another process meanwhile
                return target
            raise StoreError(f"log segment {path} vanished before it was compacted") from None
        table = decode_segment(data, path, kind)
        table = table.replace_schema_metadata({"livemodel.format": "1", "livemodel.kind": kind})
        tmp = path.with_name(f"{stem}{PARQUET_SUFFIX}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=_ROW_GROUP_ROWS)
            fsync_path(tmp)
            tmp.replace(target)
            fsync_path(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
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


class OpenSegment:
    """An ``.open.jsonl`` file written with ``O_APPEND``; renamed to ``.jsonl`` on close."""

    def __init__(self, directory: Path, stem: str, fsync: bool) -> None:
        _make_dirs(directory, fsync)
        self.path = directory / (stem + OPEN_SUFFIX)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o644)
        if fsync:
            fsync_path(directory)
        self.stem, self.fsync, self.size, self.opened = stem, fsync, 0, time.monotonic()

    def write(self, data: bytes) -> int:
        """Write all of ``data``; return the number of ``write()`` calls it took."""
        view, calls = memoryview(data), 0
        while view:
            view = view[os.write(self.fd, view) :]
            calls += 1
        self.size += len(data)
        return calls

    def abandon(self) -> Path | None:
        """After a failed write: cut the file back to what was written whole (``size``), so
        no line of the failed batch stays readable, then close it; an empty file is removed.

        Returns the closed segment to compact, or None (removed, or left ``.open`` when
        even the cut failed: its last line may then be torn, which readers skip).
        """
        try:
            os.ftruncate(self.fd, self.size)
        except OSError:
            _log.exception("cannot cut log segment %s back after a failed write", self.path)
            os.close(self.fd)
            return None
        if self.size == 0:
            os.close(self.fd)
            self.path.unlink(missing_ok=True)
            return None
        return self.close()

    def close(self) -> Path:
        os.close(self.fd)
        closed = self.path.with_name(self.stem + CLOSED_SUFFIX)
        self.path.rename(closed)
        if self.fsync:
            fsync_path(closed.parent)
        return closed


def _make_dirs(directory: Path, fsync: bool) -> None:
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        if fsync:
            fsync_path(path.parent)


class Compactor:
    """A background thread compacting closed segments to Parquet, one at a time.

    ``after`` (e.g. shipping to object storage) is called with each Parquet file made;
    its failures are logged and leave the file where it is.
    """

    def __init__(self, kind: str, after: Callable[[Path], object] | None = None) -> None:
        self._kind = kind
        self._after = after
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, path: Path) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log compactor", daemon=True)
            self._thread.start()
        self._queue.put(path)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            try:
                parquet = compact_segment(path, self._kind)
            except (StoreError, OSError):
                _log.exception("cannot compact log segment %s; it stays JSON lines", path)
                continue
            if self._after is not None:
                try:
                    self._after(parquet)
                except (LivemodelError, OSError):
                    _log.exception("cannot ship log segment %s; it stays local for now", parquet)
