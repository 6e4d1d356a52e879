"""Content-addressed artifact store on any fsspec URL.

Layout under the root URL::

    sha256/<first two hex digits>/<64 hex digits>     the bytes, named by their SHA-256

A reader never sees half an artifact, whatever interrupts a write:

- on a local folder the bytes go to a temporary name that is then renamed into place
  (a rename is atomic); a failed write removes its temporary file;
- on an object store (S3, GCS, Azure, ...) the bytes go straight to the final key in one
  request: an object PUT (or a multipart upload, completed only when every part arrived)
  becomes visible whole or not at all. A temporary key plus ``mv`` would be a copy and a
  delete there, twice the traffic, and would leave orphaned temporaries on failure.

Identical bytes are stored once. Reads verify the hash before the bytes are handed to
anyone, so a tampered or truncated file is refused (:class:`~livemodel.errors.IntegrityError`)
and never deserialized.

Storage options (``endpoint_url``, ``key``, ``client_kwargs``, ...) are passed to the
fsspec filesystem as given, e.g. from ``LIVEMODEL_ARTIFACTS_OPTIONS`` (see
:mod:`livemodel.config`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from livemodel.errors import ConfigError, IntegrityError, NotFoundError, StoreError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Filesystems whose rename is atomic; every other one is written in a single request.
_RENAMING_PROTOCOLS = frozenset({"file", "local"})


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives (relative to the store's root) and what its bytes hash to."""

    key: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        try:
            ref = cls(key=str(data["key"]), sha256=str(data["sha256"]), size=int(data["size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed artifact reference {data!r}") from exc
        if not _SHA256.match(ref.sha256):
            raise IntegrityError(f"malformed artifact hash {ref.sha256!r}")
        return ref


def transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions an fsspec backend raises when storage fails.

    fsspec translates most failures to ``OSError``; s3fs lets botocore's connection
    errors through untranslated, so they are added when botocore is installed.
    """
    errors: tuple[type[BaseException], ...] = (OSError,)
    try:
        botocore = importlib.import_module("botocore.exceptions")
    except ImportError:
        return errors
    return (*errors, botocore.BotoCoreError)


def open_filesystem(
    url: str, options: Mapping[str, Any] | None = None, *, what: str = "artifact store"
) -> tuple[Any, str]:
    """``(filesystem, root path)`` of an fsspec URL, or ConfigError naming ``what``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"the {what} URL must be a non-empty string, got {url!r}")
    try:
        fs, root = fsspec.url_to_fs(url, **dict(options or {}))
    except (ValueError, ImportError, TypeError) as exc:
        raise ConfigError(f"cannot open {what} {url!r}: {exc}") from exc
    return fs, str(root).rstrip("/")


def renames_atomically(fs: Any) -> bool:
    """True for a local filesystem, where temp-then-rename is the atomic write."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool(_RENAMING_PROTOCOLS.intersection(protocols))


class ArtifactStore:
    """Put and get immutable byte blobs under an fsspec URL (local folder by default)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.fs, self.root = open_filesystem(url, options)
        self.url = url

    def put(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        key = f"sha256/{digest[:2]}/{digest}"
        path = self._path(key)
        try:
            if not self.fs.exists(path):
                self.write(key, data)
        except transport_errors() as exc:
            raise StoreError(f"cannot write artifact to {self.url!r}: {exc}") from exc
        return ArtifactRef(key=key, sha256=digest, size=len(data))

    def write(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``, whole or not at all: a temporary name then a rename
        where renames are atomic, one PUT on object stores. Transport errors propagate."""
        path = self._path(key)
        if renames_atomically(self.fs):
            self._write_then_rename(path, data)
        else:
            self.fs.pipe_file(path, data)

    def get(self, ref: ArtifactRef) -> bytes:
        """The artifact's bytes, only if they hash to ``ref.sha256``."""
        try:
            data: bytes = self.fs.cat_file(self._path(ref.key))
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {ref.key!r} is missing from {self.url!r}") from exc
        except transport_errors() as exc:
            raise StoreError(f"cannot read artifact {ref.key!r} from {self.url!r}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            raise IntegrityError(
                f"artifact {ref.key!r} is corrupt or was tampered with: SHA-256 {actual[:12]}... "
                f"does not match the registered {ref.sha256[:12]}...; refusing to load it"
            )
        return data

    def _write_then_rename(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        except BaseException:
            # Whatever stopped the write, no temporary file outlives it.
            with contextlib.suppress(*transport_errors()):
                self.fs.rm_file(tmp)
            raise

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise IntegrityError(f"artifact key {key!r} escapes the store")
        return f"{self.root}/{key}"
