"""CBPE takes the model's decisions, not a threshold: closed forms and no-drift coverage.

* Closed form: with calibrated probabilities ``p`` (calibration off) and decisions taken at
  0.8, expected accuracy is ``mean(p if decided 1 else 1 - p)``, the expected confusion
  counts are ``TP = sum(p | decided 1)``, ``FP = sum(1 - p | decided 1)``,
  ``FN = sum(p | decided 0)``, ``TN = sum(1 - p | decided 0)``; multiclass,
  ``counts[c, d] = sum of q[i, c] over rows decided d``.
* No drift: windows drawn from the reference's distribution; the realized metric lies in
  the estimated band (``value ± 3 · std_error``) in at least 90% of windows, for a binary
  model deciding at 0.8, a multiclass model with a cost-weighted decision rule, and a
  regression model under DLE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError
from livemodel.stats.cbpe import CBPE
from livemodel.stats.dle import DLE

WINDOWS = 60
WINDOW = 500
COVERAGE = 0.9


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with threadpool_limits(1):  # a shared 2-core machine
        yield


# --- closed forms -------------------------------------------------------------------------


def test_binary_closed_form_at_threshold_08() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(2.0, 2.0, size=1000)
    decided = (p >= 0.8).astype(int)
    cbpe = CBPE(calibration=None).fit(rng.uniform(size=1000) < p, p)
    est = cbpe.estimate(p, decided)
    tp, fp = p[decided == 1].sum(), (1 - p[decided == 1]).sum()
    fn, tn = p[decided == 0].sum(), (1 - p[decided == 0]).sum()
    assert est["accuracy"].value == pytest.approx(np.where(decided == 1, p, 1 - p).mean())
    assert est["accuracy"].value == pytest.approx((tp + tn) / 1000)
    assert est["precision"].value == pytest.approx(tp / (tp + fp))
    assert est["recall"].value == pytest.approx(tp / (tp + fn))
    assert est["f1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn))
    confusion = cbpe.estimate_confusion(p, decided)
    assert confusion.counts == pytest.approx(np.array([[tn, fp], [fn, tp]]))
    assert confusion.n == 1000 and confusion.classes == (False, True)
    assert np.all(confusion.lower <= confusion.counts) and np.all(
        confusion.counts <= confusion.upper
    )
    # a 0.5 rule on the same probabilities gives another (wrong) answer for this model
    half = cbpe.estimate(p, p >= 0.5)["accuracy"].value
    assert half == pytest.approx(np.maximum(p, 1 - p).mean())
    assert abs(half - est["accuracy"].value) > 0.1  # type: ignore[operator]


def test_multiclass_closed_form_with_a_decision_that_is_not_the_argmax() -> None:
    rng = np.random.default_rng(1)
    q = rng.dirichlet(np.ones(3), size=800)
    decided = np.where(q[:, 2] > 0.6, 2, q[:, :2].argmax(axis=1))  # class 2 only when sure
    assert (decided != q.argmax(axis=1)).mean() > 0.05
    labels = np.array(["a", "b", "c"])
    y_ref = labels[np.array([rng.choice(3, p=row) for row in q])]
    cbpe = CBPE("multiclass", calibration=None, average="macro").fit(y_ref, q)
    est = cbpe.estimate(q, labels[decided])
    expected = np.zeros((3, 3))
    for d in range(3):
        expected[:, d] = q[decided == d].sum(axis=0)
    assert est["accuracy"].value == pytest.approx(q[np.arange(800), decided].mean())
    precision = np.diag(expected) / expected.sum(axis=0)
    recall = np.diag(expected) / expected.sum(axis=1)
    f1 = 2 * np.diag(expected) / (expected.sum(axis=0) + expected.sum(axis=1))
    assert est["precision"].value == pytest.approx(precision.mean())
    assert est["recall"].value == pytest.approx(recall.mean())
    assert est["f1"].value == pytest.approx(f1.mean())
    confusion = cbpe.estimate_confusion(q, labels[decided])
    assert confusion.counts == pytest.approx(expected)
    assert confusion.classes == ("a", "b", "c")


def test_decisions_are_required_and_matched_by_value_or_text() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(size=400)
    cbpe = CBPE(calibration=None).fit((rng.uniform(size=400) < p).astype(int), p)
    with pytest.raises(InvalidInputError, match="decisions"):
        cbpe.estimate(p)
    with pytest.raises(InvalidInputError, match="not among classes"):
        cbpe.estimate(p, np.full(400, 7))
    with pytest.raises(InvalidInputError, match="400 probability rows"):
        cbpe.estimate(p, np.ones(10, int))
    logged = np.where(p >= 0.8, "1", "0")  # labels as a log may hold them
    assert cbpe.estimate(p, logged)["accuracy"] == cbpe.estimate(p, p >= 0.8)["accuracy"]
    only_auc = CBPE(metrics=("roc_auc",), calibration=None).fit([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9])
    assert only_auc.estimate(p)["roc_auc"].value is not None  # ROC AUC needs no decision


# --- no-drift coverage --------------------------------------------------------------------


def _coverage(
    windows: Iterator[tuple[dict[str, Any], dict[str, float]]],
) -> dict[str, float]:
    """Per metric, the share of windows whose realized value lies in the band. The band
    must not be trivially wide either: within one std error, 40-95% of windows (68%
    expected for a normal sampling error; 60 windows)."""
    inside: dict[str, list[bool]] = {}
    near: dict[str, list[bool]] = {}
    for estimates, realized in windows:
        for metric, value in realized.items():
            e = estimates[metric]
            assert e.value is not None and e.lower is not None and e.upper is not None
            inside.setdefault(metric, []).append(e.lower <= value <= e.upper)
            near.setdefault(metric, []).append(abs(value - e.value) <= e.std_error)
    one_sigma = {metric: float(np.mean(flags)) for metric, flags in near.items()}
    assert all(0.4 <= share <= 0.95 for share in one_sigma.values()), one_sigma
    return {metric: float(np.mean(flags)) for metric, flags in inside.items()}


def _logistic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, 2))
    p = 1 / (1 + np.exp(-(1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.4)))
    return x, (rng.uniform(size=n) < p).astype(int)


def test_binary_at_08_realized_inside_the_band_without_drift() -> None:
    rng = np.random.default_rng(10)
    model = FixedThresholdClassifier(LogisticRegression(), threshold=0.8).fit(*_logistic(rng, 3000))
    x_ref, y_ref = _logistic(rng, 5000)
    cbpe = CBPE().fit(y_ref, model.predict_proba(x_ref))

    def windows() -> Iterator[tuple[dict[str, Any], dict[str, float]]]:
        for _ in range(WINDOWS):
            x, y = _logistic(rng, WINDOW)
            proba, decided = model.predict_proba(x), model.predict(x)
            realized = {
                "accuracy": skm.accuracy_score(y, decided),
                "precision": skm.precision_score(y, decided),
                "recall": skm.recall_score(y, decided),
                "f1": skm.f1_score(y, decided),
                "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
            }
            yield cbpe.estimate(proba, decided), realized

    coverage = _coverage(windows())
    assert all(c >= COVERAGE for c in coverage.values()), coverage


def test_multiclass_cost_weighted_decisions_inside_the_band_without_drift() -> None:
    rng = np.random.default_rng(11)
    weights = np.array([[1.5, 0.0], [-1.0, 1.2], [0.0, -1.5]])
    classes = np.array(["low", "mid", "high"])

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 2))
        logits = x @ weights.T
        q = np.exp(logits - logits.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        return x, classes[(rng.uniform(size=(n, 1)) > q.cumsum(axis=1)).sum(axis=1)]

    model = LogisticRegression().fit(*sample(3000))
    columns = list(model.classes_)

    def decide(proba: np.ndarray) -> np.ndarray:  # "high" costs twice as much to miss
        return np.asarray(model.classes_[(proba * np.array([1.0, 2.0, 1.0])).argmax(axis=1)])

    x_ref, y_ref = sample(5000)
    cbpe = CBPE("multiclass").fit(y_ref, model.predict_proba(x_ref), classes=columns)

    def windows() -> Iterator[tuple[dict[str, Any], dict[str, float]]]:
        for _ in range(WINDOWS):
            x, y = sample(WINDOW)
            proba = model.predict_proba(x)
            decided = decide(proba)
            kw: dict[str, Any] = {"average": "macro", "labels": columns}
            realized = {
                "accuracy": skm.accuracy_score(y, decided),
                "precision": skm.precision_score(y, decided, **kw),
                "recall": skm.recall_score(y, decided, **kw),
                "f1": skm.f1_score(y, decided, **kw),
                "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", labels=columns),
            }
            yield cbpe.estimate(proba, decided), realized

    assert (decide(model.predict_proba(x_ref)) != model.predict(x_ref)).mean() > 0.05
    coverage = _coverage(windows())
    assert all(c >= COVERAGE for c in coverage.values()), coverage


def test_regression_dle_inside_the_band_without_drift() -> None:
    rng = np.random.default_rng(12)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 3))
        noise = rng.normal(scale=0.5 + np.abs(x[:, 0]), size=n)
        return x, 2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] ** 2 + noise

    model = LinearRegression().fit(*sample(3000))
    x_ref, y_ref = sample(4000)
    dle = DLE(metrics=("mae", "rmse")).fit(x_ref, y_ref, model.predict(x_ref))
    metric: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "mae": skm.mean_absolute_error,
        "rmse": skm.root_mean_squared_error,
    }

    def windows() -> Iterator[tuple[dict[str, Any], dict[str, float]]]:
        for _ in range(WINDOWS):
            x, y = sample(WINDOW)
            pred = model.predict(x)
            yield dle.estimate(x, pred), {m: float(f(y, pred)) for m, f in metric.items()}

    coverage = _coverage(windows())
    assert all(c >= COVERAGE for c in coverage.values()), coverage


def test_expected_auc_is_sklearns_weighted_auc_with_ties() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(size=600), 2)  # many ties
    cbpe = CBPE(metrics=("roc_auc",), calibration=None).fit(rng.uniform(size=600) < p, p)
    twice = np.r_[p, p]
    truth = skm.roc_auc_score(
        np.r_[np.ones(600), np.zeros(600)], twice, sample_weight=np.r_[p, 1 - p]
    )
    assert cbpe.estimate(p)["roc_auc"].value == pytest.approx(truth, abs=1e-12)
