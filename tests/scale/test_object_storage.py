"""Artifacts on an S3-protocol object store (moto on 127.0.0.1), reached by fsspec URL.

- a model registered with its artifacts on S3 loads back and predicts the same;
- an object tampered with, truncated or deleted on S3 is refused, never unpickled;
- an upload interrupted mid-write leaves nothing at the final key, and a retry succeeds;
  the local store's temp-then-rename cleans up after itself the same way;
- a bad endpoint, bucket or options setting is a livemodel error, not a botocore one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from livemodel.config import Settings, parse_storage_options
from livemodel.errors import ConfigError, IntegrityError, NotFoundError, StoreError
from livemodel.store.artifacts import ArtifactStore
from livemodel.wiring import connect

from .conftest import Bucket


def _frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] + x[:, 1] > 0).astype(int)})


def test_round_trip_writes_one_object_at_the_content_key(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(bucket.url, bucket.options)
    # On S3 a rename is a copy and a delete: the store must not use one.
    for name in ("mv", "copy", "rename"):
        monkeypatch.setattr(store.fs, name, _forbidden(name))
    data = b"model bytes \x00\xff" * 5000
    ref = store.put(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert bucket.object_keys() == [f"artifacts/{ref.key}"]
    assert store.get(ref) == data
    assert store.put(data) == ref  # content-addressed: stored once
    assert store.get(store.put(b"")) == b""
    assert len(bucket.object_keys()) == 2
    # A second store (another replica) reads what the first wrote.
    assert ArtifactStore(bucket.url, bucket.options).get(ref) == data


def _forbidden(name: str) -> Any:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{name} must not be used on an object store")

    return fail


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda b: b"evil model", IntegrityError),
        (lambda b: b[:-1], IntegrityError),  # truncated
        (lambda b: b + b"\x00", IntegrityError),  # appended to
        (None, NotFoundError),  # deleted
    ],
)
def test_tampering_on_s3_is_refused(bucket: Bucket, change: Any, error: type[Exception]) -> None:
    store = ArtifactStore(bucket.url, bucket.options)
    ref = store.put(b"honest model")
    key = f"artifacts/{ref.key}"
    s3 = bucket.client()
    if change is None:
        s3.delete_object(Bucket=bucket.name, Key=key)
    else:
        s3.put_object(Bucket=bucket.name, Key=key, Body=change(b"honest model"))
    with pytest.raises(error):
        ArtifactStore(bucket.url, bucket.options).get(ref)


def test_registry_on_s3_registers_loads_and_refuses_a_tampered_model(
    bucket: Bucket, tmp_path: Path
) -> None:
    settings = Settings.at(
        tmp_path, artifact_url=bucket.url, artifact_options=bucket.options, actor="t"
    )
    registry = connect(settings)
    frame = _frame()
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    version = registry.register("m", model, frame, target="y", alias="production")
    assert not (tmp_path / "artifacts").exists()  # nothing went to the local folder
    assert f"artifacts/{version.artifact.key}" in bucket.object_keys()

    loaded = connect(settings).load("m@production")
    x = _frame(50, seed=1)[["a", "b"]]
    np.testing.assert_array_equal(loaded.model.predict_proba(x), model.predict_proba(x))
    assert connect(settings).reference("m@production") is not None

    evil = LogisticRegression().fit(frame[["a", "b"]], 1 - frame["y"])
    bucket.client().put_object(
        Bucket=bucket.name, Key=f"artifacts/{version.artifact.key}", Body=pickle.dumps(evil)
    )
    with pytest.raises(IntegrityError, match="tampered"):
        connect(settings).load("m@production")
    registry.metadata.db.close()


def test_interrupted_multipart_upload_leaves_nothing_visible_and_a_retry_succeeds(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second of three parts fails after the first reached the server."""
    store = ArtifactStore(bucket.url, bucket.options)
    data = os.urandom(12 * 2**20)
    fs = store.fs
    real_pipe, real_call = fs.pipe_file, fs._call_s3
    parts: list[int] = []

    def small_parts(path: str, value: bytes, **kwargs: Any) -> Any:
        # 5 MiB parts (S3's minimum) so 12 MiB is a real multipart upload.
        return real_pipe(path, value, chunksize=5 * 2**20, max_concurrency=1, **kwargs)

    async def failing_call(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "upload_part":
            parts.append(kwargs["PartNumber"])
            if kwargs["PartNumber"] == 2:
                raise ConnectionResetError("connection lost mid-upload")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "pipe_file", small_parts)
    monkeypatch.setattr(fs, "_call_s3", failing_call)
    with pytest.raises(StoreError, match="cannot write artifact"):
        store.put(data)
    assert 1 in parts  # part 1 was uploaded before the failure
    assert bucket.object_keys() == []  # nothing at the final key, no temporary either
    pending = bucket.client().list_multipart_uploads(Bucket=bucket.name)
    assert not pending.get("Uploads")  # the upload was aborted, not left dangling
    fs.invalidate_cache()

    monkeypatch.setattr(fs, "_call_s3", real_call)
    ref = store.put(data)
    assert bucket.object_keys() == [f"artifacts/{ref.key}"]
    assert ArtifactStore(bucket.url, bucket.options).get(ref) == data


