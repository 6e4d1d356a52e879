"""``livemodel demo`` as a user runs it: a relative --home, from another directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "livemodel")


@pytest.mark.slow
def test_demo_command_with_a_relative_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
    done = subprocess.run(
        [EXE, "demo", "--from", "4", "--to", "5", "--per-month", "600"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "what happened" in done.stdout and "0 failed" in done.stdout
    assert (tmp_path / ".livemodel-demo" / "report.html").exists()
    card = subprocess.run(
        [EXE, "models", "show", "flights@1", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**env, "LIVEMODEL_HOME": str(tmp_path / ".livemodel-demo")},
    )
    info = json.loads(card.stdout)
    assert info["signature"]["task"]["target"] == "late" and info["lineage"]["data"]["rows"] > 5000
    # A second run replaces the demo folder (it is marked as the demo's own).
    again = subprocess.run(
        [EXE, "demo", "--from", "4", "--to", "4", "--per-month", "300"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-2000:]
