"""Weighted metrics against scikit-learn; the paired bootstrap against a closed form and
scipy.stats.bootstrap."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.loop.bootstrap import Scored, metric_values, paired_bootstrap, score


def binary(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> Scored:
    out = pd.DataFrame({"prediction": (p > threshold).astype(int), "proba_0": 1 - p, "proba_1": p})
    return score(out, y, "binary", [0, 1])


def classifier_data(seed: int, n: int = 600, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += rng.uniform(0, 1, n)
    proba = np.round(proba / proba.sum(axis=1, keepdims=True), 2)  # ties in the scores
    proba[:, -1] = 1 - proba[:, :-1].sum(axis=1)
    return y, np.clip(proba, 0, 1)


def sk(metric: str, y: np.ndarray, proba: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    k = proba.shape[1]
    if metric == "accuracy":
        return float(skm.accuracy_score(y, pred, sample_weight=w))
    if metric == "f1":
        average = "binary" if k == 2 else "macro"
        return float(skm.f1_score(y, pred, average=average, sample_weight=w, zero_division=0))
    if metric == "log_loss":
        return float(skm.log_loss(y, proba, sample_weight=w, labels=list(range(k))))
    if k == 2:
        return float(skm.roc_auc_score(y, proba[:, 1], sample_weight=w))
    return float(skm.roc_auc_score(y, proba, multi_class="ovr", sample_weight=w))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("metric", ["accuracy", "f1", "log_loss", "roc_auc"])
def test_classifier_metrics_equal_sklearn_with_sample_weights(metric: str, k: int) -> None:
    y, proba = classifier_data(k, k=k)
    pred = proba.argmax(axis=1)
    out = pd.DataFrame({"prediction": pred, **{f"proba_{c}": proba[:, c] for c in range(k)}})
    data = score(out, y, "binary" if k == 2 else "multiclass", list(range(k)))
    weights = np.random.default_rng(1).integers(0, 4, (4, len(y))).astype(float)
    weights[0] = 1.0
    got = metric_values(metric, data, weights)
    want = [sk(metric, y, proba, pred, w) for w in weights]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    pred = y + rng.normal(scale=0.5, size=300)
    data = score(pd.DataFrame({"prediction": pred}), y, "regression", None)
    w = rng.integers(0, 3, (2, 300)).astype(float)
    np.testing.assert_allclose(
        metric_values("mae", data, w),
        [skm.mean_absolute_error(y, pred, sample_weight=x) for x in w],
    )
    np.testing.assert_allclose(
        metric_values("rmse", data, w),
        [skm.root_mean_squared_error(y, pred, sample_weight=x) for x in w],
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10), st.integers(0, 3)),
             min_size=2, max_size=60)
)  # fmt: skip
def test_weights_equal_duplicated_rows(rows: list[tuple[int, int, int]]) -> None:
    """A resample's counts as weights give the metric of the rows repeated that often."""
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] / 10 for r in rows])
    w = np.array([r[2] for r in rows], dtype=float)
    if w.sum() == 0:
        return
    repeated = np.repeat(np.arange(len(rows)), w.astype(int))
    for metric in ("accuracy", "f1", "log_loss", "roc_auc"):
        weighted = metric_values(metric, binary(y, p), w[None, :])[0]
        plain = metric_values(metric, binary(y[repeated], p[repeated]), np.ones((1, len(repeated))))
        np.testing.assert_allclose(weighted, plain[0], rtol=1e-12, equal_nan=True)


def test_auc_is_nan_when_one_class_is_missing() -> None:
    data = binary(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9]))
    assert np.isnan(metric_values("roc_auc", data, np.ones((1, 3)))[0])


