from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from livemodel.errors import ConfigError, IntegrityError, NotFoundError
from livemodel.store.artifacts import ArtifactRef, ArtifactStore


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "file":
        return ArtifactStore(str(tmp_path / "artifacts"))
    return ArtifactStore(f"memory://lm-{uuid.uuid4().hex}")


def test_put_get_round_trip_is_content_addressed(store: ArtifactStore) -> None:
    data = b"model bytes \x00\xff" * 1000
    ref = store.put(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert ref.key == f"sha256/{ref.sha256[:2]}/{ref.sha256}"
    assert store.get(ref) == data
    assert store.put(data) == ref  # identical bytes are stored once
    assert store.get(store.put(b"")) == b""


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put(b"honest model")
    (tmp_path / ref.key).write_bytes(b"evil model")
    with pytest.raises(IntegrityError, match="tampered"):
        store.get(ref)
    (tmp_path / ref.key).write_bytes(b"honest mode")  # truncated
    with pytest.raises(IntegrityError):
        store.get(ref)


def test_missing_artifact_is_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    ref = store.put(b"x")
    (tmp_path / ref.key).unlink()
    with pytest.raises(NotFoundError, match="missing"):
        store.get(ref)


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    store.put(b"a" * 100_000)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"key": "k", "sha256": "zz", "size": 1},
        {"key": "k", "sha256": "a" * 64, "size": "x"},
        {"key": "k", "size": 1},
    ],
)
def test_malformed_references_are_integrity_errors(bad: dict[str, object]) -> None:
    with pytest.raises(IntegrityError):
        ArtifactRef.from_dict(bad)


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "sha256/../../x"])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(IntegrityError, match="escapes"):
        store.get(ArtifactRef(key=key, sha256="a" * 64, size=1))


def test_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot open artifact store"):
        ArtifactStore("nosuchproto://bucket/x")
