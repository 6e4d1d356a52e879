"""Batch scoring writes and logs the model's own ``predict``, row for row, for every kind of
:mod:`tests.serving.decision_kinds` (own thresholds, string and odd integer labels,
multiclass, no ``predict_proba``, regression, LightGBM, class weights), through the Python
API over several chunks and through ``livemodel score`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.serving.decision_kinds import KINDS, fit

from livemodel.batch import ScoreOptions, score
from livemodel.config import Settings
from livemodel.registry.registry import Registry
from livemodel.store.logreader import LogReader
from livemodel.wiring import connect

EXE = str(Path(sys.executable).parent / "livemodel")
SCORED = slice(4000, 5000)


@dataclass(frozen=True)
class Home:
    path: Path
    registry: Registry
    models: dict[str, Any]


@pytest.fixture(scope="module")
def home(flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    path = tmp_path_factory.mktemp("decision-home")
    registry = connect(Settings.at(path, actor="tests"))
    models = {}
    for name, kind in KINDS.items():
        models[name], frame = fit(kind, flights.iloc[:4000])
        registry.register(name, models[name], frame, target=kind.target_name, alias="production")
    yield Home(path, registry, models)
    registry.metadata.db.close()


def scoring_rows(name: str, flights: pd.DataFrame) -> pd.DataFrame:
    kind = KINDS[name]
    rows = kind.frame(flights.iloc[SCORED]).drop(columns=kind.target_name)
    rows.insert(0, "row_key", np.arange(len(rows)))
    return rows.reset_index(drop=True)


def write(path: Path, rows: pd.DataFrame) -> Path:
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, row_group_size=400)
    return path


def check_output(out: pd.DataFrame, model: Any, rows: pd.DataFrame) -> None:
    features = rows.drop(columns="row_key")
    assert out["row_key"].tolist() == rows["row_key"].tolist()
    assert out["status"].isin(["ok", "flagged"]).all()
    assert out["prediction"].tolist() == model.predict(features).tolist()
    if callable(getattr(model, "predict_proba", None)):
        columns = [f"proba_{c}" for c in model.classes_]
        np.testing.assert_allclose(out[columns], model.predict_proba(features), rtol=1e-12)
    else:
        assert not [c for c in out.columns if c.startswith("proba_")]


@pytest.mark.parametrize("name", list(KINDS))
def test_batch_scoring_writes_and_logs_the_models_predict(
    home: Home, flights: pd.DataFrame, tmp_path: Path, name: str
) -> None:
    rows = scoring_rows(name, flights)
    source = write(tmp_path / "in.parquet", rows)
    logs = tmp_path / "logs"
    options = ScoreOptions(batch_size=300, keep=("row_key",))
    result = score(home.registry, logs, name, source, tmp_path / "out", options=options)
    assert result.scored == len(rows)
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    out = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    check_output(out, home.models[name], rows)
    log = LogReader(logs).window(name).to_pandas().set_index("prediction_id")
    column = "o.value" if KINDS[name].regression else "o.label"
    assert log.loc[out["prediction_id"], column].tolist() == out["prediction"].tolist()


def test_livemodel_score_writes_the_models_predict(
    home: Home, flights: pd.DataFrame, tmp_path: Path
) -> None:
    name = "fixed-threshold"
    rows = scoring_rows(name, flights)
    source = write(tmp_path / "in.parquet", rows)
    env = {**os.environ, "LIVEMODEL_HOME": str(home.path), "LIVEMODEL_ACTOR": "cli-test"}
    env.pop("LIVEMODEL_DB_URL", None)
    env.pop("LIVEMODEL_CONFIG", None)
    done = subprocess.run(
        [EXE, "score", name, "--input", str(source), "--output", str(tmp_path / "out"), "--json"],
        capture_output=True, text=True, cwd=home.path, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scored"] == len(rows)
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    out = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    check_output(out, home.models[name], rows)
    model = home.models[name]
    features = rows.drop(columns="row_key")
    argmax = model.classes_[model.predict_proba(features).argmax(axis=1)]
    assert (out["prediction"].to_numpy() != argmax).sum() >= 10  # not the most probable class
