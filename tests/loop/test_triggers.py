"""Triggers from hand-built monitoring results (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from livemodel.loop.policy import parse_loop
from livemodel.loop.triggers import evaluate, latest_window
from livemodel.monitor.results import ALL, MetricResult, WindowResult

NOW = datetime(2026, 3, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def triggers(**table: Any) -> Any:
    return parse_loop({"models": {"m": {"train": "a:b", "triggers": table}}}).models["m"].triggers


def window(*results: MetricResult, start: datetime = NOW - DAY, rows: int = 500,
           segment: str = ALL, end: datetime | None = None) -> WindowResult:  # fmt: skip
    return WindowResult("m", 1, "1d", start, end or start + DAY, segment, rows, rows // 2, results)


def drift(column: str, drifted: bool) -> MetricResult:
    return MetricResult("data_drift", "drift", column, float(drifted), alert=drifted, n=500)


def decide(spec: Any, w: WindowResult | None, **kw: Any) -> Any:
    args: dict[str, Any] = {"now": NOW, "last_retrain": None, "baseline": None,
                            "cooldown": timedelta(days=7)} | kw  # fmt: skip
    return evaluate(spec, w, **args)


def test_drift_fires_on_k_features_only() -> None:
    w = window(drift("a", True), drift("b", True), drift("c", False),
               MetricResult("data_drift", "ks", "a", 0.4, alert=True))  # fmt: skip
    assert decide(triggers(drift={"min_features": 2}), w).retrain
    assert not decide(triggers(drift={"min_features": 3}), w).retrain
    hit = decide(triggers(drift={"min_features": 2}), w).hits[0]
    assert hit.kind == "drift" and hit.details["columns"] == ["a", "b"]
    restricted = triggers(drift={"min_features": 2, "features": ["a", "c"]})
    assert not decide(restricted, w).retrain


def test_label_and_output_drift_do_not_count_as_feature_drift() -> None:
    w = window(MetricResult("label_drift", "drift", "y", 1.0, alert=True),
               MetricResult("output_drift", "drift", "prediction", 1.0, alert=True))  # fmt: skip
    assert not decide(triggers(drift={"min_features": 1}), w).retrain


def test_multivariate_fires_on_its_alert() -> None:
    quiet = window(MetricResult("multivariate_drift", "pca_reconstruction_error", None, 1.0,
                                lower=0.9, upper=1.1))  # fmt: skip
    loud = window(MetricResult("multivariate_drift", "pca_reconstruction_error", None, 1.4,
                               lower=0.9, upper=1.1, alert=True, n=500))  # fmt: skip
    assert not decide(triggers(multivariate=True), quiet).retrain
    assert decide(triggers(multivariate=True), loud).hits[0].kind == "multivariate"
    assert not decide(triggers(multivariate=False), loud).retrain


@pytest.mark.parametrize(
    ("spec", "calculator", "metric", "value", "reference", "fires"),
    [
        ({"metric": "roc_auc", "floor": 0.7}, "realized_performance", "roc_auc", 0.69, 0.8, True),
        ({"metric": "roc_auc", "floor": 0.7}, "realized_performance", "roc_auc", 0.71, 0.8, False),
        ({"metric": "roc_auc", "max_drop": 0.05}, "estimated_performance", "roc_auc", 0.74, 0.8,
         True),
        ({"metric": "roc_auc", "max_drop": 0.05}, "estimated_performance", "roc_auc", 0.76, 0.8,
         False),
        ({"metric": "roc_auc", "max_drop": 0.05, "source": "realized"}, "estimated_performance",
         "roc_auc", 0.5, 0.8, False),
        ({"metric": "accuracy", "floor": 0.9}, "realized_performance", "roc_auc", 0.5, 0.8, False),
        # error metrics: the floor is a ceiling, a drop is an increase
        ({"metric": "mae", "floor": 3.0}, "realized_performance", "mae", 3.5, 2.0, True),
        ({"metric": "mae", "floor": 3.0}, "realized_performance", "mae", 2.5, 2.0, False),
        ({"metric": "rmse", "max_drop": 0.5}, "estimated_performance", "rmse", 2.6, 2.0, True),
        ({"metric": "rmse", "max_drop": 0.5}, "estimated_performance", "rmse", 1.0, 2.0, False),
    ],
)  # fmt: skip
def test_performance_floor_and_drop(
    spec: dict[str, Any], calculator: str, metric: str, *, value: float, reference: float,
    fires: bool,
) -> None:  # fmt: skip
    w = window(MetricResult(calculator, metric, None, value, threshold=reference, n=400))
    decision = decide(triggers(performance=spec), w)
    assert decision.retrain is fires
    if fires:
        hit = decision.hits[0]
        assert hit.kind == "performance" and hit.details["value"] == value


def test_performance_ignores_small_and_undefined_results() -> None:
    spec = triggers(performance={"metric": "accuracy", "floor": 0.9, "min_rows": 100})
    small = window(MetricResult("realized_performance", "accuracy", None, 0.5, n=99))
    undefined = window(MetricResult("realized_performance", "accuracy", None, None, n=500,
                                    reason="no labels"))  # fmt: skip
    no_reference = triggers(performance={"metric": "accuracy", "max_drop": 0.01})
    unanchored = window(MetricResult("realized_performance", "accuracy", None, 0.1, n=500))
    assert not decide(spec, small).retrain
    assert not decide(spec, undefined).retrain
    assert not decide(no_reference, unanchored).retrain


def test_quality_fires_above_its_limits() -> None:
    w = window(
        MetricResult("data_quality", "missing_rate", "temp", 0.2, n=500),
        MetricResult("data_quality", "missing_rate", "wind", 0.01, n=500),
        MetricResult("data_quality", "unseen_category_rate", "carrier", 0.3, n=500),
        MetricResult("data_quality", "missing_rate", "visib", None, n=0, reason="empty"),
    )
    hits = decide(triggers(quality={"max_missing_rate": 0.1}), w).hits
    assert [(h.details["column"], h.details["value"]) for h in hits] == [("temp", 0.2)]
    both = decide(triggers(quality={"max_missing_rate": 0.1, "max_unseen_rate": 0.25}), w)
    assert {h.details["column"] for h in both.hits} == {"temp", "carrier"}
    only_wind = triggers(quality={"max_missing_rate": 0.1, "columns": ["wind"]})
    assert not decide(only_wind, w).retrain


def test_schedule_counts_from_the_last_retrain_or_the_baseline() -> None:
    spec = triggers(schedule="30d")
    assert decide(spec, None, baseline=NOW - 31 * DAY).retrain
    assert not decide(spec, None, baseline=NOW - 29 * DAY).retrain
    assert not decide(spec, None, baseline=NOW - 60 * DAY, last_retrain=NOW - 10 * DAY).retrain
    assert not decide(spec, None).retrain  # nothing to count from
    assert decide(spec, None, last_retrain=NOW - 30 * DAY).retrain


def test_cooldown_holds_back_a_fired_trigger() -> None:
    w = window(drift("a", True))
    spec = triggers(drift={"min_features": 1})
    held = decide(spec, w, last_retrain=NOW - 2 * DAY, cooldown=timedelta(days=3))
    assert not held.retrain and held.hits and held.blocked is not None
    assert held.blocked.startswith("cooldown until 2026-03-10")
    assert decide(spec, w, last_retrain=NOW - 3 * DAY, cooldown=timedelta(days=3)).retrain


def test_nothing_configured_or_no_window_never_fires() -> None:
    w = window(drift("a", True))
    assert not decide(triggers(), w).retrain
    assert decide(triggers(drift={"min_features": 1}), None).hits == ()


def test_latest_window_is_complete_whole_and_big_enough() -> None:
    old = window(start=NOW - 3 * DAY)
    last = window(start=NOW - DAY)
    partial = window(start=NOW - DAY / 2)  # ends after now
    small = window(start=NOW - 2 * DAY, rows=10)
    segment = window(start=NOW - DAY, segment="carrier=AA")
    assert latest_window([old, last, partial, small, segment], NOW, min_rows=100) is last
    assert latest_window([old, small], NOW, min_rows=100) is old
    assert latest_window([small, partial], NOW, min_rows=100) is None
    assert latest_window([], NOW, min_rows=1) is None


def test_count_windows_are_complete_when_full() -> None:
    full = window(start=NOW - 2 * DAY, rows=1000, end=NOW - DAY)
    filling = window(start=NOW - DAY, rows=400, end=NOW + DAY)
    assert latest_window([full, filling], NOW, min_rows=100, rows_per_window=1000) is full


def test_decision_is_json_safe() -> None:
    import json

    w = window(drift("a", True), MetricResult("realized_performance", "roc_auc", None, 0.6,
                                              threshold=0.8, n=500))  # fmt: skip
    d = decide(triggers(drift={"min_features": 1},
                        performance={"metric": "roc_auc", "floor": 0.7}), w)  # fmt: skip
    assert d.kinds == ("drift", "performance")
    assert json.loads(json.dumps(d.to_dict()))["hits"][1]["details"]["reference"] == 0.8
