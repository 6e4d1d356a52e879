"""Replaying a version from its lineage: identical when nothing changed, and says so when
the code did."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from livemodel.errors import IntegrityError, NotFoundError
from livemodel.loop.replay import replay

from .conftest import JUL, NAME, Flights, World, make_world, policy, spread, write_traffic

AFTER_JUL = datetime(2013, 7, 29, tzinfo=UTC)
trainers = importlib.import_module("tests.loop.trainers")


@pytest.fixture(scope="module")
def retrained(
    tmp_path_factory: pytest.TempPathFactory, flights: Flights, champion_model: Any
) -> Iterator[World]:
    """A world whose version 2 the loop trained (manually triggered)."""
    path = tmp_path_factory.mktemp("replay")
    world = make_world(f"sqlite:///{path / 'lm.db'}", path, flights, champion_model)
    write_traffic(world, flights.jul.iloc[:2000], spread(JUL, 27, 2000), prefix="jul")
    ctl = world.controller(policy(gate={"metric": "log_loss", "margin": -1.0}))
    outcome = ctl.retrain(NAME, AFTER_JUL, reason="for replay")
    assert outcome.action == "rollout_started", outcome.message
    yield world
    world.registry.metadata.db.close()


def test_same_data_and_code_give_identical_predictions(retrained: World) -> None:
    result = replay(retrained.registry, NAME, 2)
    assert result.identical, result.message()
    sample = retrained.registry.reference(f"{NAME}@2").sample
    assert result.compared == len(sample) > 0
    assert (result.predictions_differ, result.probabilities_differ) == (0, 0)
    assert result.max_probability_difference == 0.0
    assert result.entry_point == "tests.loop.trainers:train_logistic" and result.seed == 0
    assert result.registered is None
    assert len(retrained.registry.versions(NAME)) == 2  # nothing registered
    assert "reproduced exactly" in result.message()


def test_changed_code_is_reported_with_how_many_predictions_differ(
    retrained: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainers, "train_logistic", trainers.train_changed)
    result = replay(retrained.registry, NAME, 2)
    assert not result.identical
    assert result.probabilities_differ == result.compared
    assert result.max_probability_difference is not None
    assert result.max_probability_difference > 0
    assert f"{result.predictions_differ} of {result.compared} predictions differ" in (
        result.message()
    )
    assert "the training code or its environment changed" in result.message()
    assert len(retrained.registry.versions(NAME)) == 2


def test_replay_can_register_the_rebuilt_model(retrained: World) -> None:
    result = replay(retrained.registry, NAME, 2, register=True)
    assert result.identical and result.registered == 3
    rebuilt = retrained.registry.get(f"{NAME}@3")
    original = retrained.registry.get(f"{NAME}@2")
    assert rebuilt.tags["replay_of"] == 2 and rebuilt.tags["parent_version"] == 1
    assert rebuilt.lineage["data"]["fingerprint"] == original.lineage["data"]["fingerprint"]
    assert rebuilt.artifact.sha256 == original.artifact.sha256  # byte-identical model


def test_only_loop_versions_replay_and_a_damaged_snapshot_is_refused(retrained: World) -> None:
    with pytest.raises(NotFoundError, match="no pinned snapshot"):
        replay(retrained.registry, NAME, 1)
    with pytest.raises(NotFoundError):
        replay(retrained.registry, NAME, 99)
    info = retrained.registry.get(f"{NAME}@2").tags["loop"]["snapshot"]["holdout"]["artifact"]
    path = retrained.logs.parent / "artifacts" / info["key"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        with pytest.raises(IntegrityError, match="tampered"):
            replay(retrained.registry, NAME, 2)
    finally:
        path.write_bytes(original)
