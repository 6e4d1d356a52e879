"""The alerts table on SQLite and PostgreSQL, and a whole check over stored results."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from livemodel.alerts.check import check_model
from livemodel.alerts.config import load_alerts_config
from livemodel.alerts.notifiers import Delivery
from livemodel.alerts.rules import Alert
from livemodel.alerts.store import AlertStore, store_key
from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.monitor.results import MetricResult, WindowResult
from livemodel.monitor.resultstore import ResultStore
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import Database, open_database
from livemodel.store.metadata import MetadataStore

from .helpers import T0

NOW = T0 + timedelta(days=1, hours=2)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.close()


def _alert(subject: str = "drift:temp", severity: str = "warning", model: str = "flights") -> Alert:
    return Alert(rule="r", severity=severity, model=model, subject=subject,  # type: ignore[arg-type]
                 message="m", at=T0, cooldown=timedelta(hours=1))  # fmt: skip


def test_record_query_last_sent_and_open(db: Database) -> None:
    store = AlertStore(db)
    sent = store.record(
        _alert(), "sent", deliveries=[Delivery("ops", "sent", 2, "HTTP 500")], at=NOW
    )
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 2, "ops: HTTP 500")
    store.record(_alert(), "suppressed", reason="in cooldown", at=NOW + timedelta(minutes=5))
    store.record(_alert("drift:wind", "critical"), "failed",
                 deliveries=[Delivery("ops", "failed", 4, "unreachable")],
                 at=NOW + timedelta(minutes=6))  # fmt: skip
    store.record(_alert("x", model="other"), "sent", at=NOW - timedelta(hours=5))
    rows = store.query("flights")
    assert [r.state for r in rows] == ["failed", "suppressed", "sent"]
    assert rows[1].last_error == "in cooldown"
    assert rows[0].to_dict()["cooldown"] == 3600.0
    assert [r.model for r in store.query()] == ["flights"] * 3 + ["other"]
    assert len(store.query(state="failed")) == 1
    assert len(store.query(severity="critical")) == 1
    assert store.query(since=NOW + timedelta(minutes=6), limit=1)[0].subject == "drift:wind"
    last = store.last_sent(["r|flights|drift:temp", "r|flights|drift:wind", "nope"])
    assert last == {"r|flights|drift:temp": NOW}
    # open: the newest row per key within its cooldown, most severe first
    opened = store.open(now=NOW + timedelta(minutes=30))
    assert [(r.subject, r.state) for r in opened] == [
        ("drift:wind", "failed"), ("drift:temp", "suppressed"),
    ]  # fmt: skip
    assert store.open("flights", now=NOW + timedelta(hours=2)) == []
    assert store.open("other", now=NOW) == []


def test_long_keys_and_bad_arguments(db: Database) -> None:
    store = AlertStore(db)
    subject = "drift:" + "c" * 2000
    store.record(_alert(subject), "sent", at=NOW)
    key = f"r|flights|{subject}"
    assert len(store_key(key)) == 512 and store_key(key) != store_key(key + "x")
    assert store.last_sent([key]) == {key: NOW}
    with pytest.raises(InvalidInputError):
        store.record(_alert(), "lost")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.record(_alert(), "sent", at=NOW.replace(tzinfo=None))
    for bad in ({"state": "x"}, {"severity": "x"}, {"limit": 0}, {"limit": True}):
        with pytest.raises(InvalidInputError):
            store.query(**bad)  # type: ignore[arg-type]


def _registry(db: Database, tmp_path: Path) -> Registry:
    registry = Registry(MetadataStore(db), ArtifactStore(str(tmp_path / "a")), actor="t")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"temp": rng.normal(size=60), "wind": rng.normal(size=60)})
    frame["late"] = (frame["temp"] > 0).astype(int)
    model = LogisticRegression().fit(frame[["temp", "wind"]], frame["late"])
    registry.register("flights", model, frame, target="late", alias="production", seed=0)
    return registry


def _window(start: pd.Timestamp, drifted: bool) -> WindowResult:
    results = (
        MetricResult("data_drift", "drift", "temp", float(drifted), alert=drifted, n=100),
        MetricResult("data_drift", "drift", "wind", 0.0, n=100),
        MetricResult("realized_performance", "accuracy", None, 0.6, lower=0.8, upper=0.9,
                     alert=True, n=50),
    )  # fmt: skip
    return WindowResult("flights", 1, "1d", start, start + timedelta(days=1), "*", 100, 50, results)


def test_check_model_end_to_end(db: Database, tmp_path: Path) -> None:
    registry = _registry(db, tmp_path)
    results = ResultStore(db)
    results.save([_window(T0 - timedelta(days=1), False), _window(T0, True)])
    registry.record_event("flights", "rollout.rollback", reason="errors worse",
                          details={"rollout": "r1", "status": "rolled_back"})  # fmt: skip
    store = AlertStore(db)
    config = load_alerts_config({})
    now = NOW  # the rollback event is recorded at the real time, after NOW: still recent
    outcomes = check_model("flights", registry=registry, results=results, store=store,
                           config=config, now=now)  # fmt: skip
    assert sorted(o.alert.rule for o in outcomes) == ["accuracy", "drift", "rollback"]
    assert all(o.state == "sent" for o in outcomes)
    drift = next(o.alert for o in outcomes if o.alert.rule == "drift")
    assert drift.details["columns"] == ["temp"] and drift.at == T0 + timedelta(days=1)
    again = check_model("flights", registry=registry, results=results, store=store,
                        config=config, now=now + timedelta(minutes=10))  # fmt: skip
    assert [o.state for o in again] == ["suppressed"] * 3
    later = check_model("flights", registry=registry, results=results, store=store,
                        config=config, now=now + timedelta(hours=2))  # fmt: skip
    # window alerts come back after the cooldown; the rollback is announced once only
    assert sorted((o.alert.rule, o.state) for o in later) == [
        ("accuracy", "sent"), ("drift", "sent"), ("rollback", "suppressed"),
    ]  # fmt: skip
    assert len(store.query("flights")) == 9
    with pytest.raises(NotFoundError):
        check_model("nobody", registry=registry, results=results, store=store, config=config)
