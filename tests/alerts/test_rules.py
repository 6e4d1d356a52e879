"""Alert rules and deduplication as pure functions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.alerts.rules import (
    Alert,
    DriftRule,
    MetricRule,
    MultivariateRule,
    PerformanceRule,
    QualityRule,
    RollbackRule,
    decide,
    evaluate,
    latest_windows,
)
from livemodel.monitor.resultstore import StoredResult

from .helpers import T0, event, result

NOW = T0 + timedelta(days=1, hours=1)


def _drift(column: str, drifted: bool, **kw: Any) -> StoredResult:
    return result("data_drift", "drift", column, 1.0 if drifted else 0.0, alert=drifted, **kw)


def test_drift_on_one_feature_and_on_k_features() -> None:
    rows = [_drift("temp", True), _drift("dep_delay", True), _drift("distance", False)]
    rows.append(result("data_drift", "ks", "temp", 0.3, alert=False))  # method rows ignored
    one = DriftRule(name="t", column="temp").evaluate("flights", rows, [], NOW)
    assert [a.subject for a in one] == ["drift:temp"]
    assert one[0].severity == "warning" and "temp drifted" in one[0].message
    assert DriftRule(name="d", column="distance").evaluate("flights", rows, [], NOW) == []
    two = DriftRule(name="k", min_features=2).evaluate("flights", rows, [], NOW)
    assert len(two) == 1 and two[0].details["columns"] == ["dep_delay", "temp"]
    assert DriftRule(name="k", min_features=3).evaluate("flights", rows, [], NOW) == []


def test_segment_rows_only_match_their_segment() -> None:
    rows = [_drift("temp", True, segment="carrier=AA")]
    assert DriftRule(name="t", column="temp").evaluate("flights", rows, [], NOW) == []
    seg = DriftRule(name="t", column="temp", segment="carrier=AA")
    alerts = seg.evaluate("flights", rows, [], NOW)
    assert alerts[0].subject == "drift:temp@carrier=AA" and "carrier=AA" in alerts[0].message


def test_quality_threshold_or_calculator_flag() -> None:
    rows = [
        result("data_quality", "missing_rate", "temp", 0.08, alert=False, threshold=0.1),
        result("data_quality", "missing_rate", "wind", 0.02, alert=True),
        result("data_quality", "unseen_category_rate", "carrier", None, alert=True),
    ]
    flagged = QualityRule(name="q").evaluate("flights", rows, [], NOW)
    assert [a.subject for a in flagged] == ["quality:missing_rate:wind"]
    over = QualityRule(name="q", metric="missing_rate", threshold=0.05)
    alerts = over.evaluate("flights", rows, [], NOW)
    assert [(a.subject, a.value, a.threshold) for a in alerts] == [
        ("quality:missing_rate:temp", 0.08, 0.05)
    ]
    only = QualityRule(name="q", column="wind", threshold=0.0)
    assert len(only.evaluate("flights", rows, [], NOW)) == 1


def test_performance_floor_realized_estimated_and_band() -> None:
    rows = [
        result(
            "realized_performance",
            "accuracy",
            None,
            0.71,
            lower=0.75,
            upper=0.85,
            alert=True,
            threshold=0.9,
        ),
        result("estimated_performance", "accuracy", None, 0.79, lower=0.75, upper=0.85),
        result("realized_performance", "roc_auc", None, None),
        result("realized_performance", "mae", None, 9.0),
    ]
    floor = PerformanceRule(name="p", metric="accuracy", floor=0.8)
    assert {a.subject for a in floor.evaluate("flights", rows, [], NOW)} == {
        "performance:realized:accuracy", "performance:estimated:accuracy",
    }  # fmt: skip
    est = PerformanceRule(name="p", metric="accuracy", floor=0.8, source="estimated")
    [alert] = est.evaluate("flights", rows, [], NOW)
    assert alert.value == 0.79 and alert.threshold == 0.8 and "below 0.8" in alert.message
    band = PerformanceRule(name="p", metric="accuracy")
    [flagged] = band.evaluate("flights", rows, [], NOW)
    assert "0.71 [0.75, 0.85] is significantly worse than the reference's 0.9" in flagged.message
    assert (
        PerformanceRule(name="p", metric="roc_auc", floor=0.9).evaluate(
            "flights",
            rows,
            [],
            NOW,
        )
        == []
    )  # an undefined value never fires
    ceiling = PerformanceRule(name="p", metric="mae", ceiling=5.0)
    assert len(ceiling.evaluate("flights", rows, [], NOW)) == 1


def test_multivariate_and_generic_metric_rules() -> None:
    rows = [
        result("multivariate_drift", "pca_reconstruction_error", None, 2.5, upper=2.0, alert=True),
        result("serving", "error_rate", None, 0.04),
        result("serving", "latency_p99_ms", None, 120.0),
    ]
    [mv] = MultivariateRule(name="m").evaluate("flights", rows, [], NOW)
    assert mv.threshold == 2.0 and mv.value == 2.5
    assert MultivariateRule(name="m", threshold=3.0).evaluate("flights", rows, [], NOW) == []
    err = MetricRule(name="e", metric="error_rate", above=0.01, severity="critical")
    [e] = err.evaluate("flights", rows, [], NOW)
    assert e.severity == "critical" and "above 0.01" in e.message
    slow = MetricRule(name="l", metric="latency_p99_ms", calculator="serving", above=200.0)
    assert slow.evaluate("flights", rows, [], NOW) == []
    low = MetricRule(name="l", metric="latency_p99_ms", below=150.0)
    assert "below 150" in low.evaluate("flights", rows, [], NOW)[0].message


def test_rollback_events_once_each_within_lookback() -> None:
    readings = [{"guard": "errors", "verdict": "rollback", "effect": 0.05, "ci": [0.01, 0.09]}]
    at = NOW - timedelta(hours=2)
    events = [
        event("rollout.rollback", id=7, at=at, details={"rollout": "r1", "readings": readings}),
        event(
            "rollout.rollback", id=8, at=at, details={"rollout": "r2", "aborted": True}, reason=None
        ),
        event("alias.rollback", id=9, at=at, from_version=3, to_version=2),
        event("rollout.step", id=10, at=at),
        event("rollout.rollback", id=11, at=NOW - timedelta(days=2)),
        event("rollout.rollback", id=12, at=at, model="other"),
    ]
    alerts = RollbackRule(name="rb").evaluate("flights", [], events, NOW)
    assert [a.subject for a in alerts] == ["event:7", "event:8", "event:9"]
    assert all(a.once and a.severity == "critical" for a in alerts)
    assert "rollout r1 rolled back: guard errors" in alerts[0].message
    assert alerts[0].details["readings"][0]["guard"] == "errors"
    assert "rollout r2 aborted" in alerts[1].message
    assert "from v3 to v2" in alerts[2].message


def test_evaluate_runs_every_rule_and_latest_windows_picks_the_newest() -> None:
    old = _drift("temp", True, start=T0 - timedelta(days=1))
    new = _drift("temp", False)
    hourly = _drift("temp", True, window="1h", start=T0 - timedelta(days=3))
    rows = latest_windows([old, new, hourly])
    assert rows == [new, hourly]
    alerts = evaluate([DriftRule(name="t", column="temp")], "flights", rows, now=NOW)
    assert [a.details["window"] for a in alerts] == ["1h"]
    assert latest_windows([]) == []


def _alert(subject: str = "drift:temp", once: bool = False) -> Alert:
    return Alert(
        rule="t", severity="warning", model="flights", subject=subject, message="m", at=T0,
        cooldown=timedelta(hours=1), once=once,
    )  # fmt: skip


def test_dedup_and_cooldown() -> None:
    a = _alert()
    assert a.key == "t|flights|drift:temp"
    [fresh] = decide([a], {}, NOW)
    assert not fresh.suppressed
    [cool] = decide([a], {a.key: NOW - timedelta(minutes=30)}, NOW)
    assert cool.suppressed and "cooldown" in (cool.reason or "")
    [after] = decide([a], {a.key: NOW - timedelta(hours=1)}, NOW)
    assert not after.suppressed  # the cooldown has passed exactly
    twice = decide([a, a, _alert("drift:wind")], {}, NOW)
    assert [d.suppressed for d in twice] == [False, True, False]
    assert twice[1].reason == "duplicate in this check"
    once = _alert("event:7", once=True)
    [again] = decide([once], {once.key: NOW - timedelta(days=20)}, NOW)
    assert again.suppressed and "already notified" in (again.reason or "")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=20),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 180), max_size=3),
)
def test_dedup_properties(subjects: list[str], minutes_ago: dict[str, int]) -> None:
    alerts = [_alert(s) for s in subjects]
    sent = {_alert(s).key: NOW - timedelta(minutes=m) for s, m in minutes_ago.items()}
    decisions = decide(alerts, sent, NOW)
    notified = [d.alert.key for d in decisions if not d.suppressed]
    assert len(notified) == len(set(notified))  # never twice in one check
    for key in notified:
        assert key not in sent or NOW - sent[key] >= timedelta(hours=1)
    assert len(decisions) == len(alerts)
