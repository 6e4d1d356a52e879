"""The offline gate, pure: frames and two fitted models in, every number out."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.loop.gate import LONG_TAIL, group_labels, run_gate
from livemodel.loop.policy import GateSettings, parse_loop


class ColumnModel:
    """A 'fitted model' whose P(y=1) is a column of the frame: full control over the gate."""

    classes_ = np.array([0, 1])

    def __init__(self, column: str) -> None:
        self.column = column

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = frame[self.column].to_numpy(dtype=float)
        return np.column_stack([1 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame[self.column].to_numpy(dtype=float) > 0.5).astype(int)


FEATURES = ["p_old", "p_new", "seg", "group"]
OLD, NEW = ColumnModel("p_old"), ColumnModel("p_new")


def gate_settings(**table: Any) -> GateSettings:
    table = {"n_bootstrap": 300, **table}
    return parse_loop({"models": {"m": {"train": "a:b", "gate": table}}}).models["m"].gate


def holdout(n: int = 1200, *, seed: int = 0, new_skill: float = 0.35) -> pd.DataFrame:
    """Labels; an old model of moderate skill and a new one of ``new_skill``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = np.where(y == 1, 1.0, -1.0)
    return pd.DataFrame({
        "y": y,
        "p_old": np.clip(0.5 + sign * rng.uniform(-0.15, 0.35, n), 0.01, 0.99),
        "p_new": np.clip(0.5 + sign * rng.uniform(-0.15, 0.15 + new_skill, n), 0.01, 0.99),
        "seg": rng.choice(["a", "b", "c"], n),
        "group": rng.choice(["x", "y"], n),
    })  # fmt: skip


def gate(frame: pd.DataFrame, champion: Any = OLD, candidate: Any = NEW, **table: Any) -> Any:
    return run_gate(
        champion, candidate, frame, features=FEATURES, target="y", kind="binary",
        classes=[0, 1], settings=gate_settings(**table),
    )  # fmt: skip


def test_a_better_candidate_passes_with_its_numbers() -> None:
    result = gate(holdout(), metric="roc_auc", segments=["seg"])
    assert result.passed, result.reasons
    assert result.overall.candidate > result.overall.champion
    assert 0 < result.overall.lower <= result.overall.improvement <= result.overall.upper
    assert [s.value for s in result.segments] == ["a", "b", "c"]
    assert all(not s.regressed for s in result.segments)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["overall"]["n"] == 1200 and record["overall"]["n_bootstrap"] == 300
    assert record["segments"][0]["column"] == "seg"


def test_a_worse_candidate_fails_and_says_why() -> None:
    result = gate(holdout(), champion=NEW, candidate=OLD, metric="log_loss")
    assert not result.passed
    assert result.overall.upper < 0
    assert result.reasons[0].startswith("not better enough: log_loss: candidate")


def test_a_negative_margin_asks_for_non_inferiority_only() -> None:
    same_skill = holdout(new_skill=0.2)
    tied = gate(same_skill, metric="accuracy", margin=0.0)
    assert not tied.passed and tied.overall.lower < 0 < tied.overall.upper
    assert gate(same_skill, metric="accuracy", margin=-0.06).passed
    # the same model never beats itself, but is not inferior either
    assert not gate(same_skill, candidate=OLD, metric="accuracy", margin=0.0).passed
    assert gate(same_skill, candidate=OLD, metric="accuracy", margin=-0.001).passed


def test_a_segment_that_regresses_blocks_the_candidate() -> None:
    frame = holdout()
    b = frame["seg"] == "b"
    frame.loc[b, "p_new"] = 1 - frame.loc[b, "p_old"]  # the new model is backwards on b
    frame.loc[~b, "p_new"] = np.clip(frame.loc[~b, "p_old"] + np.where(
        frame.loc[~b, "y"] == 1, 0.3, -0.3), 0.01, 0.99)  # fmt: skip
    result = gate(frame, metric="accuracy", segments=["seg"], margin=-1.0)
    assert not result.passed
    by_value = {s.value: s for s in result.segments}
    assert by_value["b"].regressed and not by_value["a"].regressed
    assert by_value["b"].n == int(b.sum())
    expected = (frame.loc[b, "p_new"].gt(0.5) == frame.loc[b, "y"]).mean() - (
        frame.loc[b, "p_old"].gt(0.5) == frame.loc[b, "y"]
    ).mean()
    assert by_value["b"].improvement == pytest.approx(expected)
    assert any(r.startswith("segment seg=b regresses") for r in result.reasons)


def test_rare_values_are_pooled_into_a_long_tail_that_is_checked_too() -> None:
    frame = holdout()
    rare = frame.index[:200]
    frame.loc[rare, "seg"] = [f"rare{i}" for i in range(200)]  # 200 values of one row each
    frame.loc[rare, "p_new"] = 1 - frame.loc[rare, "p_old"]
    result = gate(frame, metric="accuracy", segments=["seg"], margin=-1.0, min_segment_rows=50)
    tail = [s for s in result.segments if s.value == LONG_TAIL]
    assert len(tail) == 1 and tail[0].n == 200 and tail[0].regressed
    assert not result.passed


def test_a_tiny_long_tail_and_undefined_segments_are_noted_not_held_against() -> None:
    frame = holdout(n=600)
    frame.loc[frame.index[:3], "seg"] = ["r1", "r2", "r3"]
    frame.loc[frame["seg"] == "c", "y"] = 1  # one class only: AUC undefined there
    result = gate(frame, metric="roc_auc", segments=["seg"], min_segment_rows=20, margin=-1.0)
    notes = {s.value: s.reason for s in result.segments if s.reason}
    assert "not checked" in notes[LONG_TAIL]
    assert "undefined" in notes["c"]
    assert result.passed, result.reasons


