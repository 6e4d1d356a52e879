"""The loop end to end on real databases (SQLite and PostgreSQL), a real log and flights."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from livemodel.loop.data import load_pinned
from livemodel.loop.history import loop_runs
from livemodel.monitor.resultstore import ResultStore
from livemodel.registry.lineage import data_fingerprint

from .conftest import JAN, JUL, NAME, Flights, World, policy, spread, write_traffic

AFTER_JAN = datetime(2013, 2, 4, tzinfo=UTC)
AFTER_JUL = datetime(2013, 7, 29, tzinfo=UTC)


def test_drift_triggers_retrain_gate_and_rollout(world: World, flights: Flights) -> None:
    write_traffic(world, flights.jan.iloc[6000:7500], spread(JAN, 20, 1500), prefix="jan")
    first = world.controller(policy(), owner="a").tick(AFTER_JAN)
    assert [(o.action, o.decision is not None and o.decision.hits) for o in first] == [("idle", ())]
    assert first[0].decision is not None and first[0].decision.window is not None

    write_traffic(world, flights.jul.iloc[:2500], spread(JUL, 27, 2500), prefix="jul")
    # Two controllers tick at once: the lease lets exactly one of them retrain.
    controllers = [world.controller(policy(), owner=o) for o in ("a", "b")]
    outcomes: dict[str, list[object]] = {}
    barrier = threading.Barrier(2)

    def tick(i: int) -> None:
        barrier.wait()
        outcomes[controllers[i].owner] = list(controllers[i].tick(AFTER_JUL))

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acted = [o for o in outcomes.values() if o]
    assert len(acted) == 1, outcomes
    outcome = acted[0][0]
    assert outcome.action == "rollout_started", outcome.message  # type: ignore[attr-defined]

    check_audit_and_candidate(world)
    check_rollout_started(world)

    # while the rollout runs, the loop leaves the model alone
    later = controllers[0].tick(AFTER_JUL)
    assert [o.action for o in later] in (["rollout_running"], [])
    controllers[0].release()
    controllers[1].release()
    again = controllers[1].tick(AFTER_JUL)
    assert [o.action for o in again] == ["rollout_running"]


def check_audit_and_candidate(world: World) -> None:
    events = world.registry.audit(NAME)
    actions = [e.action for e in events]
    assert actions.count("loop.retrain") == 1
    retrain = next(e for e in events if e.action == "loop.retrain")
    assert retrain.details["trigger"]["kinds"] == ["drift"]
    assert len(retrain.details["trigger"]["hits"][0]["details"]["columns"]) >= 2
    assert retrain.details["at"] == AFTER_JUL.isoformat() and retrain.details["parent"] == 1

    # the candidate: registered with its lineage and a pinned, verifiable snapshot
    candidate = world.registry.get(f"{NAME}@2")
    assert candidate.tags["trigger"] == "drift" and candidate.tags["parent_version"] == 1
    lineage = candidate.tags["loop"]
    assert lineage["train"] == "tests.loop.trainers:train_logistic" and lineage["seed"] == 0
    snapshot = load_pinned(lineage["snapshot"], world.registry.artifacts)
    assert data_fingerprint(snapshot.train) == candidate.lineage["data"]["fingerprint"]
    assert (
        data_fingerprint(snapshot.holdout) == (candidate.lineage["data"]["validation_fingerprint"])
    )
    rows = lineage["snapshot"]["query"]["rows"]
    assert rows["train"] == len(snapshot.train) and rows["holdout"] == len(snapshot.holdout)
    assert 0 < rows["older"] <= rows["older_available"]  # January rows, sampled
    assert candidate.lineage["data"]["source"].startswith("loop snapshot sha256:")

    # the gate's numbers are in the audit log
    gate = next(e for e in events if e.action == "loop.gate.passed")
    overall = gate.details["gate"]["overall"]
    assert overall["metric"] == "log_loss" and overall["n"] == len(snapshot.holdout)
    assert overall["candidate"] < overall["champion"] and overall["lower"] > 0
    assert {s["value"] for s in gate.details["gate"]["segments"]} == {"EWR", "JFK", "LGA"}


def check_rollout_started(world: World) -> None:
    """Started through the rollout controller, which follows it from here."""
    events = world.registry.audit(NAME)
    actions = [e.action for e in events]
    assert actions.index("loop.gate.passed") < actions.index("rollout.started")
    assert actions[-1] == "loop.rollout.started"
    started = next(e for e in events if e.action == "rollout.started")
    assert started.details["gated"] is True  # the gate's labels outrank the estimate
    running = world.rollouts.store.running(NAME)
    assert len(running) == 1 and running[0].state["candidate"] == 2
    assert running[0].state["status"] == "running"
    assert world.registry.aliases(NAME) == {"production": 1, "candidate": 2}
    (run,) = loop_runs(events)
    assert run.stage == "rollout_started" and run.rollout == running[0].id

    # monitoring results were stored for the dashboard
    stored = ResultStore(world.registry.metadata.db).query(NAME, window="7d", alerts_only=True)
    assert any(r.calculator == "data_drift" for r in stored)