def test_failed_single_put_leaves_nothing_and_a_retry_succeeds(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(bucket.url, bucket.options)
    fs = store.fs
    real_call = fs._call_s3
    calls: list[str] = []

    async def failing_call(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        if method == "put_object":
            raise TimeoutError("the PUT timed out")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "_call_s3", failing_call)
    with pytest.raises(StoreError):
        store.put(b"model")
    assert calls.count("put_object") == 1 and "copy_object" not in calls
    assert bucket.object_keys() == []
    monkeypatch.setattr(fs, "_call_s3", real_call)
    assert store.get(store.put(b"model")) == b"model"


@pytest.mark.parametrize("failing", ["pipe_file", "mv"])
def test_local_interrupted_write_leaves_no_file_and_a_retry_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    data = b"x" * 100_000
    real_pipe = store.fs.pipe_file

    def half_then_fail(path: str, value: bytes, **kwargs: Any) -> None:
        real_pipe(path, value[: len(value) // 2], **kwargs)  # half the bytes are on disk
        raise OSError("disk full")

    def fail_mv(*args: object, **kwargs: object) -> None:
        raise OSError("rename failed")

    if failing == "pipe_file":
        monkeypatch.setattr(store.fs, "pipe_file", half_then_fail)
    else:
        monkeypatch.setattr(store.fs, "mv", fail_mv)
    with pytest.raises(StoreError):
        store.put(data)
    assert [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    ref = store.put(data)
    assert store.get(ref) == data
    assert [p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == [ref.sha256]


def test_missing_bucket_is_a_store_error(s3_endpoint: str) -> None:
    options = Bucket("lm-none", s3_endpoint).options
    store = ArtifactStore("s3://lm-no-such-bucket/x", options)
    with pytest.raises(StoreError, match="cannot write artifact"):
        store.put(b"model")


def test_unreachable_endpoint_is_a_store_error() -> None:
    pytest.importorskip("s3fs")
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {
        **Bucket("lm-x", f"http://127.0.0.1:{port}").options,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = ArtifactStore("s3://lm-unreachable/x", options)
    with pytest.raises(StoreError) as caught:
        store.put(b"model")
    assert "cannot write artifact" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("", {}),
        ("  ", {}),
        ('{"endpoint_url": "http://h:9000"}', {"endpoint_url": "http://h:9000"}),
        ('{"client_kwargs": {"region_name": "eu"}}', {"client_kwargs": {"region_name": "eu"}}),
    ],
)
def test_storage_options_parse(text: str | None, expected: dict[str, Any]) -> None:
    assert parse_storage_options(text) == expected


@pytest.mark.parametrize(
    "text", ["{", "[1, 2]", '"endpoint"', "null", "42", "{'single': 'quotes'}", "[" * 100_000]
)
def test_malformed_storage_options_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="LIVEMODEL_ARTIFACTS_OPTIONS"):
        parse_storage_options(text)


def test_options_come_from_the_environment_and_stay_out_of_repr(tmp_path: Path) -> None:
    env = {
        "LIVEMODEL_HOME": str(tmp_path),
        "LIVEMODEL_ARTIFACTS": "s3://b/p",
        "LIVEMODEL_ARTIFACTS_OPTIONS": '{"secret": "hunter2"}',
        "LIVEMODEL_CONFIG": "",
    }
    settings = Settings.from_env(env)
    assert settings.artifact_url == "s3://b/p"
    assert settings.artifact_options == {"secret": "hunter2"}
    assert "hunter2" not in repr(settings)
    with pytest.raises(ConfigError):
        Settings.from_env({**env, "LIVEMODEL_ARTIFACTS_OPTIONS": "[]"})


@pytest.mark.parametrize("url", ["", "   ", "nosuchproto://bucket/x"])
def test_bad_artifact_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        ArtifactStore(url)
