"""A labelled prediction stream whose concept changes: shared by the concept-drift tests.

3,000 predictions one minute apart of a model that learnt ``y = [a > 0]``; from prediction
2,000 on the truth is ``y = [b > 0]`` (the concept changed, the inputs did not), so the 0/1
error jumps from about 8% to about 50%.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from livemodel.registry.registry import Registry
from livemodel.store.labels import LabelLog
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N, CHANGE = 3000, 2000
OPTIONS = LogOptions(compact=False)


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


def register(registry: Registry, model: Any, name: str = "m") -> None:
    x = frame(1500, 2)
    y = (x["a"] + 0.3 * np.random.default_rng(3).normal(size=1500) > 0).astype(int)
    registry.register(name, model, x.assign(y=y), target="y", alias="production", seed=0)


def log_stream(root: Path, model: Any, name: str = "m") -> tuple[list[str], np.ndarray]:
    """Log N predictions one minute apart; return their ids and true labels."""
    x = frame(N, 4)
    served = model.predict(x)
    noise = 0.3 * np.random.default_rng(5).normal(size=N)
    truth = ((x["a"] + noise > 0).astype(int)).to_numpy().copy()
    truth[CHANGE:] = (x["b"][CHANGE:] > 0).astype(int).to_numpy()
    ids = [uuid.uuid4().hex for _ in range(N)]
    records = [
        PredictionRecord(
            prediction_id=ids[i], model=name, version=1,
            features={"a": float(x.a[i]), "b": float(x.b[i])},
            outputs={"label": int(served[i])}, time=T0 + timedelta(minutes=i), latency_ms=1.0,
        )
        for i in range(N)
    ]  # fmt: skip
    with PredictionLog(root, OPTIONS) as log:
        log.append(records)
    return ids, truth


def label(root: Path, ids: list[str], truth: np.ndarray, rows: range | list[int]) -> None:
    with LabelLog(root, OPTIONS) as labels:
        labels.append("m", [(ids[i], int(truth[i]), T0, "test") for i in rows])


def fit_model() -> LogisticRegression:
    x = frame(2000, 0)
    y = (x["a"] + 0.3 * np.random.default_rng(1).normal(size=2000) > 0).astype(int)
    return LogisticRegression().fit(x, y)
