"""The ``livemodel`` command, run as a real process against a real SQLite home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from livemodel.demo.flights import FEATURES, TARGET, load_flights

EXE = str(Path(sys.executable).parent / "livemodel")

MODEL_MODULE = """
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["dep_delay", "sched_hour", "distance", "temp", "humid", "wind_speed", "precip", "visib"]
pipeline = make_pipeline(
    ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["carrier", "origin"]),
    ]),
    LogisticRegression(max_iter=300),
)
not_a_model = {"predict": 1}
def factory():
    return pipeline
"""


def run(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "cli-test"}
    environ.pop("LIVEMODEL_DB_URL", None)
    environ.update(env or {})
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=environ,
        timeout=180,
        check=False,
    )


def ok(home: Path, *args: str) -> str:
    done = run(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(home: Path, *args: str, message: str, env: dict[str, str] | None = None) -> None:
    done = run(home, *args, env=env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:"), lines
    assert message in lines[0], lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    data = load_flights((1,)).iloc[:3000][[*FEATURES, TARGET]]
    data.iloc[:2000].to_csv(home / "train.csv", index=False)
    data.iloc[2000:].to_parquet(home / "valid.parquet", index=False)
    (home / "mymodel.py").write_text(MODEL_MODULE)
    out = ok(
        home, "register", "flights", "--model", "mymodel:pipeline", "--data", "train.csv",
        "--target", TARGET, "--validation", "valid.parquet", "--alias", "production",
        "--tag", "team=ops", "--seed", "3", "--json",
    )  # fmt: skip
    card = json.loads(out)
    assert (card["version"], card["aliases"], card["tags"]) == (1, ["production"], {"team": "ops"})
    return home


def test_register_fits_and_prints_a_card(home: Path) -> None:
    out = ok(home, "register", "flights", "--model", "mymodel.py:factory", "--data", "train.csv",
             "--target", TARGET)  # fmt: skip
    assert "registered flights@2" in out
    assert "signature" in out and "lineage" in out and "dep_delay" in out


def test_models_list_and_show_json(home: Path) -> None:
    listing = json.loads(ok(home, "models", "list", "--json"))
    flights = next(m for m in listing if m["name"] == "flights")
    assert flights["aliases"]["production"] == 1
    card = json.loads(ok(home, "models", "show", "flights@production", "--json"))
    assert [c["name"] for c in card["signature"]["columns"]] == list(FEATURES)
    assert card["signature"]["task"]["kind"] == "binary"
    assert card["lineage"]["data"]["rows"] == 2000
    assert card["lineage"]["seed"] == 3
    assert card["lineage"]["data"]["source"] == "train.csv"
    assert 0.5 < card["metrics"]["holdout"]["roc_auc"]["value"] <= 1
    human = ok(home, "models", "show", "flights@1")
    assert "holdout metrics" in human and "production" in human


def test_alias_rollback_and_audit(home: Path) -> None:
    ok(home, "register", "flights", "--model", "mymodel:pipeline", "--data", "train.csv",
       "--target", TARGET)  # fmt: skip
    latest = json.loads(ok(home, "models", "show", "flights", "--json"))["version"]
    moved = json.loads(ok(home, "alias", "set", "flights", "production", str(latest), "--reason",
                          "canary passed", "--json"))  # fmt: skip
    assert moved == {"model": "flights", "alias": "production", "from": 1, "to": latest}
    back = json.loads(ok(home, "rollback", "flights", "--reason", "p99 up", "--json"))
    assert back == {"model": "flights", "alias": "production", "from": latest, "to": 1}
    events = json.loads(ok(home, "audit", "flights", "--json"))
    assert [e["action"] for e in events][-2:] == ["alias.set", "alias.rollback"]
    assert events[-1]["reason"] == "p99 up" and events[-1]["actor"] == "cli-test"
    assert "alias.rollback" in ok(home, "audit", "flights")


def test_unknown_things(home: Path) -> None:
    fails(home, "models", "show", "ghost", message="unknown model 'ghost'")
    fails(home, "models", "show", "flights@999", message="no version 999")
    fails(home, "models", "show", "flights@staging", message="no alias 'staging'")
    fails(home, "alias", "set", "flights", "production", "999", message="no version 999")
    fails(home, "rollback", "ghost", message="unknown model")
    fails(home, "audit", "ghost", message="unknown model")


def test_bad_training_inputs(home: Path) -> None:
    (home / "empty.csv").write_text("")
    (home / "header.csv").write_text(",".join([*FEATURES, TARGET]) + "\n")
    (home / "junk.parquet").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    (home / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    pd.DataFrame({"a": [[1, 2], [3]], TARGET: [0, 1]}).to_parquet(home / "lists.parquet")
    reg = ["register", "x", "--model", "mymodel:pipeline", "--target", TARGET, "--data"]
    fails(home, *reg, "empty.csv", message="is empty")
    fails(home, *reg, "header.csv", message="empty")
    fails(home, *reg, "junk.parquet", message="not a CSV or Parquet file")
    fails(home, *reg, "binary.csv", message="not a CSV or Parquet file")
    fails(home, *reg, "missing.csv", message="no such file")
    fails(home, *reg, "lists.parquet", message="'a'")
    fails(home, "register", "x", "--model", "mymodel:pipeline", "--target", "nope",
          "--data", "train.csv", message="target column 'nope'")  # fmt: skip


def test_bad_models_and_arguments(home: Path) -> None:
    base = ["--data", "train.csv", "--target", TARGET]
    fails(home, "register", "x", "--model", "mymodel:not_a_model", *base, message="no predict")
    fails(home, "register", "x", "--model", "mymodel:nothing", *base, message="no attribute")
    fails(home, "register", "x", "--model", "no_such_module:x", *base, message="cannot import")
    fails(home, "register", "x", "--model", "train.csv", *base, message="not a pickled")
    fails(home, "register", "x", "--model", "ghost.pkl", *base, message="neither a model file")
    fails(
        home,
        "register",
        "bad/name",
        "--model",
        "mymodel:pipeline",
        *base,
        message="invalid model name",
    )
    fails(home, "register", "x", "--model", "mymodel:pipeline", *base, "--tag", "novalue",
          message="KEY=VALUE")  # fmt: skip
    fails(home, "alias", "set", "flights", "production", "1", "--reason", "x" * 5000,
          message="longer than")  # fmt: skip


def test_usage_errors_exit_2_without_traceback(home: Path) -> None:
    done = run(home, "alias", "set", "flights", "production", "notanumber")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = run(home, "nosuchcommand")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_tampered_artifact_is_refused_by_load(home: Path) -> None:
    card = json.loads(ok(home, "models", "show", "flights@1", "--json"))
    path = home / "artifacts" / card["artifact"]["key"]
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-10] + b"0123456789")
        code = "import livemodel; livemodel.connect().load('flights@1')"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=home, check=False,
            env={**os.environ, "LIVEMODEL_HOME": str(home)},
        )  # fmt: skip
        assert (
            done.returncode != 0 and "IntegrityError" in done.stderr and "tampered" in done.stderr
        )
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db?connect_timeout=2", "unreachable"),
        ("nosuch://x", "unsupported database"),
        ("::::", "invalid database URL"),
    ],
)
def test_bad_database_urls(home: Path, url: str, message: str) -> None:
    fails(home, "models", "list", message=message, env={"LIVEMODEL_DB_URL": url})
    assert "secret" not in run(home, "models", "list", env={"LIVEMODEL_DB_URL": url}).stderr


def test_models_list_on_an_empty_home(tmp_path: Path) -> None:
    assert "no models registered yet" in ok(tmp_path, "models", "list")
    assert json.loads(ok(tmp_path, "models", "list", "--json")) == []
