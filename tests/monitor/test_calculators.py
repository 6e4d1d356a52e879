"""Profile calculators: drift equals the stats layer's, quality rates equal the schema
layer's ``quality_summary`` on the same rows, and every bad input gives a defined result."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from livemodel.errors import InvalidInputError
from livemodel.monitor import compare
from livemodel.monitor.calculators import (
    DataDriftCalculator,
    DataQualityCalculator,
    OutputDriftCalculator,
    QualityConfig,
)
from livemodel.monitor.performance import (
    EstimatedPerformance,
    MultivariateDrift,
    RealizedPerformance,
)
from livemodel.monitor.reference import MonitorReference, canonical_frame
from livemodel.monitor.results import ALL, MetricResult
from livemodel.monitor.summary import ChunkPlan, WindowSummary, row_keys, summarize_chunk
from livemodel.schema.quality import quality_summary
from livemodel.stats.drift import DriftConfig, compare_profiles


def data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1 / (1 + np.exp(-2 * x))
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 10, n),
            "const": np.full(n, 3.0),
            "c": rng.choice(["a", "b", "c"], n).astype(object),
            "y": (rng.random(n) < p).astype(int),
            "pred": (p >= 0.5).astype(int),
            "p1": p,
        }
    )


@pytest.fixture(scope="module")
def reference() -> MonitorReference:
    return MonitorReference.from_frame(
        data(2000, 0), target="y", prediction="pred", probability="p1"
    )


def summary(reference: MonitorReference, frame: pd.DataFrame) -> WindowSummary:
    canonical = canonical_frame(
        frame,
        target="y" if "y" in frame else None,
        prediction="pred" if "pred" in frame else None,
        probability="p1" if "p1" in frame else None,
        classes=reference.classes,
    )
    plan = ChunkPlan.of(reference)
    return summarize_chunk(plan, canonical, row_keys(np.arange(len(canonical))))[ALL]


def assert_defined(results: tuple[MetricResult, ...]) -> None:
    """Every number is finite or None with a reason, and everything is JSON-safe."""
    for r in results:
        for v in (r.value, r.lower, r.upper, r.threshold):
            assert v is None or math.isfinite(v)
        if r.value is None:
            assert r.reason, r
    json.dumps([r.to_dict() for r in results], allow_nan=False)


def test_drift_rows_are_the_stats_layers_numbers(reference: MonitorReference) -> None:
    window = summary(reference, data(1000, 1, shift=0.5))
    rows = DataDriftCalculator().fit(reference).calculate(window)
    report = compare_profiles(reference.profile, window.features, DriftConfig())
    methods = {(r.column, r.metric): r for r in rows if r.metric != "drift"}
    for expected in report.results:
        got = methods[(expected.column, expected.method)]
        assert got.value == expected.statistic or (got.value is None and expected.statistic is None)
        assert got.alert == expected.drifted
        assert got.details["p_value"] == expected.p_value
    verdicts = {r.column: r for r in rows if r.metric == "drift"}
    assert verdicts["x"].alert and verdicts["x"].value == 1.0
    assert not verdicts["k"].alert and verdicts["k"].value == 0.0
    assert verdicts["y"].calculator == "label_drift"  # the target's drift is label drift
    assert verdicts["const"].value == 0.0  # PSI and JS are defined on a constant column
    spread = methods[("const", "wasserstein")]
    assert spread.value is None and spread.reason == "reference has no spread"


def test_output_drift_follows_the_predictions(reference: MonitorReference) -> None:
    same = OutputDriftCalculator().fit(reference).calculate(summary(reference, data(1000, 2)))
    moved = (
        OutputDriftCalculator()
        .fit(reference)
        .calculate(summary(reference, data(1000, 2, shift=1.0)))
    )
    verdict = {r.column: r.alert for r in moved if r.metric == "drift"}
    assert verdict == {"prediction": True, "proba_1": True}
    assert not any(r.alert for r in same if r.metric == "drift")


def test_quality_rates_equal_quality_summary(reference: MonitorReference) -> None:
    current = data(500, 3).astype({"x": float, "c": object})
    current.loc[:40, "x"] = np.nan
    current.loc[50:69, "x"] = 99.0  # above the reference maximum
    current.loc[70:74, "x"] = -99.0
    current.loc[80:99, "c"] = "zzz"  # a category training never saw
    current.loc[100:104, "c"] = None
    rows = DataQualityCalculator().fit(reference).calculate(summary(reference, current))
    got = {(r.column, r.metric): r.value for r in rows}
    assert reference.signature is not None
    expected = quality_summary(reference.signature, current[["x", "k", "const", "c"]])
    for col in expected.columns:
        assert got[(col.name, "missing_rate")] == pytest.approx(col.missing_rate)
        if (col.name, "out_of_range_rate") in got:
            assert got[(col.name, "out_of_range_rate")] == pytest.approx(col.out_of_range_rate)
        if (col.name, "unseen_category_rate") in got:
            assert got[(col.name, "unseen_category_rate")] == pytest.approx(
                col.unseen_category_rate
            )
    alerts = {(r.column, r.metric) for r in rows if r.alert}
    assert alerts == {("x", "missing_rate"), ("x", "out_of_range_rate"),
                      ("c", "missing_rate"), ("c", "unseen_category_rate")}  # fmt: skip
    assert_defined(rows)


def test_quality_config_is_validated() -> None:
    for bad in (-1.0, float("nan"), True, "1"):
        with pytest.raises(InvalidInputError):
            QualityConfig(out_of_range_threshold=bad)  # type: ignore[arg-type]


def test_unfitted_calculators_raise() -> None:
    empty = object()
    for calc in (DataDriftCalculator(), OutputDriftCalculator(), DataQualityCalculator(),
                 RealizedPerformance(), EstimatedPerformance(), MultivariateDrift()):  # fmt: skip
        with pytest.raises(InvalidInputError, match="not fitted"):
            calc.calculate(empty)  # type: ignore[arg-type]


def test_fit_returns_self(reference: MonitorReference) -> None:
    calc = DataDriftCalculator()
    assert calc.fit(reference) is calc
    assert not hasattr(DataDriftCalculator(), "reference_")  # __init__ stores params only


# -- bad input: each gives a defined result, never a crash or a NaN --------------------------
def test_empty_window(reference: MonitorReference) -> None:
    report = compare(data(2000, 0), data(5, 1).iloc[:0], target="y", prediction="pred",
                     probability="p1")  # fmt: skip
    assert report.n_rows == 0
    assert report.drifted_columns == ()
    assert_defined(report.results)
    for r in report.results:
        if r.calculator in ("realized_performance", "estimated_performance", "multivariate_drift"):
            assert r.value is None and r.reason


def test_all_null_column() -> None:
    current = data(300, 4).assign(x=np.nan)
    report = compare(data(2000, 0), current, target="y", prediction="pred", probability="p1")
    assert "x" not in report.drifted_columns
    drift = [r for r in report.results if r.column == "x" and r.calculator == "data_drift"]
    assert all(r.value is None and "no non-missing" in (r.reason or "") for r in drift)
    assert report.quality["x"]["missing_rate"] == 1.0
    assert_defined(report.results)


def test_column_absent_from_the_window_and_column_absent_from_the_reference() -> None:
    current = data(300, 5).drop(columns=["k"]).assign(new_feature=1.0)
    report = compare(data(2000, 0), current, target="y", prediction="pred", probability="p1")
    missing = next(r for r in report.results if r.column == "k" and r.metric == "missing_rate")
    assert missing.value == 1.0 and missing.alert and "absent" in (missing.reason or "")
    unexpected = [r for r in report.results if r.metric == "unexpected_column"]
    assert [(r.column, r.alert, r.value) for r in unexpected] == [("new_feature", True, None)]
    assert_defined(report.results)


def test_constant_columns() -> None:
    ref = data(2000, 0)
    same = compare(ref, data(500, 6), target="y", prediction="pred", probability="p1")
    moved = compare(ref, data(500, 6).assign(const=4.0), target="y", prediction="pred",
                    probability="p1")  # fmt: skip
    assert "const" not in same.drifted_columns
    assert same.quality["const"]["out_of_range_rate"] == 0.0
    assert moved.quality["const"]["out_of_range_rate"] == 1.0
    wasserstein = next(
        r for r in moved.results if r.column == "const" and r.metric == "wasserstein"
    )
    assert wasserstein.value is None and wasserstein.reason == "reference has no spread"
    assert_defined(moved.results)


def test_labels_of_the_wrong_type() -> None:
    current = data(400, 7)
    current["y"] = current["y"].astype(object)
    current.loc[:19, "y"] = "late"  # a label no class matches
    report = compare(data(2000, 0), current, target="y", prediction="pred", probability="p1")
    bad = report.quality["y"]["label_type_violation_rate"]
    assert bad == pytest.approx(20 / 400)
    accuracy = report.performance["accuracy"]
    assert accuracy.n == 380  # computed on the labels that match a class
    valid = current.iloc[20:]
    assert accuracy.value == pytest.approx(float((valid["y"].astype(int) == valid["pred"]).mean()))
    assert_defined(report.results)


def test_window_without_labels_is_estimated_only() -> None:
    current = data(800, 8, shift=0.3).drop(columns=["y"])
    report = compare(data(2000, 0), current, target="y", prediction="pred", probability="p1")
    assert report.n_labelled == 0
    perf = report.performance
    assert set(perf) == {"accuracy", "roc_auc", "precision", "recall", "f1"}
    assert all(r.calculator == "estimated_performance" for r in perf.values())
    assert all(r.value is not None and r.lower is not None and r.upper is not None
               for r in perf.values())  # fmt: skip
    assert_defined(report.results)


def test_estimating_needs_a_labelled_reference() -> None:
    ref = data(2000, 0).drop(columns=["y"])
    with pytest.raises(InvalidInputError, match="reference has no target column"):
        compare(ref, data(100, 1).drop(columns=["y"]), target="y", prediction="pred",
                probability="p1")  # fmt: skip


def test_hostile_numbers() -> None:
    current = data(400, 9)
    current.loc[:9, "x"] = np.inf
    current.loc[10:19, "x"] = -1e300
    current.loc[20:29, "k"] = 2**62
    report = compare(data(2000, 0), current, target="y", prediction="pred", probability="p1",
                     multivariate=False)  # fmt: skip
    assert report.quality["x"]["out_of_range_rate"] == pytest.approx(20 / 400)
    assert report.quality["k"]["out_of_range_rate"] == pytest.approx(10 / 400)
    wasserstein = next(r for r in report.results if r.column == "x" and r.metric == "wasserstein")
    assert wasserstein.value is not None or wasserstein.reason == "the statistic overflowed"
    assert_defined(report.results)
