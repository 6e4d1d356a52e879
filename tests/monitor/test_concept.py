"""Concept drift on a real label stream: a registered model, its prediction log and label log
on disk, ``Monitor.run`` storing results in SQLite (and PostgreSQL), late labels, resumption
across runs, the alert rule, the loop trigger and the report. The stream is
:mod:`tests.monitor.concept_stream`'s: the concept changes at prediction 2,000 of 3,000.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from livemodel.alerts.check import check_model
from livemodel.alerts.config import load_alerts_config
from livemodel.alerts.store import AlertStore
from livemodel.loop.policy import ConceptDriftTrigger, Triggers, parse_loop
from livemodel.loop.triggers import evaluate
from livemodel.monitor.concept import (
    CONCEPT,
    SEGMENT,
    ConceptDrift,
    concept_rows,
    detect,
    error_stream,
    read_labelled,
)
from livemodel.monitor.conceptstore import concept_view
from livemodel.monitor.reference import MonitorReference
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.report.build import ReportOptions, build_report
from livemodel.report.render import render_html
from livemodel.stats.detectors import ADWIN, PageHinkley
from livemodel.store.logreader import LogReader

from .concept_stream import CHANGE, T0, N, fit_model, label, log_stream, register


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return fit_model()


@pytest.fixture
def setup(registry: Registry, model: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    register(registry, model)
    root = tmp_path / "logs"
    ids, truth = log_stream(root, model)
    store = ResultStore(registry.metadata.db)
    monitor = Monitor(registry, LogReader(root), store)
    yield {"registry": registry, "root": root, "ids": ids, "truth": truth, "store": store,
           "monitor": monitor}  # fmt: skip


def _run(monitor: Monitor) -> Any:
    return monitor.run("m", since=T0, until=T0 + timedelta(days=3), window="1d")


def _stored(store: ResultStore, order: str, detector: str = "adwin") -> list[dict[str, Any]]:
    view = concept_view(store.query("m", calculator=CONCEPT))
    return [d for d in view["detections"] if d["order"] == order and d["detector"] == detector]


def test_a_change_is_detected_stored_and_located_in_both_orders(setup: dict[str, Any]) -> None:
    """Labels arrive in prediction order: both orders see the same stream and the same
    detections; the change's start is found within a few dozen rows of the truth."""
    label(setup["root"], setup["ids"], setup["truth"], range(N))
    run = _run(setup["monitor"])
    assert run.concept is not None and run.concept.rows == {"arrival": N, "prediction_time": N}
    by = {(d.detector, d.order): d for d in run.concept.detections}
    assert set(by) == {(det, order) for det in ("page_hinkley", "adwin")
                       for order in ("arrival", "prediction_time")}  # fmt: skip
    for d in by.values():
        assert abs(d.start.index - CHANGE) <= 40
        assert CHANGE < d.detected.index < CHANGE + 400
        assert d.start.prediction_id == setup["ids"][d.start.index]
        assert d.start.time == T0 + timedelta(minutes=d.start.index)
        assert d.error_before is not None and d.error_before < 0.15 and d.error_after > 0.35
    store: ResultStore = setup["store"]
    for order in ("arrival", "prediction_time"):
        (stored,) = _stored(store, order)
        assert stored["start"]["prediction_id"] == by[("adwin", order)].start.prediction_id
        assert stored["detected"]["index"] == by[("adwin", order)].detected.index
    summaries = store.query("m", calculator=CONCEPT, metric="adwin_detections")
    assert [(r.value, r.alert, r.n, r.segment) for r in summaries] == [(1.0, True, N, SEGMENT)] * 2
    # Every stored number of this run is counted, concept drift included.
    assert len(store.query("m")) == run.rows_saved


def test_detections_resume_across_runs_and_follow_late_labels(setup: dict[str, Any]) -> None:
    """Run 1: labels of rows 1000..2999 only (the first 1000 are late). Run 2: the late
    labels arrive. Run 3: nothing new. Each run replays the whole stream, so prediction-time
    order re-locates the change once the past fills in; arrival order keeps its detection
    and sees the late labels (the old concept again) at its end."""
    root, ids, truth, store = setup["root"], setup["ids"], setup["truth"], setup["store"]
    monitor: Monitor = setup["monitor"]
    label(root, ids, truth, range(1000, N))
    first = _run(monitor).concept
    (early,) = _stored(store, "prediction_time")
    assert abs(early["start"]["index"] - (CHANGE - 1000)) <= 40  # the stream begins at 1000
    label(root, ids, truth, range(1000))
    second = _run(monitor).concept
    (late,) = _stored(store, "prediction_time")
    assert abs(late["start"]["index"] - CHANGE) <= 40  # 1000 rows joined before the change
    assert late["start"]["prediction_id"] == early["start"]["prediction_id"]
    arrival = _stored(store, "arrival")
    assert arrival[-1]["start"]["prediction_id"] == early["start"]["prediction_id"]
    assert second.rows == {"arrival": N, "prediction_time": N} != first.rows
    # The summaries moved to the streams' new last rows: the old ones are gone.
    assert len(store.query("m", calculator=CONCEPT, metric="adwin_detections")) == 2

    def keys() -> list[tuple[str, datetime, str]]:
        return sorted((r.window, r.start, r.metric) for r in store.query("m", calculator=CONCEPT))

    rows_before = keys()
    third = _run(monitor).concept
    assert keys() == rows_before  # a deterministic replay: the same results, no duplicates
    assert [d.to_dict() for d in third.detections] == [d.to_dict() for d in second.detections]


