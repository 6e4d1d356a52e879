"""Log segments shipped to object storage: a local spool per replica, one shared URL.

Writers append JSON lines to a local folder (``O_APPEND`` and ``fsync`` need a local
filesystem), each replica to its own spool. Once a segment is closed and compacted to
Parquet it is *shipped*: uploaded to an fsspec URL shared by every replica, verified,
then removed from the spool. Readers (:class:`~livemodel.store.logreader.LogReader`
with a :class:`RemoteLog`) take the union of their spool and the URL. The layout at the
URL mirrors the local one (see :mod:`livemodel.store.predlog`)::

    <url>/<model>/predictions/<stem>.parquet
    <url>/<model>/labels/<stem>.parquet

Guarantees:

- an object appears at its final key whole or not at all. On an object store the file
  goes there in one PUT, or one multipart upload that the store makes visible only when
  it completes (s3fs aborts it when a part fails; a process killed mid-upload leaves
  an invisible pending upload, which a bucket lifecycle rule expires). On a local or
  mounted folder it is written to ``<key>.<random>.tmp``, fsynced and renamed;
- the local copy is removed only after the object was found at the URL with the local
  file's size (botocore checksums every PUT and part in transit);
- a crash between upload and removal leaves both copies under one stem: readers take
  each stem once (the local copy first), and the next :func:`ship` removes the local
  copy once it finds the object in place. Shipping the same spool twice at once (two
  worker processes sharing it) uploads identical bytes twice, harmlessly.

Stems are unique per writer (host, pid, start time, random token), so two replicas never
ship to the same key.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livemodel.errors import ConfigError, InvalidInputError, StoreError
from livemodel.store.artifacts import open_filesystem, renames_atomically, transport_errors
from livemodel.store.logsegments import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    PARQUET_SUFFIX,
    fsync_path,
    list_segments,
    local_root,
)
from livemodel.store.predlog import LABELS, PREDICTIONS, check_model_name

__all__ = ["RemoteLog", "RemoteSegment", "remote_models", "remote_segments", "ship", "spool_models"]


@dataclass(frozen=True)
class RemoteLog:
    """Where shipped segments live: an fsspec URL and its storage options.

    Plain picklable data (a Ray task gets it and opens the filesystem itself). The URL is
    checked when built: an unknown protocol or a missing backend is a ConfigError.
    """

    url: str
    #: fsspec storage options (kept out of repr: may hold secrets)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"log URL storage options must be a mapping: {self.options!r}")
        self.open()

    def open(self) -> tuple[Any, str]:
        """``(filesystem, root path)``; fsspec caches the filesystem per process."""
        return open_filesystem(self.url, self.options, what="log URL")

    @property
    def is_local(self) -> bool:
        """True when the URL is a local (or mounted) folder DuckDB reads by path."""
        return renames_atomically(self.open()[0])

    def check_apart(self, root: Path) -> None:
        """Refuse a URL that is the spool folder itself (shipping would delete the log)."""
        fs, path = self.open()
        if renames_atomically(fs) and Path(path).resolve() == root.resolve():
            raise ConfigError(
                f"the log URL {self.url!r} is the local log folder itself; "
                "ship to another folder or an object store"
            )


@dataclass(frozen=True, slots=True)
class RemoteSegment:
    """One shipped Parquet segment: its stem, what DuckDB reads, and its size."""

    stem: str
    location: str
    size: int


def remote_segments(remote: RemoteLog, model: str, kind: str) -> list[RemoteSegment]:
    """The Parquet segments of one model and kind at the URL, by stem."""
    fs, root = remote.open()
    directory = f"{root}/{check_model_name(model)}/{kind}"
    local = renames_atomically(fs)
    found = []
    for name, size in _listing(remote, fs, directory).items():
        path = f"{directory}/{name}"
        location = path if local else fs.unstrip_protocol(path)
        found.append(RemoteSegment(name.removesuffix(PARQUET_SUFFIX), location, size))
    return sorted(found, key=lambda s: s.stem)


def remote_models(remote: RemoteLog) -> list[str]:
    """Names of the models with a predictions folder at the URL."""
    fs, root = remote.open()
    entries = _ls(remote, fs, root)
    names = [
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"
    ]
    models = []
    for name in sorted(names):
        if _valid_model(name):
            with _storage(remote, "list the log at"):
                if fs.isdir(f"{root}/{name}/{PREDICTIONS}"):
                    models.append(name)
    return models


def ship(root: str | os.PathLike[str], remote: RemoteLog, model: str | None = None) -> list[str]:
    """Upload every local Parquet segment (of ``model``, else of all) not yet at the URL.

    Each local file is removed once its object is verified in place. Returns the URLs
    uploaded; raises StoreError at the first upload that fails (that segment and the
    ones after it stay local, ready for the next call).
    """
    spool = local_root(root)
    remote.check_apart(spool)
    models = [check_model_name(model)] if model is not None else spool_models(spool)
    shipped = []
    for name in models:
        for kind in (PREDICTIONS, LABELS):
            shipped += ship_directory(remote, spool / name / kind)
    return shipped


def spool_models(root: Path) -> list[str]:
    """Names of the model folders in a local spool."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _valid_model(p.name))


