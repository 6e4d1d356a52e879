"""A retrain on a window without the nulls and categories the parent saw keeps accepting
them: the loop registers the candidate with the parent's signature as ``accepts``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from livemodel.demo.flights import FEATURES, TARGET
from livemodel.loop.data import load_pinned
from livemodel.registry.model_io import predict_outputs
from livemodel.schema.signature import infer_signature
from livemodel.schema.validation import ViolationKind, validate

from .conftest import JUL, NAME, Flights, World, policy, spread, write_traffic

AFTER_JUL = datetime(2013, 7, 29, tzinfo=UTC)
NULLABLE = ("temp", "humid", "wind_speed", "precip", "visib")


def test_a_retrain_keeps_accepting_what_its_parent_accepted(
    sqlite_world: World, flights: Flights
) -> None:
    world = sqlite_world
    parent = world.registry.get(f"{NAME}@production").signature
    assert all(parent.column(c).nullable for c in NULLABLE)
    assert "HA" in (parent.column("carrier").categories or ())
    # July traffic without a single null and without Hawaiian Airlines flights
    july = flights.jul.dropna(subset=list(FEATURES))
    july = july[july["carrier"] != "HA"].iloc[:2500].reset_index(drop=True)
    write_traffic(world, july, spread(JUL, 27, len(july)), prefix="jul")

    def retrain(train: str, at: datetime) -> int:
        ctl = world.controller(policy(train=train, gate={"metric": "log_loss", "margin": -1.0}))
        outcome = ctl.retrain(NAME, at, reason="test")
        ctl.release()
        assert outcome.action == "rollout_started", outcome.message
        world.rollouts.abort(NAME, "test")
        return len(world.registry.versions(NAME))

    imputing = world.registry.load(
        f"{NAME}@{retrain('tests.loop.trainers:train_logistic', AFTER_JUL)}"
    )
    version = imputing.version
    snapshot = load_pinned(version.tags["loop"]["snapshot"], world.registry.artifacts)
    narrow = infer_signature(snapshot.train, TARGET)  # what the window alone would say
    assert not any(narrow.column(c).nullable for c in NULLABLE)
    assert "HA" not in (narrow.column("carrier").categories or ())

    first = july[list(FEATURES)].iloc[:1].to_dict("records")[0]
    row = {**{str(k): x for k, x in first.items()}, "carrier": "HA"}
    row.update(dict.fromkeys(NULLABLE))
    assert {x.kind for x in validate(narrow, [row]).violations} == {
        ViolationKind.NULL,
        ViolationKind.UNSEEN_CATEGORY,
    }
    result = validate(version.signature, [row])
    assert result.n_violations == 0, result.summary()
    outputs = predict_outputs(imputing.model, result.frame, "binary")
    assert np.isfinite(outputs[["proba_0", "proba_1"]].to_numpy()).all()
    assert version.lineage["signature"]["kept_narrow"] == {}
    assert "carrier" in version.lineage["signature"]["widened"]
    assert "signature_kept_narrow" not in version.tags

    # A model that cannot take a null keeps those columns non-nullable, and says so; the
    # old category is still accepted (flags are only flags).
    strict_number = retrain(
        "tests.loop.trainers:train_without_imputer", AFTER_JUL + timedelta(hours=1)
    )
    strict = world.registry.get(f"{NAME}@{strict_number}")
    assert strict.tags["parent_version"] == 1
    assert strict.tags["signature_kept_narrow"] == sorted(NULLABLE)
    assert set(strict.lineage["signature"]["kept_narrow"]) == set(NULLABLE)
    assert not any(strict.signature.column(c).nullable for c in NULLABLE)
    refused = validate(strict.signature, [row]).violations
    assert {(x.kind, x.column) for x in refused} == {(ViolationKind.NULL, c) for c in NULLABLE}
