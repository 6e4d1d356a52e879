"""Rollout store and controller on real databases and a real prediction log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from livemodel.errors import ConflictError, InvalidInputError, NotFoundError
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


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(db_url: str, tmp_path: Path) -> Iterator[tuple[Registry, RolloutStore, Path]]:
    db = open_database(db_url)
    registry = Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "a")), actor="t")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x0": rng.normal(size=600), "x1": rng.normal(size=600)})
    frame["y"] = (frame.x0 + rng.normal(scale=0.5, size=600) > 0).astype(int)
    model = LogisticRegression().fit(frame[["x0", "x1"]], frame["y"])
    registry.register("m", model, frame, target="y", alias="production")
    registry.register("m", model, frame, target="y")
    yield registry, RolloutStore(db), tmp_path / "logs"
    db.close()


def write_traffic(
    log_dir: Path, start: datetime, n: int, *, arm_share: float, cand_error: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        candidate = rng.random() < arm_share
        failed = candidate and rng.random() < cand_error
        p = float(rng.uniform(0.6, 0.99))
        records.append(
            PredictionRecord(
                prediction_id=f"{seed}-{i}",
                model="m",
                version=2 if candidate else 1,
                features={"x0": 0.1, "x1": 0.2},
                outputs={"label": 1, "proba": {"0": 1 - p, "1": p}},
                time=start + timedelta(milliseconds=10 * i),
                latency_ms=float(rng.uniform(1, 3)),
                flags=["model_error", "fallback:champion"] if failed else [],
                arm="candidate" if candidate else "champion",
            )
        )
    with PredictionLog(log_dir, LogOptions(compact=False)) as log:
        log.append(records)


def test_store_refuses_a_second_running_rollout_and_stale_saves(
    setup: tuple[Registry, RolloutStore, Path],
) -> None:
    _, store, _ = setup
    first = store.create("r1", "m", {"status": "running", "x": 1})
    with pytest.raises(ConflictError, match="already has a running rollout"):
        store.create("r2", "m", {"status": "running"})
    saved = store.save("r1", {"status": "running", "x": 2}, revision=first.revision)
    assert (saved.revision, saved.state["x"]) == (2, 2)
    with pytest.raises(ConflictError, match="changed by another process"):
        store.save("r1", {"status": "running", "x": 3}, revision=first.revision)
    store.save("r1", {"status": "rolled_back"}, revision=saved.revision)
    assert store.running("m") == []
    assert store.create("r3", "m", {"status": "running"}).id == "r3"
    assert store.latest("m").id == "r3"
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_lease_is_held_by_one_owner_until_it_expires(
    setup: tuple[Registry, RolloutStore, Path],
) -> None:
    _, real, _ = setup
    clock = Clock()
    store = RolloutStore(real.db, clock=clock)
    assert store.acquire("ctl", "a", 30)
    assert not store.acquire("ctl", "b", 30)
    assert store.acquire("ctl", "a", 30)  # renewal
    store.release("ctl", "a")
    assert store.acquire("ctl", "b", 10)
    clock.now += timedelta(seconds=10)
    assert not store.acquire("ctl", "a", 30)  # b's lease runs to its last instant
    clock.now += timedelta(microseconds=1)
    assert store.acquire("ctl", "a", 30)  # b's lease expired


def test_failing_candidate_is_rolled_back_and_audited(
    setup: tuple[Registry, RolloutStore, Path],
) -> None:
    registry, store, logs = setup
    clock = Clock()
    ctl = RolloutController(registry, store, LogReader(logs), owner="a", clock=clock)
    state = ctl.start("m", 2, "canary:20,100")
    assert registry.get("m@candidate").version == 2
    write_traffic(logs, T0, 1000, arm_share=0.2, cand_error=0.2, seed=1)
    clock.now = T0 + timedelta(seconds=30)
    events = ctl.tick()
    assert [e.action for e in events] == ["rollback"]
    final, _ = ctl.status("m")
    assert final.status == "rolled_back" and final.id == state.id
    assert registry.get("m@production").version == 1
    actions = [e.action for e in registry.audit("m")]
    assert "rollout.started" in actions and actions[-1] == "rollout.rollback"
    readings = registry.audit("m")[-1].details["readings"]
    errors = next(r for r in readings if r["guard"] == "errors")
    assert errors["verdict"] == "rollback" and errors["n_candidate"] > 0


def test_healthy_candidate_is_promoted_and_a_restart_resumes(
    setup: tuple[Registry, RolloutStore, Path],
) -> None:
    registry, store, logs = setup
    clock = Clock()
    first = RolloutController(registry, store, LogReader(logs), owner="a", clock=clock)
    first.start("m", 2, "canary:50,100", min_step_samples=100)
    write_traffic(logs, T0, 1500, arm_share=0.5, cand_error=0.0, seed=2)
    clock.now = T0 + timedelta(seconds=30)
    assert [e.action for e in first.tick()] == ["step"]
    # A second controller does nothing while the first holds the lease ...
    second = RolloutController(registry, store, LogReader(logs), owner="b", clock=clock)
    assert second.tick() == []
    # ... and resumes from the stored state once it is released.
    store.release("rollout-controller", "a")
    write_traffic(logs, T0 + timedelta(seconds=40), 1500, arm_share=1.0, cand_error=0.0, seed=3)
    clock.now = T0 + timedelta(seconds=90)
    assert [e.action for e in second.tick()] == ["promote"]
    assert registry.get("m@production").version == 2
    assert second.status("m")[0].status == "promoted"


def test_bad_starts_are_clear_errors(setup: tuple[Registry, RolloutStore, Path]) -> None:
    registry, store, logs = setup
    ctl = RolloutController(registry, store, LogReader(logs))
    with pytest.raises(InvalidInputError, match="already production"):
        ctl.start("m", 1, "canary:5,100")
    with pytest.raises(NotFoundError):
        ctl.start("m", 9, "canary:5,100")
    with pytest.raises(InvalidInputError):
        ctl.start("m", 2, "canary:50,10")
    with pytest.raises(InvalidInputError, match="--metric"):
        ctl.start("m", 2, "ab:50")
    with pytest.raises(NotFoundError, match="no running rollout"):
        ctl.abort("m")
    ctl.start("m", 2, "canary:5,100")
    assert ctl.abort("m", "changed my mind").status == "aborted"
    assert registry.audit("m")[-1].action == "rollout.aborted"