def test_no_labels_and_no_change_store_no_detection(setup: dict[str, Any]) -> None:
    run = _run(setup["monitor"])
    assert run.concept is not None and run.concept.rows == {"arrival": 0, "prediction_time": 0}
    assert setup["store"].query("m", calculator=CONCEPT) == []
    label(setup["root"], setup["ids"], setup["truth"], range(CHANGE))  # the old concept only
    run = _run(setup["monitor"])
    assert run.concept is not None and run.concept.detections == ()
    rows = setup["store"].query("m", calculator=CONCEPT)
    assert {r.metric for r in rows} == {"adwin_detections", "page_hinkley_detections"}
    assert all(r.value == 0.0 and not r.alert and r.n == CHANGE for r in rows)


def test_alert_rule_fires_once_per_detection(setup: dict[str, Any]) -> None:
    label(setup["root"], setup["ids"], setup["truth"], range(N))
    _run(setup["monitor"])
    registry: Registry = setup["registry"]
    config = load_alerts_config(
        {
            "alerts": {
                "rules": [{"kind": "concept_drift", "detector": "adwin", "order": "arrival"}],
                "notifiers": [{"kind": "log"}],
            }
        }
    )
    store = AlertStore(registry.metadata.db)
    kwargs = {"registry": registry, "results": setup["store"], "store": store, "config": config}
    now = datetime.now(UTC)
    (outcome,) = check_model("m", now=now, **kwargs)
    assert outcome.alert.rule == "concept_drift.adwin.arrival" and outcome.state == "sent"
    (stored,) = _stored(setup["store"], "arrival")
    assert stored["start"]["prediction_id"] in outcome.alert.message
    assert outcome.alert.value is not None and outcome.alert.value > 0.35
    (again,) = check_model("m", now=now + timedelta(days=2), **kwargs)
    assert again.state == "suppressed"  # a detection is announced once
    defaults = {**kwargs, "config": load_alerts_config({})}  # no [alerts]: the defaults
    fired = [o for o in check_model("m", now=now, **defaults) if o.alert.rule == "concept_drift"]
    assert len(fired) == 1 and fired[0].alert.subject == outcome.alert.subject


def test_loop_trigger_fires_on_a_detection(setup: dict[str, Any]) -> None:
    table = {"train": "pkg.train:fit", "triggers": {"concept_drift": {"detectors": ["adwin"]}}}
    policy = parse_loop({"models": {"m": table}})
    triggers = policy.models["m"].triggers
    assert triggers.concept_drift == ConceptDriftTrigger(detectors=("adwin",))
    now = datetime.now(UTC)
    kwargs = {"now": now, "last_retrain": None, "baseline": now, "cooldown": timedelta(days=1)}
    label(setup["root"], setup["ids"], setup["truth"], range(CHANGE))
    calm = _run(setup["monitor"]).concept
    assert not evaluate(triggers, None, concept=concept_rows(calm), **kwargs).retrain
    label(setup["root"], setup["ids"], setup["truth"], range(CHANGE, N))
    drifted = _run(setup["monitor"]).concept
    decision = evaluate(triggers, None, concept=concept_rows(drifted), **kwargs)
    assert decision.retrain and decision.kinds == ("concept_drift",)
    (hit,) = decision.hits
    assert hit.details["detector"] == "adwin" and hit.details["detections"] == 1
    strict = Triggers(concept_drift=ConceptDriftTrigger(min_detections=2, order="arrival"))
    assert not evaluate(strict, None, concept=concept_rows(drifted), **kwargs).retrain


def test_report_shows_the_detections(setup: dict[str, Any]) -> None:
    label(setup["root"], setup["ids"], setup["truth"], range(N))
    _run(setup["monitor"])
    data = build_report(
        setup["registry"], LogReader(setup["root"]), setup["store"], "m",
        since=T0, until=T0 + timedelta(days=3), options=ReportOptions(explain=False),
    ).to_dict()  # fmt: skip
    concept = data["concept_drift"]
    assert [o["order"] for o in concept["orders"]] == ["arrival", "prediction_time"]
    assert len(concept["detections"]) == 4
    html = render_html(data)
    assert 'id="concept-drift"' in html
    assert concept["detections"][0]["start"]["prediction_id"] in html