def two_models(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    champion = np.clip(0.5 + (y - 0.5) * rng.uniform(0.0, 0.8, n), 0.01, 0.99)
    candidate = np.clip(champion + (y - 0.5) * rng.uniform(-0.2, 0.4, n), 0.01, 0.99)
    return y, champion, candidate


def test_accuracy_interval_matches_the_closed_form() -> None:
    """The improvement in accuracy is the mean of d_i = correct_cand - correct_champ, whose
    interval is d̄ ± z·sd(d)/√n (normal approximation, n = 3000)."""
    y, champion, candidate = two_models(3000, seed=5)
    a, b = binary(y, champion), binary(y, candidate)
    result = paired_bootstrap("accuracy", a, b, n_bootstrap=4000, confidence=0.95, seed=11)
    d = (b.pred == y).astype(float) - (a.pred == y).astype(float)
    se = d.std() / np.sqrt(len(d))
    z = stats.norm.ppf(0.975)
    assert result.improvement == pytest.approx(d.mean(), abs=1e-12)
    assert result.lower == pytest.approx(d.mean() - z * se, abs=0.15 * se)
    assert result.upper == pytest.approx(d.mean() + z * se, abs=0.15 * se)
    assert result.champion == pytest.approx(skm.accuracy_score(y, champion > 0.5))


def test_auc_interval_matches_scipy_bootstrap() -> None:
    y, champion, candidate = two_models(400, seed=7)
    result = paired_bootstrap(
        "roc_auc", binary(y, champion), binary(y, candidate), n_bootstrap=2000, seed=3
    )

    def auc(yy: np.ndarray, scores: np.ndarray) -> float:
        """Mann-Whitney: (rank sum of positives - P(P+1)/2) / (P·N), ties at mid-rank."""
        ranks = stats.rankdata(scores)
        n_pos = int(yy.sum())
        n_neg = len(yy) - n_pos
        return float((ranks[yy == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    def difference(yy: np.ndarray, old: np.ndarray, new: np.ndarray) -> float:
        return auc(yy, new) - auc(yy, old)

    assert auc(y, champion) == pytest.approx(skm.roc_auc_score(y, champion))
    reference = stats.bootstrap(
        (y, champion, candidate), difference, paired=True, vectorized=False,
        n_resamples=2000, confidence_level=0.95, method="percentile",
        random_state=np.random.default_rng(0),
    )  # fmt: skip
    se = reference.standard_error
    assert result.improvement == pytest.approx(difference(y, champion, candidate), abs=1e-12)
    assert result.lower == pytest.approx(reference.confidence_interval.low, abs=0.25 * se)
    assert result.upper == pytest.approx(reference.confidence_interval.high, abs=0.25 * se)
    assert result.lower < result.improvement < result.upper


def test_error_metrics_count_a_lower_loss_as_an_improvement() -> None:
    y, champion, candidate = two_models(800, seed=2)
    result = paired_bootstrap("log_loss", binary(y, champion), binary(y, candidate), seed=1)
    assert result.candidate < result.champion
    assert result.improvement == pytest.approx(result.champion - result.candidate)
    assert result.lower > 0


def test_same_model_has_zero_improvement_and_a_zero_interval() -> None:
    y, champion, _ = two_models(200, seed=1)
    result = paired_bootstrap("roc_auc", binary(y, champion), binary(y, champion), seed=0)
    assert (result.improvement, result.lower, result.upper) == (0.0, 0.0, 0.0)


def test_the_seed_fixes_the_interval() -> None:
    y, champion, candidate = two_models(300, seed=4)
    a, b = binary(y, champion), binary(y, candidate)
    first = paired_bootstrap("f1", a, b, n_bootstrap=200, seed=9)
    assert first == paired_bootstrap("f1", a, b, n_bootstrap=200, seed=9)
    assert first != paired_bootstrap("f1", a, b, n_bootstrap=200, seed=10)
    assert first == paired_bootstrap("f1", a, b, n_bootstrap=200, seed=9, chunk=7)


def test_too_few_of_a_class_refuses_an_interval() -> None:
    y = np.zeros(40, dtype=int)
    y[:2] = 1
    p = np.linspace(0.1, 0.9, 40)
    with pytest.raises(StatisticsError, match="undefined on"):
        paired_bootstrap("roc_auc", binary(y, p), binary(y, p[::-1].copy()), n_bootstrap=200)
    with pytest.raises(StatisticsError, match="undefined on the gate's rows"):
        paired_bootstrap("roc_auc", binary(y * 0, p), binary(y * 0, p))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b: paired_bootstrap("auc", a, b), "unknown metric"),
        (lambda a, b: paired_bootstrap("mae", a, b), "does not apply"),
        (lambda a, b: paired_bootstrap("accuracy", a, Scored("binary", b.y[:5], b.pred[:5],
                                                             None, 2)), "same labelled rows"),
        (lambda a, b: paired_bootstrap("accuracy", a, b, confidence=1.5), "confidence"),
        (lambda a, b: metric_values("accuracy", a, np.ones((1, 3))), "weights cover"),
        (lambda a, b: metric_values("roc_auc", Scored("binary", a.y, a.pred, None, 2),
                                    np.ones((1, a.n))), "needs predicted probabilities"),
    ],
)  # fmt: skip
def test_malformed_calls_raise_clear_errors(call: Any, message: str) -> None:
    y, champion, candidate = two_models(50, seed=0)
    with pytest.raises(InvalidInputError, match=message):
        call(binary(y, champion), binary(y, candidate))


def test_score_rejects_bad_outputs() -> None:
    out = pd.DataFrame({"prediction": [0, 1], "proba_0": [0.5, np.nan], "proba_1": [0.5, 0.5]})
    with pytest.raises(InvalidInputError, match="finite"):
        score(out, [0, 1], "binary", [0, 1])
    with pytest.raises(InvalidInputError, match="not classes"):
        score(out.fillna(0.5), [0, "cat"], "binary", [0, 1])
    with pytest.raises(InvalidInputError, match="2 predictions for 3 labels"):
        score(out, [0, 1, 1], "binary", [0, 1])
    with pytest.raises(InvalidInputError, match="finite numbers"):
        score(pd.DataFrame({"prediction": [1.0, np.inf]}), [1.0, 2.0], "regression", None)
    with pytest.raises(InvalidInputError, match="classes"):
        score(out, [0, 1], "binary", None)


def test_string_classes_and_unknown_predictions() -> None:
    out = pd.DataFrame(
        {
            "prediction": ["late", "???", "on_time"],
            "proba_late": [0.8, 0.4, 0.1],
            "proba_on_time": [0.2, 0.6, 0.9],
        }
    )
    data = score(out, np.array(["late", "late", "on_time"]), "binary", ["late", "on_time"])
    assert data.pred.tolist() == [0, -1, 1]
    assert metric_values("accuracy", data, np.ones((1, 3)))[0] == pytest.approx(2 / 3)
