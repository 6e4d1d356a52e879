"""Shared fixtures: a small registered flights model and a prediction log written the way
the server writes it (one PredictionRecord per row, outputs as label + proba)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import linear_pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.registry.registry import Registry
from livemodel.serving.handles import ModelHandle, load_handle
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.labels import LabelLog
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.metadata import MetadataStore
from livemodel.store.predlog import PredictionRecord


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # BLAS/OpenMP threads oversubscribe a shared 2-core machine.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """12,000 real flights of January and July 2013 with ``time``, features and target."""
    data = load_flights((1, 7))
    jan = data[data["time"].dt.month == 1].iloc[:8000]
    jul = data[data["time"].dt.month == 7].iloc[:4000]
    return pd.concat([jan, jul], ignore_index=True)


@pytest.fixture(scope="session")
def model(flights: pd.DataFrame) -> Any:
    train = flights.iloc[:5000]
    return linear_pipeline().fit(train[list(FEATURES)], train[TARGET])


def register(registry: Registry, model: Any, flights: pd.DataFrame, name: str = "flights") -> int:
    columns = [*FEATURES, TARGET]
    version = registry.register(
        name,
        model,
        flights.iloc[:5000][columns],
        target=TARGET,
        validation=flights.iloc[5000:8000][columns],
        alias="production",
        seed=0,
    )
    return version.version


def _feature_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}


def server_outputs(handle: ModelHandle, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Outputs per row exactly as the server logs them: label, and proba by class text."""
    outputs = handle.predict(frame[list(FEATURES)])
    out = []
    for i in range(len(frame)):
        row: dict[str, Any] = {}
        if outputs.labels is not None:
            label = outputs.labels[i]
            row["label"] = label.item() if isinstance(label, np.generic) else label
        if outputs.proba is not None and handle.classes is not None:
            row["proba"] = {
                str(c): float(p) for c, p in zip(handle.classes, outputs.proba[i], strict=True)
            }
        if outputs.values is not None:
            row["value"] = float(outputs.values[i])
        out.append(row)
    return out


def write_log(
    root: Path,
    registry: Registry,
    name: str,
    frame: pd.DataFrame,
    times: Sequence[datetime],
    *,
    labelled: float = 0.5,
    label_delay: timedelta = timedelta(hours=1),
) -> list[str]:
    """Log ``frame``'s predictions at ``times``; label a ``labelled`` share of them."""
    handle = load_handle(registry, f"{name}@production")
    outputs = server_outputs(handle, frame)
    feature_rows = frame[list(FEATURES)].to_dict("records")
    ids = [uuid.uuid4().hex for _ in range(len(frame))]
    records = [
        PredictionRecord(
            prediction_id=pid,
            model=name,
            version=handle.number,
            features=_feature_row(row),
            outputs=out,
            time=t,
            latency_ms=1.0,
        )
        for pid, row, out, t in zip(ids, feature_rows, outputs, times, strict=True)
    ]
    options = LogOptions(compact=False)
    with PredictionLog(root, options) as log:
        for start in range(0, len(records), 500):
            log.append(records[start : start + 500])
    rng = np.random.default_rng(0)
    chosen = np.flatnonzero(rng.random(len(frame)) < labelled)
    truth = frame[TARGET].to_numpy()
    labels = [(ids[i], int(truth[i]), times[i] + label_delay, "test") for i in chosen.tolist()]
    if labels:
        with LabelLog(root, options) as label_log:
            label_log.append(name, labels)
    return ids


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    db = open_database(db_url)
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    yield Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "artifacts")), actor="tester")
    db.close()
