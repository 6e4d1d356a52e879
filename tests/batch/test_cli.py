"""``livemodel score`` as a real process against a real SQLite home: the summary, JSON,
the audit listing, serving options from the project file, and one clear line for every
bad input (nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from livemodel.config import Settings
from livemodel.wiring import connect

from .conftest import register, scoring_input

EXE = str(Path(sys.executable).parent / "livemodel")
BLOCK_RAY = """
import sys
sys.modules["ray"] = None  # as if the extra were not installed
from livemodel.cli.app import main
main(sys.argv[1:])
"""


def run(home: Path, *args: str, block_ray: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "cli-test"}
    env.pop("LIVEMODEL_DB_URL", None)
    env.pop("LIVEMODEL_CONFIG", None)
    command = [sys.executable, "-c", BLOCK_RAY] if block_ray else [EXE]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=home, env=env, timeout=180,
        check=False,
    )  # fmt: skip


def ok(home: Path, *args: str) -> str:
    done = run(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(home: Path, *args: str, message: str, block_ray: bool = False) -> None:
    before = sorted(p.name for p in home.iterdir())
    done = run(home, *args, block_ray=block_ray)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:"), lines
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in home.iterdir()) == before  # nothing written


def write(path: Path, rows: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, row_group_size=1000)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, fitted: Any, flights: pd.DataFrame) -> Path:
    home = tmp_path_factory.mktemp("home")
    registry = connect(Settings.at(home, actor="setup"))
    register(registry, fitted, flights)
    registry.metadata.db.close()
    rows = scoring_input(flights)
    rows.loc[10, "carrier"] = None  # rejected while serving (null), unless flags only
    write(home / "in.parquet", rows)
    write(home / "no_carrier.parquet", rows.drop(columns=["carrier"]))
    write(home / "text_distance.parquet", rows.assign(distance=rows["distance"].astype(str)))
    (home / "empty.parquet").write_bytes(b"")
    (home / "data.csv").write_text("a,b\n1,2\n")
    (home / "nothing").mkdir()
    (home / "taken").mkdir()
    return home


def test_score_prints_a_summary_and_is_in_the_audit_log(home: Path) -> None:
    out = ok(home, "score", "flights", "-i", "in.parquet", "-o", "scored", "--keep", "flight_id")
    assert "scored flights@1" in out
    assert "5,999 (" in out and "rejected" in out
    table = pd.read_parquet(home / "scored")
    assert list(table.columns[:3]) == ["flight_id", "prediction_id", "status"]
    assert len(table) == 6000
    audit = json.loads(ok(home, "audit", "flights", "--json"))
    event = audit[-1]
    assert event["action"] == "batch.scored" and event["actor"] == "cli-test"
    assert event["details"]["output"] == str(home / "scored")
    assert event["details"]["rejected"] == 1
    assert "batch.scored" in ok(home, "audit", "flights")


def test_score_json_and_the_project_files_serving_options(home: Path) -> None:
    (home / "flag.toml").write_text('[serving.models.flights]\nvalidation = "flag"\n')
    data = json.loads(
        ok(home, "score", "flights@1", "-i", "in.parquet", "-o", "flagged", "--json",
           "--config", "flag.toml", "--batch-size", "999", "--no-log")
    )  # fmt: skip
    assert (data["rows"], data["scored"], data["rejected"]) == (6000, 6000, 0)
    assert data["version"] == 1 and data["engine"] == "local" and data["logged"] is False
    assert data["violations"]["null:carrier"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "nope.parquet"], "no such file or directory: 'nope.parquet'"),
        (["-i", "empty.parquet"], "is empty"),
        (["-i", "data.csv"], "is not a Parquet file"),
        (["-i", "nothing"], "holds no Parquet files"),
        (["-i", "no_carrier.parquet"], "lacks feature column(s) 'carrier'"),
        (["-i", "text_distance.parquet"], "column 'distance' is large_string in the input"),
        (["--batch-size", "100000000"], "batch_size must be an int from 1 to 1,000,000"),
        (["--batch-size", "0"], "batch_size must be"),
        (["--partition-rows", "-5"], "partition_rows must be"),
        (["-o", "taken"], "exists: choose another or --overwrite"),
        (["-o", "/proc/self/nope/out"], "cannot write the output"),
        (["--keep", "flight_id,nope"], "cannot keep column 'nope'"),
        (["--engine", "spark"], "unknown engine 'spark'"),
        (["--version", "9"], "no version 9"),
        (["--alias", "staging"], "staging"),
        (["--version", "1", "--alias", "production"], "choose --version or --alias"),
        (["--config", "missing.toml"], "missing.toml"),
    ],
)
def test_bad_input_is_one_clear_line(home: Path, args: list[str], message: str) -> None:
    base = {"-i": "in.parquet", "-o": "out"}
    for flag in ("-i", "-o"):
        if flag in args:
            base.pop(flag)
    given = [x for kv in base.items() for x in kv]
    fails(home, "score", "flights", *given, *args, message=message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "unknown model 'nope'"),
        ("flights@1", None),
        ("../etc", "invalid model name"),
    ],
)
def test_model_references(home: Path, name: str, message: str | None) -> None:
    if message is None:  # a reference that names a version already, plus --version
        message = "already names a version"
        fails(home, "score", name, "-i", "in.parquet", "-o", "x", "--version", "1", message=message)
    else:
        fails(home, "score", name, "-i", "in.parquet", "-o", "x", message=message)


def test_missing_ray_says_how_to_install_it(home: Path) -> None:
    fails(
        home, "score", "flights", "-i", "in.parquet", "-o", "by-ray", "--engine", "ray",
        message="pip install 'livemodel[ray]'", block_ray=True,
    )  # fmt: skip