def ship_directory(remote: RemoteLog, directory: Path) -> list[str]:
    """Ship the Parquet segments of one ``<spool>/<model>/<kind>`` folder (see :func:`ship`)."""
    local = [s for s in list_segments(directory) if s.state == "parquet"]
    if not local:
        return []
    fs, root = remote.open()
    target_dir = f"{root}/{directory.parent.name}/{directory.name}"
    present = _listing(remote, fs, target_dir)
    shipped = []
    for segment in local:
        name = segment.path.name
        target = f"{target_dir}/{name}"
        try:
            size = segment.path.stat().st_size
        except FileNotFoundError:
            continue  # shipped meanwhile by another process sharing this spool
        if present.get(name) != size:
            try:
                _upload(fs, segment.path, target)
            except FileNotFoundError as exc:
                if not segment.path.exists():
                    continue  # shipped meanwhile, as above
                raise StoreError(
                    f"cannot ship log segment {segment.path} to {remote.url!r}: {exc}"
                ) from exc
            except transport_errors() as exc:
                raise StoreError(
                    f"cannot ship log segment {segment.path} to {remote.url!r}: {exc}"
                ) from exc
            _verify(remote, fs, target, size)
            shipped.append(fs.unstrip_protocol(target))
        for suffix in (PARQUET_SUFFIX, CLOSED_SUFFIX, OPEN_SUFFIX):
            # JSON lines left beside the Parquet file by a crash during compaction go too.
            directory.joinpath(segment.stem + suffix).unlink(missing_ok=True)
    return shipped


def _upload(fs: Any, local: Path, target: str) -> None:
    if not renames_atomically(fs):
        fs.put_file(str(local), target)  # one PUT, or a multipart upload aborted on failure
        return
    parent = target.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{target}.{uuid.uuid4().hex}.tmp"
    try:
        fs.put_file(str(local), tmp)
        fsync_path(Path(tmp))
        fs.mv(tmp, target)
        fsync_path(Path(parent))
    except BaseException:
        # Whatever stopped the upload, no temporary file outlives it.
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise


def _verify(remote: RemoteLog, fs: Any, target: str, size: int) -> None:
    try:
        with _storage(remote, f"check shipped log segment {target!r} at"):
            fs.invalidate_cache(target)
            actual = fs.info(target).get("size")
    except FileNotFoundError:
        actual = None
    if actual != size:
        raise StoreError(
            f"shipped log segment {target!r} at {remote.url!r} has {actual} bytes, "
            f"not {size}: kept the local copy"
        )


def _listing(remote: RemoteLog, fs: Any, directory: str) -> dict[str, int]:
    """``{file name: size}`` of the Parquet files in a folder at the URL (none: empty)."""
    out = {}
    for entry in _ls(remote, fs, directory):
        name = str(entry["name"]).rsplit("/", 1)[-1]
        if entry["type"] == "file" and name.endswith(PARQUET_SUFFIX) and len(name) > 8:
            out[name] = int(entry["size"])
    return out


def _ls(remote: RemoteLog, fs: Any, path: str) -> list[dict[str, Any]]:
    """The entries of a folder at the URL; none when it does not exist (yet), unless the
    bucket (container) itself is missing."""
    try:
        with _storage(remote, "list the log at"):
            return list(fs.ls(path, detail=True, refresh=True))
    except FileNotFoundError:
        pass
    if not renames_atomically(fs):
        with _storage(remote, "reach the log at"):
            exists = fs.exists(path.split("/", 1)[0])
        if not exists:
            raise StoreError(f"the log URL {remote.url!r} names a bucket that does not exist")
    return []


@contextlib.contextmanager
def _storage(remote: RemoteLog, doing: str) -> Iterator[None]:
    """Storage failures as StoreError, options the backend refuses as ConfigError
    (FileNotFoundError passes: callers decide what a missing file means)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except transport_errors() as exc:
        raise StoreError(f"cannot {doing} {remote.url!r}: {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        # s3fs, for one, builds its client on first use: bad options fail only here.
        raise ConfigError(
            f"the log URL {remote.url!r} or its storage options were refused: {exc}"
        ) from exc


def _valid_model(name: str) -> bool:
    try:
        check_model_name(name)
    except InvalidInputError:
        return False
    return True
