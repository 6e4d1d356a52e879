"""``livemodel retrain`` and ``livemodel loop`` as real processes on a real SQLite home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from livemodel.config import Settings

from .conftest import JUL, Flights, make_world, spread, write_traffic

pytestmark = pytest.mark.slow  # each command is a new process that imports the stack

EXE = str(Path(sys.executable).parent / "livemodel")
REPO = Path(__file__).parents[2]
POLICY = """
[loop.models.flights]
train = "tests.loop.trainers:train_logistic"
cooldown = "7d"

[loop.models.flights.monitor]
window = "7d"
lookback = "14d"

[loop.models.flights.triggers]
drift = { min_features = 2 }

[loop.models.flights.data]
min_rows = 500

[loop.models.flights.gate]
metric = "log_loss"
margin = -0.01
n_bootstrap = 200
"""


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "LIVEMODEL_HOME": str(home),
        "LIVEMODEL_ACTOR": "cli-test",
        "LIVEMODEL_CONFIG": str(home / "livemodel.toml"),
        "PYTHONPATH": str(REPO),
    }
    environ.pop("LIVEMODEL_DB_URL", None)
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=home, env=environ, timeout=300,
        check=False,
    )  # fmt: skip


def ok_json(home: Path, *args: str) -> Any:
    done = run(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def home(tmp_path: Path, flights: Flights, champion_model: Any) -> Path:
    settings = Settings.at(tmp_path)
    world = make_world(settings.db_url, tmp_path, flights, champion_model)
    write_traffic(world, flights.jul.iloc[:2000], spread(JUL, 27, 2000), prefix="jul")
    world.registry.metadata.db.close()
    (tmp_path / "livemodel.toml").write_text(POLICY)
    return tmp_path


def test_retrain_replay_and_status_from_the_command_line(home: Path) -> None:
    (outcome,) = ok_json(home, "retrain", "flights", "--reason", "cli", "--at", "2013-07-29")
    assert outcome["action"] == "rollout_started", outcome
    assert outcome["run"]["candidate"] == 2
    assert outcome["run"]["gate"]["overall"]["metric"] == "log_loss"

    replayed = ok_json(home, "retrain", "flights", "--replay", "2")
    assert replayed["identical"] and replayed["predictions_differ"] == 0
    assert replayed["registered"] is None

    status = run(home, "loop", "status", "flights", "--at", "2013-07-29T12:00")
    assert status.returncode == 0, status.stderr
    assert "rollout_started" in status.stdout and "manual" in status.stdout
    assert "cooling down until" in status.stdout

    (tick,) = ok_json(home, "loop", "tick", "--at", "2013-07-29T12:00")
    assert tick["action"] == "rollout_running"

    again = run(home, "retrain", "flights", "--at", "2013-07-29T12:00")
    assert again.returncode == 1
    assert again.stderr.strip().startswith("error: flights has a running rollout")


def test_errors_are_one_line(home: Path) -> None:
    assert ok_json(home, "loop", "status", "flights")["runs"] == []
    no_snapshot = run(home, "retrain", "flights", "--replay", "1")
    assert no_snapshot.returncode == 1
    assert no_snapshot.stderr.strip().startswith("error: flights@1 has no pinned snapshot")
    (home / "livemodel.toml").write_text(POLICY.replace('cooldown = "7d"', 'cooldown = "7"'))
    bad = run(home, "loop", "status", "flights")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "loop.models.flights.cooldown: '7' is not a duration" in bad.stderr
    assert "livemodel.toml" in bad.stderr
