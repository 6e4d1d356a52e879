"""The fairness audit against scikit-learn per group, its bootstrap against the binomial
closed form, and malformed input."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.fairness import METRICS, fairness_audit


def _data(n: int = 3000, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.5, 0.3, 0.2])
    # group c is served worse: noisier scores
    noise = np.where(groups == "c", 1.5, 0.6)
    y = rng.integers(0, 2, size=n)
    score = y + rng.normal(0, noise)
    proba = 1.0 / (1.0 + np.exp(-(score - 0.5) * 3))
    return {"y": y, "pred": (proba > 0.5).astype(int), "proba": proba, "groups": groups}


def _direct(metric: str, y: np.ndarray, p: np.ndarray, s: np.ndarray) -> float:
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    table: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y, p),
        "selection_rate": lambda: float(np.mean(p == 1)),
        "true_positive_rate": lambda: skm.recall_score(y, p),
        "false_negative_rate": lambda: fn / (fn + tp),
        "false_positive_rate": lambda: fp / (fp + tn),
        "true_negative_rate": lambda: tn / (tn + fp),
        "precision": lambda: skm.precision_score(y, p),
        "f1": lambda: skm.f1_score(y, p),
        "roc_auc": lambda: skm.roc_auc_score(y, s),
    }
    return float(table[metric]())


CLASSIFICATION = [m for m in METRICS if m not in ("mae", "rmse", "mean_prediction")]


@pytest.mark.parametrize("metric", CLASSIFICATION)
def test_group_values_equal_sklearn_per_group(metric: str) -> None:
    d = _data()
    audit = fairness_audit(
        d["y"], d["pred"], d["groups"], metric=metric, y_proba=d["proba"], n_boot=50, seed=1
    )
    assert audit.engine == "fairlearn"
    expected = {}
    for g in ("a", "b", "c"):
        m = d["groups"] == g
        expected[g] = _direct(metric, d["y"][m], d["pred"][m], d["proba"][m])
    got = {g.group: g.value for g in audit.groups}
    assert got == pytest.approx(expected, rel=1e-12)
    assert {g.group: g.n for g in audit.groups} == {
        g: int((d["groups"] == g).sum()) for g in ("a", "b", "c")
    }
    values = list(expected.values())
    assert audit.difference.value == pytest.approx(max(values) - min(values))
    assert audit.ratio.value == pytest.approx(min(values) / max(values))


@pytest.mark.parametrize("metric", ["mae", "rmse", "mean_prediction"])
def test_regression_metrics_equal_sklearn(metric: str) -> None:
    rng = np.random.default_rng(3)
    groups = rng.choice(["x", "y"], size=500)
    y = rng.normal(size=500)
    pred = y + rng.normal(0, np.where(groups == "x", 0.5, 1.0))
    audit = fairness_audit(y, pred, groups, metric=metric, n_boot=100, seed=0)
    for g in audit.groups:
        m = groups == g.group
        expected = {
            "mae": skm.mean_absolute_error(y[m], pred[m]),
            "rmse": math.sqrt(skm.mean_squared_error(y[m], pred[m])),
            "mean_prediction": float(np.mean(pred[m])),
        }[metric]
        assert g.value == pytest.approx(expected, rel=1e-12)
        assert g.lower is not None and g.upper is not None and g.value is not None
        assert g.lower <= g.value <= g.upper
    assert audit.worst_group == (None if metric == "mean_prediction" else "y")


def test_without_fairlearn_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    d = _data(800)
    kwargs: dict[str, Any] = {"metric": "precision", "n_boot": 20, "seed": 0}
    with_fl = fairness_audit(d["y"], d["pred"], d["groups"], **kwargs)
    monkeypatch.setitem(sys.modules, "fairlearn.metrics", None)  # import now fails
    without = fairness_audit(d["y"], d["pred"], d["groups"], **kwargs)
    assert without.engine == "scikit-learn"
    assert [g.value for g in without.groups] == [g.value for g in with_fl.groups]
    assert without.difference == with_fl.difference


def test_bootstrap_interval_matches_the_binomial_width_and_is_seeded() -> None:
    d = _data(6000)
    audit = fairness_audit(d["y"], d["pred"], d["groups"], metric="accuracy", n_boot=1000, seed=7)
    for g in audit.groups:
        assert g.value is not None and g.lower is not None and g.upper is not None
        assert g.lower < g.value < g.upper
        closed = 2 * 1.959964 * math.sqrt(g.value * (1 - g.value) / g.n)
        assert (g.upper - g.lower) == pytest.approx(closed, rel=0.15)
    again = fairness_audit(d["y"], d["pred"], d["groups"], metric="accuracy", n_boot=1000, seed=7)
    assert again == audit
    other = fairness_audit(d["y"], d["pred"], d["groups"], metric="accuracy", n_boot=1000, seed=8)
    assert [(g.lower, g.upper) for g in other.groups] != [(g.lower, g.upper) for g in audit.groups]
    assert audit.difference.lower is not None and audit.difference.upper is not None
    assert audit.difference.lower <= audit.difference.value <= audit.difference.upper  # type: ignore[operator]
    assert audit.worst_group == "c"


def test_undefined_group_value_is_none_with_reason_and_left_out() -> None:
    y = np.array([0] * 30 + [1, 0] * 30)
    pred = np.array([0] * 30 + [1, 1] * 30)
    groups = np.array(["none_positive"] * 30 + ["mixed"] * 60)
    audit = fairness_audit(y, pred, groups, metric="true_positive_rate", n_boot=50, seed=0)
    by = {g.group: g for g in audit.groups}
    assert by["none_positive"].value is None
    assert by["none_positive"].reason == "no positive row in this group"
    assert not by["none_positive"].in_comparison
    assert by["mixed"].value == 1.0
    assert audit.difference.value is None and audit.difference.reason
    roc = fairness_audit(y, pred, groups, metric="roc_auc", y_proba=pred * 0.8, n_boot=20)
    assert {g.group: g.value for g in roc.groups}["none_positive"] is None


def test_small_groups_and_missing_values() -> None:
    y = np.array([1, 0] * 50 + [1, 1, 0])
    pred = np.array([1, 0] * 50 + [0, 0, 0])
    groups = np.array(["big"] * 100 + [None, np.nan, None], dtype=object)
    audit = fairness_audit(y, pred, groups, metric="accuracy", n_boot=30, min_group_size=5)
    by = {g.group: g for g in audit.groups}
    assert set(by) == {"big", "(missing)"}
    assert by["(missing)"].n == 3 and by["(missing)"].value == pytest.approx(1 / 3)
    assert not by["(missing)"].in_comparison and "fewer than 5" in (by["(missing)"].reason or "")
    assert audit.difference.value is None


def test_no_bootstrap_gives_no_intervals_and_to_dict_is_plain() -> None:
    d = _data(300)
    audit = fairness_audit(d["y"], d["pred"], d["groups"], metric="f1", n_boot=0)
    assert all(g.lower is None and g.upper is None for g in audit.groups)
    out = audit.to_dict()
    assert out["metric"] == "f1" and len(out["groups"]) == 3
    assert out["difference"]["value"] is not None and out["difference"]["lower"] is None


def test_string_labels_and_pos_label() -> None:
    y = np.array(["late", "ok"] * 40)
    pred = np.array(["late", "late"] * 40)
    groups = np.array(["a"] * 40 + ["b"] * 40)
    audit = fairness_audit(y, pred, groups, metric="selection_rate", pos_label="ok", n_boot=10)
    assert [g.value for g in audit.groups] == [0.0, 0.0]
    audit = fairness_audit(y, pred, groups, metric="selection_rate", n_boot=10)  # "ok" > "late"
    assert audit.ratio.value is None and audit.ratio.reason


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metric": "fairness"}, InvalidInputError, "unknown fairness metric"),
        ({"n_boot": -1}, InvalidInputError, "n_boot"),
        ({"n_boot": 10**9}, InvalidInputError, "n_boot"),
        ({"n_boot": True}, InvalidInputError, "n_boot"),
        ({"seed": 1.5}, InvalidInputError, "seed"),
        ({"confidence": 1.0}, InvalidInputError, "confidence"),
        ({"confidence": "high"}, InvalidInputError, "confidence"),
        ({"min_group_size": 0}, InvalidInputError, "min_group_size"),
        ({"metric": "roc_auc"}, InvalidInputError, "needs y_proba"),
        ({"metric": "roc_auc", "y_proba": [0.5, 2.0, 0.1, 0.2]}, InvalidInputError, r"\[0, 1\]"),
        ({"metric": "roc_auc", "y_proba": [0.5, 0.5]}, InvalidInputError, "shape"),
        ({"metric": "roc_auc", "y_proba": [0.5, np.nan, 0.1, 0.2]}, InvalidInputError, "NaN"),
        ({"pos_label": 7, "metric": "precision"}, InvalidInputError, "pos_label"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    base: dict[str, Any] = {"metric": "accuracy", "n_boot": 10}
    with pytest.raises(error, match=match):
        fairness_audit([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b", "b"], **{**base, **kwargs})


@pytest.mark.parametrize(
    ("y", "pred", "groups", "error", "match"),
    [
        ([0, 1], [0, 1, 1], ["a", "b"], InvalidInputError, "differ in length"),
        ([0, np.nan], [0, 1], ["a", "b"], InvalidInputError, "NaN"),
        ([0, None], [0, 1], ["a", "b"], InvalidInputError, "missing"),
        ([[0, 1]], [[0, 1]], [["a", "b"]], InvalidInputError, "1-D"),
        ([0, 1], [0, 1], [["a"], ["b"]], InvalidInputError, "groups must be 1-D"),
        ([], [], [], StatisticsError, "at least one row"),
        ([0, 1, 2], [0, 1, 2], ["a", "b", "c"], InvalidInputError, "binary"),
        ([0, "x"], [0, 1], ["a", "b"], InvalidInputError, "mixed"),
    ],
)
def test_malformed_input(
    y: Any, pred: Any, groups: Any, error: type[Exception], match: str
) -> None:
    metric = "precision"
    with pytest.raises(error, match=match):
        fairness_audit(y, pred, groups, metric=metric, n_boot=5)


def test_regression_rejects_non_numeric() -> None:
    with pytest.raises(InvalidInputError, match="numeric"):
        fairness_audit(["a", "b"], [1.0, 2.0], ["g", "g"], metric="mae", n_boot=5)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        fairness_audit([np.inf, 1.0], [1.0, 2.0], ["g", "g"], metric="mae", n_boot=5)


def test_multiclass_accuracy_and_many_groups() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=2000)
    pred = np.where(rng.random(2000) < 0.7, y, rng.integers(0, 4, size=2000))
    groups = rng.integers(0, 40, size=2000)
    audit = fairness_audit(y, pred, groups, metric="accuracy", n_boot=20, min_group_size=1)
    assert len(audit.groups) == 40
    for g in audit.groups:
        m = groups.astype(str) == g.group
        assert g.value == pytest.approx(skm.accuracy_score(y[m], pred[m]))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from("abc")), min_size=1)
)
def test_properties_of_difference_and_ratio(rows: list[tuple[int, int, str]]) -> None:
    y, pred, groups = (np.array(c) for c in zip(*rows, strict=True))
    audit = fairness_audit(y, pred, groups, metric="accuracy", n_boot=5, min_group_size=1)
    values = [g.value for g in audit.groups if g.value is not None]
    if audit.difference.value is not None:
        assert audit.difference.value == pytest.approx(max(values) - min(values))
        assert audit.difference.value >= 0
    if audit.ratio.value is not None:
        assert 0.0 <= audit.ratio.value <= 1.0
    # renaming the groups changes nothing but their names
    renamed = fairness_audit(
        y, pred, np.char.add("g_", groups), metric="accuracy", n_boot=5, min_group_size=1
    )
    assert renamed.difference == audit.difference
    assert all(v is None or math.isfinite(v) for g in audit.groups for v in (g.lower, g.upper))
