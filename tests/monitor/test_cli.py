"""``livemodel monitor`` as a real process against a real home with a real log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from livemodel.config import Settings
from livemodel.monitor.resultstore import ResultStore
from livemodel.wiring import connect

from .conftest import register, write_log

EXE = str(Path(sys.executable).parent / "livemodel")
pytestmark = pytest.mark.slow  # real processes, each loading the model stack


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "cli-test"}
    for name in ("LIVEMODEL_DB_URL", "LIVEMODEL_LOGS", "LIVEMODEL_ARTIFACTS", "LIVEMODEL_CONFIG"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    env["COLUMNS"] = "250"  # rich fits tables to the terminal; a wide one keeps names whole
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=home, env=env, timeout=240, check=False
    )


def documents(text: str) -> list[Any]:
    decoder, out, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        doc, end = decoder.raw_decode(text, at)
        out.append(doc)
        text, at = text[end:], 0
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, model: Any, flights: pd.DataFrame) -> Path:
    """A home with a registered model, two days of logged predictions and some labels."""
    home = tmp_path_factory.mktemp("home")
    settings = Settings.at(home, actor="test")
    registry = connect(settings)
    register(registry, model, flights)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frame = pd.concat([flights.iloc[:5000].sample(600, random_state=0), flights.iloc[8000:8900]])
    times = [today - timedelta(days=2) + timedelta(minutes=2 * i) for i in range(600)]
    times += [today - timedelta(days=1) + timedelta(minutes=1.5 * i) for i in range(900)]
    write_log(settings.log_dir, registry, "flights", frame.reset_index(drop=True), times)
    registry.metadata.db.close()
    return home


def test_monitor_run_json_prints_and_stores_windows(home: Path) -> None:
    done = run(home, "monitor", "run", "flights", "--window", "1d", "--since", "3d", "--json")
    assert done.returncode == 0, done.stderr
    (doc,) = documents(done.stdout)
    assert doc["model"] == "flights" and doc["version"] == 1 and doc["window"] == "1d"
    full = [w for w in doc["windows"] if w["n_rows"] > 0]
    assert [w["n_rows"] for w in full] == [600, 900]
    summer = full[1]
    assert "temp" in summer["drifted_columns"]
    calculators = {r["calculator"] for r in summer["results"]}
    assert {"data_drift", "data_quality", "realized_performance",
            "estimated_performance"} <= calculators  # fmt: skip
    accuracy = [r for r in summer["results"] if r["metric"] == "accuracy"]
    assert {r["calculator"] for r in accuracy} == {"realized_performance", "estimated_performance"}
    assert all(r["value"] is not None and r["lower"] <= r["value"] <= r["upper"] for r in accuracy)
    db = connect(Settings.at(home)).metadata.db
    stored = ResultStore(db).query("flights")
    db.close()
    assert len(stored) == doc["rows_saved"] > 0
    listed = run(home, "monitor", "results", "flights", "--calculator", "data_drift", "--alerts",
                 "--json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows and all(r["alert"] and r["calculator"] == "data_drift" for r in rows)
    assert any(r["column"] == "temp" for r in rows)


def test_monitor_run_table_with_segments(home: Path) -> None:
    done = run(home, "monitor", "run", "flights", "--since", "3d", "--segment", "origin")
    assert done.returncode == 0, done.stderr
    for text in ("drifted columns", "origin=JFK", "accuracy realized", "temp", "numbers stored"):
        assert text in done.stdout, done.stdout


def test_monitor_every_is_bounded_by_max_runs(home: Path) -> None:
    done = run(home, "monitor", "run", "flights", "--since", "2d", "--every", "1s",
               "--max-runs", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = documents(done.stdout)
    assert len(docs) == 2
    assert docs[0]["rows_saved"] == docs[1]["rows_saved"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--window", "bogus"), "not a duration"),
        (("--since", "yesterday"), "neither a duration"),
        (("--segment", "temp"), "numeric, not categorical"),
    ],
)
def test_bad_input_is_one_error_line(home: Path, args: tuple[str, ...], message: str) -> None:
    done = run(home, "monitor", "run", "flights", *args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_unknown_model(home: Path) -> None:
    done = run(home, "monitor", "run", "nobody")
    assert done.returncode == 1
    assert done.stderr.startswith("error:")
