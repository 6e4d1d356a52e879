"""An S3-protocol server on 127.0.0.1 (moto) for the object-storage tests.

``moto_server`` runs as a subprocess for the whole session; each test gets its own bucket
(created with boto3) and reaches it through fsspec storage options, exactly as a deployment
would through ``LIVEMODEL_ARTIFACTS`` and ``LIVEMODEL_ARTIFACTS_OPTIONS``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MOTO = Path(sys.executable).parent / "moto_server"


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the test S3 server and how to reach it."""

    name: str
    endpoint: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}/artifacts"

    @property
    def options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }

    @property
    def options_json(self) -> str:
        return json.dumps(self.options)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def object_keys(self) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server (skipped when moto is not installed)."""
    pytest.importorskip("s3fs", reason="the s3 tests need the test extra (s3fs[boto3])")
    pytest.importorskip("moto", reason="the s3 tests need the test extra (moto[server])")
    if not MOTO.exists() and shutil.which("moto_server") is None:
        pytest.skip("moto_server is not on PATH")
    exe = str(MOTO) if MOTO.exists() else "moto_server"
    port = _free_port()
    output = tmp_path_factory.mktemp("moto") / "moto.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {output.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start within 30 s")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bucket(s3_endpoint: str) -> Bucket:
    made = Bucket(name=f"lm-{uuid.uuid4().hex[:16]}", endpoint=s3_endpoint)
    made.client().create_bucket(Bucket=made.name)
    return made
