"""Loop runs that do not end in a rollout: gate failures, cooldown, crashes, bad training."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from livemodel.demo.flights import FEATURES, TARGET
from livemodel.errors import ConfigError, ConflictError, InvalidInputError
from livemodel.loop.controller import LoopController
from livemodel.loop.history import loop_runs

from .conftest import JUL, NAME, Flights, World, make_world, policy, spread, write_traffic

AFTER_JUL = datetime(2013, 7, 29, tzinfo=UTC)
trainers = importlib.import_module("tests.loop.trainers")


@pytest.fixture
def drifted(sqlite_world: World, flights: Flights) -> World:
    write_traffic(sqlite_world, flights.jul.iloc[:2500], spread(JUL, 27, 2500), prefix="jul")
    return sqlite_world


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, flights: Flights, champion_model: Any
) -> Iterator[World]:
    """One drifted world for tests whose runs fail (they leave nothing but audit events)."""
    path = tmp_path_factory.mktemp("shared")
    world = make_world(f"sqlite:///{path / 'lm.db'}", path, flights, champion_model)
    write_traffic(world, flights.jul.iloc[:2500], spread(JUL, 27, 2500), prefix="jul")
    yield world
    world.registry.metadata.db.close()


def actions(world: World) -> list[str]:
    return [e.action for e in world.registry.audit(NAME) if e.action.startswith("loop.")]


def test_a_worse_retrain_is_blocked_by_the_gate_and_cooldown_holds(drifted: World) -> None:
    ctl = drifted.controller(policy(train="tests.loop.trainers:train_dummy"))
    (outcome,) = ctl.tick(AFTER_JUL)
    assert outcome.action == "gate_failed"
    assert outcome.gate is not None and not outcome.gate.passed
    assert outcome.message.startswith("not better enough: log_loss")
    assert actions(drifted) == ["loop.retrain", "loop.candidate", "loop.gate.failed"]
    failed = drifted.registry.audit(NAME)[-1]
    overall = failed.details["gate"]["overall"]
    assert overall["candidate"] > overall["champion"]  # the dummy's log loss is worse
    assert overall["upper"] < 0 and failed.details["candidate"] == 2
    assert failed.details["champion"] == 1
    # nothing deployed
    assert drifted.rollouts.store.running(NAME) == []
    assert drifted.registry.aliases(NAME) == {"production": 1}
    # the trigger still fires a day later, but the cooldown holds it back
    calls = len(trainers.CALLS)
    (held,) = ctl.tick(AFTER_JUL + timedelta(hours=12))
    assert held.action == "cooldown" and held.decision is not None and held.decision.hits
    assert held.message.startswith("cooldown until 2013-08-05")
    assert len(trainers.CALLS) == calls
    assert actions(drifted).count("loop.retrain") == 1
    status = ctl.status(NAME, AFTER_JUL + timedelta(hours=12))
    assert status.cooldown_until == AFTER_JUL + timedelta(days=7)
    assert [r.stage for r in status.runs] == ["gate_failed"] and status.running_rollout is None
    assert status.to_dict()["policy"]["cooldown"] == "1w"
    # a restarted controller reads the cooldown from the audit log
    fresh = drifted.controller(policy(train="tests.loop.trainers:train_dummy"), owner="new")
    ctl.release()
    (again,) = fresh.tick(AFTER_JUL + timedelta(days=1))
    assert again.action == "cooldown"


def test_an_interrupted_run_is_resumed_after_a_restart(
    drifted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = drifted.controller(policy())

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies between registration and the gate

    monkeypatch.setattr(LoopController, "_gate", crash)
    with pytest.raises(KeyboardInterrupt):
        ctl.tick(AFTER_JUL)
    monkeypatch.undo()
    assert actions(drifted) == ["loop.retrain", "loop.candidate"]
    (run,) = loop_runs(drifted.registry.audit(NAME))
    assert run.stage == "gate" and run.candidate == 2
    with pytest.raises(ConflictError, match="unfinished"):
        ctl.retrain(NAME, AFTER_JUL)

    calls = len(trainers.CALLS)
    ctl.release()
    restarted = drifted.controller(policy(), owner="restarted")
    (outcome,) = restarted.tick(AFTER_JUL + timedelta(hours=1))
    assert outcome.action == "rollout_started", outcome.message
    assert len(trainers.CALLS) == calls  # resumed, not retrained
    assert actions(drifted) == [
        "loop.retrain", "loop.candidate", "loop.gate.passed", "loop.rollout.started",
    ]  # fmt: skip
    assert outcome.run is not None and outcome.run.run == run.run
    assert len(drifted.registry.versions(NAME)) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train": "tests.loop.trainers:train_broken"},
         "the train function tests.loop.trainers:train_broken failed: RuntimeError: the feature"),
        ({"train": "tests.loop.no_such_module:train"},
         "loop.models.flights.train: cannot import module 'tests.loop.no_such_module'"),
        ({"train": "tests.loop.trainers:NOT_CALLABLE"},
         "loop.models.flights.train: 'tests.loop.trainers:NOT_CALLABLE' is not callable"),
        ({"train": "tests.loop.trainers:missing"},
         "loop.models.flights.train: 'tests.loop.trainers' has no attribute 'missing'"),
        ({"data": {"min_rows": 100_000}}, "only "),
    ],
)  # fmt: skip
def test_a_failed_retrain_is_recorded_and_registers_nothing(
    shared: World, overrides: dict[str, Any], message: str
) -> None:
    ctl = shared.controller(policy(**overrides))
    outcome = ctl.retrain(NAME, AFTER_JUL, reason="test")
    ctl.release()
    assert outcome.action == "retrain_failed"
    assert outcome.message.startswith(message), outcome.message
    assert actions(shared)[-2:] == ["loop.retrain", "loop.retrain.failed"]
    assert shared.registry.audit(NAME)[-1].details["error"] == outcome.message
    assert len(shared.registry.versions(NAME)) == 1
    assert outcome.run is not None and outcome.run.stage == "retrain_failed"


def test_manual_retrain_ignores_the_cooldown_but_not_a_running_rollout(drifted: World) -> None:
    ctl = drifted.controller(policy())
    first = ctl.retrain(NAME, AFTER_JUL, reason="new data arrived")
    assert first.action == "rollout_started", first.message
    retrain = next(e for e in drifted.registry.audit(NAME) if e.action == "loop.retrain")
    assert retrain.reason == "new data arrived"
    assert retrain.details["trigger"]["kinds"] == ["manual"]
    assert drifted.registry.get(f"{NAME}@2").tags["trigger"] == "manual"
    with pytest.raises(ConflictError, match="running rollout"):
        ctl.retrain(NAME, AFTER_JUL)
    drifted.rollouts.abort(NAME, "test")
    second = ctl.retrain(NAME, AFTER_JUL + timedelta(hours=1))  # within the cooldown
    assert second.action == "rollout_started", second.message
    assert actions(drifted).count("loop.retrain") == 2
    assert drifted.registry.aliases(NAME)["candidate"] == 3
    with pytest.raises(ConfigError, match=r"no loop policy for 'other'"):
        ctl.retrain("other", AFTER_JUL)


def test_models_without_production_or_registration_are_skipped(
    shared: World, flights: Flights
) -> None:
    spec = policy()
    spec["models"]["ghost"] = dict(spec["models"][NAME])
    spec["models"]["orphan"] = dict(spec["models"][NAME])
    champion = shared.registry.load(f"{NAME}@1").model
    frame = flights.jan.iloc[:300][[*FEATURES, TARGET]]
    shared.registry.register("orphan", champion, frame, target=TARGET)  # no production alias
    ctl = shared.controller(spec)
    outcomes = {o.model: o.action for o in ctl.tick(AFTER_JUL)}
    ctl.release()
    assert (outcomes["ghost"], outcomes["orphan"]) == ("not_registered", "no_production")
    assert outcomes[NAME] in ("idle", "cooldown", "rollout_started")


def test_another_controller_holding_the_lease_blocks_ticks_and_manual_retrains(
    shared: World,
) -> None:
    holder = shared.controller(policy(), owner="holder")
    other = shared.controller(policy(), owner="other")
    assert holder.acquire()
    before = actions(shared)
    assert other.tick(AFTER_JUL) == []
    with pytest.raises(ConflictError, match="holds the lease"):
        other.retrain(NAME, AFTER_JUL)
    assert actions(shared) == before
    holder.release()
    assert other.acquire()
    other.release()


def test_times_must_be_timezone_aware(shared: World) -> None:
    ctl = shared.controller(policy())
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        ctl.tick(datetime(2013, 7, 29))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        ctl.retrain(NAME, datetime(2013, 7, 29))


def test_a_controller_that_loses_the_lease_stops_and_the_next_one_resumes(
    drifted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl = drifted.controller(policy(), owner="slow")
    answers = iter([True, False])  # holds the lease for the tick, loses it before training
    monkeypatch.setattr(ctl, "acquire", lambda: next(answers))
    (outcome,) = ctl.tick(AFTER_JUL)
    assert outcome.action == "lost_lease"
    assert actions(drifted) == ["loop.retrain"]  # no failure recorded: the run is unfinished
    drifted.rollouts.store.release("loop-controller", "slow")
    (resumed,) = drifted.controller(policy(), owner="next").tick(AFTER_JUL)
    assert resumed.action == "rollout_started", resumed.message
    assert actions(drifted)[0] == "loop.retrain" and actions(drifted).count("loop.retrain") == 1
