"""A registered January flights model and its prediction log, written like the server does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.loop.controller import LoopController
from livemodel.loop.policy import LoopSettings, parse_loop
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.registry.model_io import predict_outputs
from livemodel.registry.registry import Registry
from livemodel.rollout.controller import RolloutController
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.metadata import MetadataStore
from livemodel.store.predlog import PredictionRecord

from .trainers import pipeline

NAME = "flights"
JAN = datetime(2013, 1, 14, tzinfo=UTC)  # a Monday: 7-day windows start on Mondays
JUL = datetime(2013, 7, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@dataclass(frozen=True)
class Flights:
    """Real flights, shuffled within their month so that slices share a distribution."""

    jan: pd.DataFrame
    jul: pd.DataFrame


@pytest.fixture(scope="session")
def flights() -> Flights:
    data = load_flights((1, 7))
    months = data["time"].dt.month
    jan = data[months == 1].sample(n=9000, random_state=0).reset_index(drop=True)
    jul = data[months == 7].sample(n=4000, random_state=0).reset_index(drop=True)
    return Flights(jan, jul)


@pytest.fixture(scope="session")
def champion_model(flights: Flights) -> Any:
    train = flights.jan.iloc[:4000]
    return pipeline().fit(train[list(FEATURES)], train[TARGET])


@dataclass
class World:
    registry: Registry
    logs: Path
    reader: LogReader
    rollouts: RolloutController

    def controller(self, policies: dict[str, Any], owner: str = "loop-a") -> LoopController:
        settings = parse_loop(policies)
        return controller(self, settings, owner)


def controller(world: World, settings: LoopSettings, owner: str) -> LoopController:
    monitor = Monitor(world.registry, world.reader, ResultStore(world.registry.metadata.db))
    return LoopController(world.registry, monitor, world.rollouts, settings, owner=owner)


def make_world(db_url: str, tmp_path: Path, flights: Flights, model: Any) -> World:
    db = open_database(db_url)
    registry = Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="t")
    columns = [*FEATURES, TARGET]
    registry.register(
        NAME,
        model,
        flights.jan.iloc[:4000][columns],
        target=TARGET,
        validation=flights.jan.iloc[4000:6000][columns],
        alias="production",
        seed=0,
    )
    from livemodel.store.rollouts import RolloutStore

    reader = LogReader(tmp_path / "logs")
    rollouts = RolloutController(registry, RolloutStore(db), reader, owner="rollouts")
    return World(registry, tmp_path / "logs", reader, rollouts)


@pytest.fixture
def world(db_url: str, tmp_path: Path, flights: Flights, champion_model: Any) -> Iterator[World]:
    w = make_world(db_url, tmp_path, flights, champion_model)
    yield w
    w.registry.metadata.db.close()


@pytest.fixture
def sqlite_world(tmp_path: Path, flights: Flights, champion_model: Any) -> Iterator[World]:
    w = make_world(f"sqlite:///{tmp_path / 'lm.db'}", tmp_path, flights, champion_model)
    yield w
    w.registry.metadata.db.close()


def spread(start: datetime, days: float, n: int) -> list[datetime]:
    step = timedelta(days=days) / n
    return [start + i * step for i in range(n)]


def write_traffic(
    world: World,
    frame: pd.DataFrame,
    times: Sequence[datetime],
    *,
    labelled: float = 0.8,
    seed: int = 0,
    prefix: str = "p",
) -> None:
    """Log production's predictions of ``frame`` at ``times`` and a share of their labels."""
    loaded = world.registry.load(f"{NAME}@production")
    outputs = predict_outputs(loaded.model, frame[list(FEATURES)], "binary")
    rows = frame[list(FEATURES)].to_dict("records")
    records = []
    for i, (row, t) in enumerate(zip(rows, times, strict=True)):
        features = {
            str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()
        }
        out = outputs.iloc[i]
        records.append(
            PredictionRecord(
                prediction_id=f"{prefix}{seed}-{i}",
                model=NAME,
                version=loaded.version.version,
                features=features,
                outputs={
                    "label": int(out["prediction"]),
                    "proba": {"0": float(out["proba_0"]), "1": float(out["proba_1"])},
                },
                time=t,
                latency_ms=1.0,
            )
        )
    options = LogOptions(compact=False)
    with PredictionLog(world.logs, options) as log:
        log.append(records)
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(len(frame)) < labelled)
    truth = frame[TARGET].to_numpy()
    labels = [
        (f"{prefix}{seed}-{i}", int(truth[i]), times[i] + timedelta(hours=1), "test")
        for i in chosen.tolist()
    ]
    with LabelLog(world.logs, options) as label_log:
        label_log.append(NAME, labels)


def policy(**overrides: Any) -> dict[str, Any]:
    """A policy for the flights model: drift on 2+ features, log-loss gate."""
    base: dict[str, Any] = {
        "train": "tests.loop.trainers:train_logistic",
        "cooldown": "7d",
        "monitor": {"window": "7d", "lookback": "14d", "min_rows": 200},
        "triggers": {"drift": {"min_features": 2}},
        "data": {"recent": "30d", "older_share": 0.3, "holdout": 0.2, "min_rows": 500},
        "gate": {"metric": "log_loss", "margin": 0.0, "n_bootstrap": 300,
                 "segments": ["origin"], "segment_tolerance": 0.05, "min_segment_rows": 50},
        "rollout": {"plan": "shadow,canary:10,50,100"},
    }  # fmt: skip
    for key, value in overrides.items():
        base[key] = value
    return {"models": {NAME: base}}
