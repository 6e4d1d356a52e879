"""Content-addressed artifact store on any fsspec URL.

Layout under the root URL::

    sha256/<first two hex digits>/<64 hex digits>     the bytes, named by their SHA-256

An artifact is written under a temporary name and then moved into place, so a reader never
sees half an artifact; identical bytes are stored once. Reads verify the hash before the
bytes are handed to anyone, so a tampered or truncated file is refused
(:class:`~livemodel.errors.IntegrityError`) and never deserialized.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

from livemodel.errors import ConfigError, IntegrityError, NotFoundError, StoreError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


class ArtifactStore:
    """Put and get immutable byte blobs under an fsspec URL (local folder by default)."""

    def __init__(self, url: str) -> None:
        try:
            self.fs, root = fsspec.url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"cannot open artifact store {url!r}: {exc}") from exc
        self.url = url
        self.root = root.rstrip("/")

    def put(self, data: bytes) -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        key = f"sha256/{digest[:2]}/{digest}"
        path = self._path(key)
        try:
            if not self.fs.exists(path):
                self.fs.makedirs(self._path(f"sha256/{digest[:2]}"), exist_ok=True)
                tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, path)
        except OSError as exc:
            raise StoreError(f"cannot write artifact to {self.url!r}: {exc}") from exc
        return ArtifactRef(key=key, sha256=digest, size=len(data))

    def get(self, ref: ArtifactRef) -> bytes:
        """The artifact's bytes, only if they hash to ``ref.sha256``."""
        try:
            data: bytes = self.fs.cat_file(self._path(ref.key))
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {ref.key!r} is missing from {self.url!r}") from exc
        except OSError as exc:
            raise StoreError(f"cannot read artifact {ref.key!r} from {self.url!r}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            raise IntegrityError(
                f"artifact {ref.key!r} is corrupt or was tampered with: SHA-256 {actual[:12]}... "
                f"does not match the registered {ref.sha256[:12]}...; refusing to load it"
            )
        return data

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise IntegrityError(f"artifact key {key!r} escapes the store")
        return f"{self.root}/{key}"
