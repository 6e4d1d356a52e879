"""The router in this process, on real endpoints and a real log: what a canary records
when a version fails, and a candidate's refusal never reaches the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from livemodel.config import Settings
from livemodel.serving.engine import ActiveRollout, ModelEndpoint, PredictRequest
from livemodel.serving.failures import ModelFailedError
from livemodel.serving.handles import load_handle
from livemodel.serving.metrics import ServerMetrics
from livemodel.serving.options import ModelOptions
from livemodel.serving.router import route
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.wiring import connect

ABSURD = 1e308  # gradient boosting casts to float32, where it is infinite: it raises


@pytest.fixture
def endpoints(tmp_path: Path) -> Iterator[tuple[ModelEndpoint, PredictionLog]]:
    """Champion v1 on (x, y); candidate v2 the same model on (x, y, z): its signature
    refuses a record without z, which the champion's accepts."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    frame["z"] = rng.normal(size=300)
    frame["t"] = (frame["x"] + frame["y"] > 0).astype("int64")
    registry = connect(Settings.at(tmp_path, actor="tests"))
    for columns in (["x", "y"], ["x", "y", "z"]):
        model = GradientBoostingClassifier(n_estimators=5, random_state=0)
        model.fit(frame[columns], frame["t"])
        registry.register("m", model, frame[[*columns, "t"]], target="t")
    metrics = ServerMetrics()
    with PredictionLog(tmp_path / "logs", LogOptions(compact=False)) as log:
        champion, candidate = (
            ModelEndpoint(load_handle(registry, f"m@{v}"), ModelOptions(), log, metrics)
            for v in (1, 2)
        )
        champion.rollout = ActiveRollout("r1", 2, 50.0, False, None, candidate)
        yield champion, log
    registry.metadata.db.close()


def send(champion: ModelEndpoint, requests: list[list[dict[str, Any]]]) -> list[Any]:
    """Route each request in turn (one event loop); answers, or the 503's error."""

    async def one(records: list[dict[str, Any]]) -> Any:
        try:
            return await route(champion, PredictRequest(records))
        except ModelFailedError as exc:
            return exc

    async def go() -> list[Any]:
        try:
            return [await one(records) for records in requests]
        finally:
            await asyncio.sleep(0.5)  # let copies off the response path finish
            assert champion.rollout is not None
            for endpoint in (champion, champion.rollout.candidate):
                await endpoint.batcher.close()

    return asyncio.run(go())


def logged(tmp_path: Path) -> list[dict[str, Any]]:
    columns = ["prediction_id", "version", "arm", "flags"]
    rows: list[dict[str, Any]] = (
        LogReader(tmp_path / "logs").window("m", columns=columns).to_pylist()
    )
    return rows


def test_a_candidate_refusing_a_record_the_champion_accepts_does_not_fail_the_client(
    endpoints: tuple[ModelEndpoint, PredictionLog], tmp_path: Path
) -> None:
    champion, _ = endpoints  # the log's appends are on disk when they return
    assert champion.rollout is not None
    champion.rollout = ActiveRollout("r1", 2, 100.0, False, None, champion.rollout.candidate)
    (answer,) = send(champion, [[{"x": 0.5, "y": 0.5}]])  # no z: the candidate refuses it
    assert answer.version == 1 and len(answer.rows) == 1
    assert [(r["arm"], r["version"]) for r in logged(tmp_path)] == [("fallback", 1)]


def test_a_canary_failure_of_both_versions_is_recorded_for_each_under_one_id(
    endpoints: tuple[ModelEndpoint, PredictionLog], tmp_path: Path
) -> None:
    champion, _ = endpoints  # the log's appends are on disk when they return
    failures = send(champion, [[{"x": ABSURD, "y": 0.0, "z": 0.0}]] * 6)
    assert all(isinstance(f, ModelFailedError) for f in failures)
    rows = logged(tmp_path)
    by_id: dict[str, set[tuple[str, int]]] = {}
    for r in rows:
        assert "model_error" in r["flags"], r
        by_id.setdefault(r["prediction_id"], set()).add((r["arm"], r["version"]))
    # each failed request: its arm's failure, and the other version's on the same input
    pairs = {frozenset(v) for v in by_id.values()}
    assert pairs <= {
        frozenset({("champion", 1), ("probe", 2)}),
        frozenset({("candidate", 2), ("fallback", 1)}),
    }, pairs
    assert {pid for f in failures for pid in f.prediction_ids} == set(by_id)