def test_regression_loss_stream_is_scaled_by_the_reference(registry: Registry) -> None:
    """A regression's absolute errors are divided by their spread on the reference, so the
    detectors' unit-variance defaults hold: a doubling of the noise is found where it began
    (later detections may follow: the noisier regime has four times the variance)."""
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"a": rng.normal(size=1500)})
    y = 3 * x["a"] + rng.normal(size=1500)
    registry.register("r", LinearRegression().fit(x, y), x.assign(y=y), target="y", seed=0)
    stored = registry.reference(ModelRef("r", version=1))
    reference = MonitorReference.from_registry(
        registry.get("r").signature, stored.profile, stored.sample
    )
    n = 3000
    noise = rng.normal(size=n) * np.where(np.arange(n) < CHANGE, 1.0, 2.0)
    frame = pd.DataFrame({
        "prediction_id": [f"p{i:05d}" for i in range(n)],
        "time": pd.date_range(T0, periods=n, freq="min"),
        "prediction": np.zeros(n), "label": noise,
        "label_time": pd.date_range(T0, periods=n, freq="min"),
    })  # fmt: skip
    stream = error_stream(frame, reference, "prediction_time")
    assert stream.kind == "absolute error / scale"
    assert 0.5 < stream.scale < 0.75  # the sd of |N(0, 1)| is 0.60
    found = detect(stream, PageHinkley())[0]
    assert abs(found.start.index - CHANGE) <= 40 and found.detected.index > CHANGE
    assert found.error_before is not None and found.error_before < 1.0
    assert found.error_after > 1.3  # the mean |error| of N(0, 2**2) is 1.6


def test_the_detectors_run_is_river_s(setup: dict[str, Any]) -> None:
    """The positions ``detect`` reports are those of River's own detectors, fed the stream."""
    from river import drift

    label(setup["root"], setup["ids"], setup["truth"], range(N))
    _run(setup["monitor"])
    run = ConceptDrift(detectors=[ADWIN(), PageHinkley(delta=0.05, threshold=30)])
    registry: Registry = setup["registry"]
    version = registry.get(ModelRef("m", version=1))
    stored = registry.reference(ModelRef("m", version=1))
    reference = MonitorReference.from_registry(version.signature, stored.profile, stored.sample)
    result = run.run(LogReader(setup["root"]), "m", 1, reference)
    labelled = read_labelled(LogReader(setup["root"]), "m", 1, "binary")
    frame_stream = error_stream(labelled, reference, "arrival")
    for river_detector, name in ((drift.ADWIN(), "adwin"),
                                 (drift.PageHinkley(delta=0.05, threshold=30, alpha=1.0),
                                  "page_hinkley")):  # fmt: skip
        expected = []
        for i, x in enumerate(frame_stream.error.tolist()):
            river_detector.update(x)
            if river_detector.drift_detected:
                expected.append(i)
        got = [d.detected.index for d in result.detections
               if d.detector == name and d.order == "arrival"]  # fmt: skip
        assert got == expected and got


@pytest.mark.slow  # a real process loading the model stack
def test_monitor_run_as_a_process_stores_and_prints_the_detections(tmp_path: Path) -> None:
    """``livemodel monitor run`` (a real process on a real home) finds the change, prints
    where it began and stores it; ``monitor results --calculator concept_drift`` lists it."""
    from livemodel.config import Settings
    from livemodel.wiring import connect

    from .test_cli import documents, run

    home = tmp_path / "home"
    settings = Settings.at(home, actor="test")
    registry = connect(settings)
    model = fit_model()
    register(registry, model)
    ids, truth = log_stream(settings.log_dir, model)
    label(settings.log_dir, ids, truth, range(N))
    registry.metadata.db.close()
    since, until = T0.isoformat(), (T0 + timedelta(days=3)).isoformat()
    shown = run(home, "monitor", "run", "m", "--since", since, "--until", until)
    assert shown.returncode == 0, shown.stderr
    assert "concept drift: 4 detection(s)" in shown.stdout
    assert "adwin, arrival order: began at row " in shown.stdout
    listed = run(home, "monitor", "results", "m", "--calculator", CONCEPT, "--json")
    assert listed.returncode == 0, listed.stderr
    (rows,) = documents(listed.stdout)
    detections = [r for r in rows if not r["metric"].endswith("_detections")]
    orders = ("arrival", "prediction_time")
    expected = {(d, f"concept:{o}") for d in ("adwin", "page_hinkley") for o in orders}
    assert {(r["metric"], r["window"]) for r in detections} == expected
    for r in detections:
        assert abs(r["details"]["start"]["index"] - CHANGE) <= 40
        assert r["details"]["start"]["prediction_id"] == ids[r["details"]["start"]["index"]]
        assert f"began at row {r['details']['start']['index']} " in shown.stdout
