"""A real Open Inference Protocol client at its defaults: ``tritonclient[http]``.

``set_data_from_numpy`` sends binary tensors (the ``Inference-Header-Content-Length``
extension) and asks for binary outputs; the answers must equal ``/v1`` predictions of the
same rows. tritonclient (gevent, aiohttp; ~165 MB) lives in a venv of its own,
``benchmarks/.venvs/tritonclient``, made here when missing, so its pins never touch the
project's environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from livemodel.demo.flights import FEATURES

from .conftest import Models, Server, records

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "benchmarks" / ".venvs" / "tritonclient"
PYTHON = VENV / "bin" / "python"
CLIENT = Path(__file__).with_name("oip_client.py")


@pytest.fixture(scope="module")
def triton_python() -> Path:
    if not PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        done = subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", "tritonclient[http]", "numpy"],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"cannot install tritonclient in {VENV}:\n{done.stderr[-2000:]}")
    return PYTHON


def test_tritonclient_defaults_binary_tensors(
    server: Server, models: Models, triton_python: Path, tmp_path: Path
) -> None:
    frame = models.data.iloc[3000:3100].dropna(subset=list(FEATURES)).iloc[:40]
    rows = records(frame)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    done = subprocess.run(
        [str(triton_python), str(CLIENT), server.url, "flights", str(tmp_path / "rows.json")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["binary_outputs"] == [True, True]  # the extension was used both ways
    expected = httpx.post(
        f"{server.url}/v1/models/flights/predict", json={"records": rows}, timeout=60
    ).json()
    assert answer["version"] == str(expected["version"])
    assert [int(x) for x in answer["predict"]] == [p["label"] for p in expected["predictions"]]
    for got, want in zip(answer["predict_proba"], expected["predictions"], strict=True):
        assert got == pytest.approx([want["proba"]["0"], want["proba"]["1"]], abs=1e-12)
    assert len(set(answer["ids"])) == len(rows)  # logged, each with its own id