def test_group_labels_pool_rare_and_name_missing_values() -> None:
    labels, rare = group_labels(pd.Series(["a", "a", "b", None, np.nan, "a"]), 2)
    assert labels.tolist() == ["a", "a", LONG_TAIL, "(missing)", "(missing)", "a"]
    assert rare == ["b"]


def recall_gap(frame: pd.DataFrame, column: str) -> float:
    values = [
        recall_score(part["y"], part[column].gt(0.5).astype(int))
        for _, part in frame.groupby("group")
    ]
    return float(max(values) - min(values))


def unfair(frame: pd.DataFrame) -> pd.DataFrame:
    """The new model misses most positives of group y."""
    out = frame.copy()
    hit = (out["group"] == "y") & (out["y"] == 1) & (np.arange(len(out)) % 3 != 0)
    out.loc[hit, "p_new"] = 0.3
    return out


def test_fairness_max_difference_with_fairlearn_numbers() -> None:
    frame = unfair(holdout())
    fairness = {"attribute": "group", "metric": "recall", "max_difference": 0.1}
    result = gate(frame, metric="accuracy", margin=-1.0, fairness=fairness)
    check = result.fairness
    assert check is not None and not check.passed and not result.passed
    assert check.candidate_difference == pytest.approx(recall_gap(frame, "p_new"))
    assert check.champion_difference == pytest.approx(recall_gap(frame, "p_old"))
    part = frame[frame["group"] == "y"]
    assert check.groups["y"]["candidate"] == pytest.approx(
        recall_score(part["y"], part["p_new"].gt(0.5).astype(int))
    )
    assert result.reasons[-1].startswith("fairness: recall differs by")


def test_fairness_relative_to_the_champion() -> None:
    frame = unfair(holdout())
    relative = {"attribute": "group", "metric": "recall", "relative_to_champion": True,
                "tolerance": 0.02}  # fmt: skip
    widened = gate(frame, metric="accuracy", margin=-1.0, fairness=relative)
    assert widened.fairness is not None and "widens from" in (widened.fairness.reason or "")
    same = gate(frame, champion=NEW, candidate=NEW, metric="accuracy", margin=-1.0,
                fairness=relative)  # fmt: skip
    assert same.fairness is not None and same.fairness.passed


@pytest.mark.parametrize("metric", ["precision", "selection_rate", "false_positive_rate",
                                    "accuracy"])  # fmt: skip
def test_every_fairness_metric_runs(metric: str) -> None:
    fairness = {"attribute": "group", "metric": metric, "max_difference": 1.0}
    result = gate(holdout(), metric="accuracy", fairness=fairness)
    assert result.fairness is not None and result.fairness.passed
    assert set(result.fairness.groups) == {"x", "y"}


def test_small_groups_are_left_out_of_fairness() -> None:
    frame = holdout()
    frame.loc[frame.index[:5], "group"] = "z"
    fairness = {"attribute": "group", "metric": "recall", "max_difference": 1.0,
                "min_group_rows": 30}  # fmt: skip
    result = gate(frame, metric="accuracy", fairness=fairness)
    assert result.fairness is not None and result.fairness.excluded == ("z",)
    one = {"attribute": "seg", "metric": "recall", "max_difference": 0.0, "min_group_rows": 10**6}
    lone = gate(frame, metric="accuracy", fairness=one)
    assert lone.fairness is not None and lone.fairness.passed
    assert (lone.fairness.reason or "").startswith("not checked")


def test_bad_inputs_are_clear_errors() -> None:
    frame = holdout(n=100)
    with pytest.raises(SchemaError, match="lacks columns"):
        gate(frame.drop(columns=["seg"]), segments=["seg"])
    with pytest.raises(SchemaError, match="lacks columns"):
        gate(frame, fairness={"attribute": "sex", "metric": "recall", "max_difference": 0.1})
    with pytest.raises(InvalidInputError, match="non-empty"):
        gate(frame.iloc[:0])
    with pytest.raises(InvalidInputError, match="without a label"):
        gate(frame.assign(y=frame["y"].astype(float).where(frame.index > 0)))
    with pytest.raises(InvalidInputError, match="needs a non-empty"):
        run_gate(OLD, NEW, "not a frame", features=FEATURES, target="y",  # type: ignore[arg-type]
                 kind="binary", classes=[0, 1], settings=gate_settings())  # fmt: skip


def test_a_regression_gate_on_mae() -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2))
    y = x[:, 0] * 2 + x[:, 1] + rng.normal(scale=0.3, size=800)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    good = LinearRegression().fit(frame[["a", "b"]], y)
    poor = LinearRegression().fit(frame[["a", "b"]].assign(b=0.0), y)
    result = run_gate(poor, good, frame, features=["a", "b"], target="y", kind="regression",
                      classes=None, settings=gate_settings(metric="mae"))  # fmt: skip
    assert result.passed and result.overall.champion > result.overall.candidate
    with pytest.raises(InvalidInputError, match="classifiers only"):
        run_gate(poor, good, frame, features=["a", "b"], target="y", kind="regression",
                 classes=None, settings=gate_settings(metric="mae", fairness={
                     "attribute": "a", "metric": "recall", "max_difference": 0.1}))  # fmt: skip
