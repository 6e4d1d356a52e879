"""One controller follows the rollouts of several models whose version numbers repeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from livemodel.registry.registry import Registry
from livemodel.rollout.controller import RolloutController
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.metadata import MetadataStore
from livemodel.store.predlog import PredictionRecord
from livemodel.store.rollouts import RolloutStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def frame(classes: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"x0": rng.normal(size=900), "x1": rng.normal(size=900)})
    data["y"] = np.digitize(data.x0 + rng.normal(scale=0.5, size=900), [-0.5, 0.5][: classes - 1])
    return data


def traffic(name: str, model: LogisticRegression, data: pd.DataFrame) -> list[PredictionRecord]:
    x = data[["x0", "x1"]]
    proba, labels = model.predict_proba(x), model.predict(x)
    return [
        PredictionRecord(
            prediction_id=f"{name}-{i}",
            model=name,
            version=2 if i % 2 else 1,
            features={"x0": float(x.x0.iloc[i]), "x1": float(x.x1.iloc[i])},
            outputs={
                "label": int(labels[i]),
                "proba": {str(c): float(p) for c, p in zip(model.classes_, proba[i], strict=True)},
            },
            time=T0 + timedelta(milliseconds=10 * i),
            latency_ms=2.0,
            arm="candidate" if i % 2 else "champion",
        )
        for i in range(len(x))
    ]


def test_each_model_is_estimated_with_its_own_calibration(tmp_path: Path) -> None:
    """A binary and a three-class model both at v1 -> v2: the controller's CBPE for each
    (model, version) is its own; keyed by version alone, the binary model's calibration was
    applied to the three-class probabilities and every tick of that rollout failed."""
    db = open_database(f"sqlite:///{tmp_path / 'lm.db'}")
    registry = Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "a")), actor="t")
    records = []
    for name, classes in (("binary", 2), ("three", 3)):
        data = frame(classes, seed=classes)
        model = LogisticRegression().fit(data[["x0", "x1"]], data["y"])
        for _ in range(2):
            registry.register(name, model, data.iloc[:600], target="y",
                              validation=data.iloc[600:], alias="production")  # fmt: skip
        registry.set_alias(name, "production", 1)
        records += traffic(name, model, data)
    now = T0 - timedelta(seconds=1)
    controller = RolloutController(
        registry, RolloutStore(db), LogReader(tmp_path / "logs"), clock=lambda: now
    )
    for name in ("binary", "three"):
        controller.start(name, 2, "canary:50,100")
    with PredictionLog(tmp_path / "logs", LogOptions(compact=False)) as log:
        log.append(records)
    now = T0 + timedelta(minutes=5)
    controller.tick()
    for name in ("binary", "three"):
        state, _ = controller.status(name)
        estimated = next(r for r in state.last_readings if r["guard"] == "estimated")
        assert estimated["n_candidate"] == estimated["n_champion"] == 450, (name, estimated)
    db.close()
