"""CBPE: estimated metrics track scikit-learn's realized ones under covariate shift."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.cbpe import CBPE, expected_calibration_error

W_TRUE = np.array([1.5, -1.0])
B_TRUE = 0.3
# Covariate shifts (mean, scale) that keep P(y | x) fixed.
SHIFTS = [((0.75, 0.0), 1.0), ((-0.5, 0.75), 1.0), ((0.5, -1.0), 1.0), ((0.0, 0.0), 1.5)]
TOLERANCE = 0.03  # stated bound on |estimated - realized| for accuracy and ROC AUC


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # BLAS/OpenMP threads oversubscribe a shared 2-core machine.
    with threadpool_limits(1):
        yield


def _sample(
    rng: np.random.Generator,
    n: int,
    mean: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    w: np.ndarray = W_TRUE,
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic ground truth: y ~ Bernoulli(sigmoid(w·x + b)), x ~ N(mean, scale² I)."""
    x = rng.normal(mean, scale, size=(n, 2))
    p = 1.0 / (1.0 + np.exp(-(x @ w + B_TRUE)))
    return x, (rng.uniform(size=n) < p).astype(int)


@dataclass
class Setup:
    model: Any
    cbpe: CBPE
    rng: np.random.Generator


def _setup(model: Any, seed: int = 0, **params: Any) -> Setup:
    rng = np.random.default_rng(seed)
    x_train, y_train = _sample(rng, 5000)
    x_ref, y_ref = _sample(rng, 10_000)
    model.fit(x_train, y_train)
    cbpe = CBPE(metrics=("accuracy", "roc_auc", "f1"), **params)
    return Setup(model, cbpe.fit(y_ref, model.predict_proba(x_ref)), rng)


def _realized(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    pred = proba[:, 1] >= 0.5
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "f1": skm.f1_score(y, pred),
    }


@pytest.fixture(scope="module")
def logistic() -> Setup:
    return _setup(LogisticRegression())


@pytest.fixture(scope="module")
def naive_bayes() -> Setup:
    return _setup(GaussianNB())


# --- the key test: covariate shift with P(y|x) fixed -----------------------------------


@pytest.mark.parametrize("setup_name", ["logistic", "naive_bayes"])
def test_estimates_track_realized_under_covariate_shift(
    setup_name: str, request: pytest.FixtureRequest
) -> None:
    """Every estimate is within TOLERANCE of sklearn's realized value on withheld labels, and
    the 3-sigma band covers the realized value in all but at most one of the 12 checks (the band
    holds sampling and calibrator spread; the calibrator's residual local error is not in it).
    """
    setup: Setup = request.getfixturevalue(setup_name)
    outside = []
    for mean, scale in SHIFTS:
        x, y = _sample(setup.rng, 2000, mean, scale)
        proba = setup.model.predict_proba(x)
        estimates = setup.cbpe.estimate(proba, proba[:, 1] >= 0.5)
        realized = _realized(y, proba)
        for metric in ("accuracy", "roc_auc", "f1"):
            est = estimates[metric]
            assert est.value is not None and est.lower is not None and est.upper is not None
            assert abs(est.value - realized[metric]) <= TOLERANCE, (metric, mean, scale, est)
            if not est.lower <= realized[metric] <= est.upper:
                outside.append((metric, mean, scale, realized[metric], est))
    assert len(outside) <= 1, outside


def test_miscalibrated_model_is_calibrated_on_reference(naive_bayes: Setup) -> None:
    """GaussianNB is miscalibrated here: CBPE must calibrate, and it must matter."""
    assert naive_bayes.cbpe.calibrators_, "a calibrator should have been fitted"
    raw = _setup(GaussianNB(), calibration=None)
    errors = {"isotonic": [], "none": []}  # type: dict[str, list[float]]
    for mean, scale in SHIFTS:
        x, y = _sample(naive_bayes.rng, 3000, mean, scale)
        proba = naive_bayes.model.predict_proba(x)
        truth = skm.accuracy_score(y, proba[:, 1] >= 0.5)
        for name, cbpe in (("isotonic", naive_bayes.cbpe), ("none", raw.cbpe)):
            value = cbpe.estimate(proba, proba[:, 1] >= 0.5)["accuracy"].value
            assert value is not None
            errors[name].append(abs(value - truth))
    assert np.mean(errors["isotonic"]) < np.mean(errors["none"])


@pytest.mark.slow
def test_random_forest_within_tolerance() -> None:
    """A forest's score is not a sufficient statistic, so only a tolerance is promised."""
    setup = _setup(RandomForestClassifier(50, min_samples_leaf=20, random_state=0), seed=1)
    for mean, scale in SHIFTS[:3]:
        x, y = _sample(setup.rng, 2000, mean, scale)
        proba = setup.model.predict_proba(x)
        estimates, realized = setup.cbpe.estimate(proba, proba[:, 1] >= 0.5), _realized(y, proba)
        for metric in ("accuracy", "roc_auc"):
            value = estimates[metric].value
            assert value is not None
            assert abs(value - realized[metric]) <= TOLERANCE + 0.01


def test_concept_drift_leaves_the_band(logistic: Setup) -> None:
    """When P(y|x) changes the estimate cannot know: the realized metric leaves the band."""
    x, y = _sample(logistic.rng, 2000, w=np.array([-0.5, -1.0]))
    proba = logistic.model.predict_proba(x)
    estimates = logistic.cbpe.estimate(proba, logistic.model.predict(x))
    realized = _realized(y, proba)
    for metric in ("accuracy", "roc_auc"):
        lower = estimates[metric].lower
        assert lower is not None and realized[metric] < lower


# --- the estimator and its band agree with sklearn on labels drawn from q --------------


def _draw_labels(rng: np.random.Generator, q: np.ndarray) -> np.ndarray:
    cum = q.cumsum(axis=1)
    drawn = (rng.uniform(size=(q.shape[0], 1)) > cum).sum(axis=1)
    return np.asarray(np.minimum(drawn, q.shape[1] - 1))


@pytest.mark.parametrize(
    ("k", "average"),
    [
        (2, "macro"),
        (3, "macro"),
        pytest.param(3, "micro", marks=pytest.mark.slow),
        pytest.param(4, "weighted", marks=pytest.mark.slow),
    ],
)
def test_estimate_is_the_expectation_of_sklearns_metric(k: int, average: str) -> None:
    """With calibrated q, the estimate ≈ mean of sklearn's metric over labels drawn from q,
    and its standard error ≈ their spread."""
    rng = np.random.default_rng(k)
    q = rng.dirichlet(np.full(k, 0.6), size=1200)
    y_ref = _draw_labels(rng, q)
    cbpe = CBPE("binary" if k == 2 else "multiclass", calibration=None, average=average)  # type: ignore[arg-type]
    pred = q.argmax(axis=1) if k > 2 else (q[:, 1] >= 0.5).astype(int)
    est = cbpe.fit(y_ref, q).estimate(q, pred)
    labels = list(range(k))
    draws: dict[str, list[float]] = {m: [] for m in est}
    for _ in range(80):
        y = _draw_labels(rng, q)
        kw: dict[str, Any] = (
            {} if k == 2 else {"average": average, "labels": labels, "zero_division": np.nan}
        )
        draws["accuracy"].append(skm.accuracy_score(y, pred))
        draws["precision"].append(skm.precision_score(y, pred, **kw))
        draws["recall"].append(skm.recall_score(y, pred, **kw))
        draws["f1"].append(skm.f1_score(y, pred, **kw))
        if k == 2:
            draws["roc_auc"].append(skm.roc_auc_score(y, q[:, 1]))
        elif average == "micro":
            draws["roc_auc"].append(skm.roc_auc_score(np.eye(k)[y], q, average="micro"))
        else:
            draws["roc_auc"].append(
                skm.roc_auc_score(y, q, multi_class="ovr", average=average, labels=labels)
            )
    for metric, values in draws.items():
        e = est[metric]
        assert e.value is not None and e.std_error is not None
        assert e.value == pytest.approx(np.mean(values), abs=0.005), metric
        assert e.std_error == pytest.approx(np.std(values, ddof=1), rel=0.25), metric


def test_multiclass_covariate_shift() -> None:
    rng = np.random.default_rng(7)
    weights = np.array([[1.5, 0.0], [-1.0, 1.2], [0.0, -1.5]])

    def sample(n: int, mean: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(mean, 1.0, size=(n, 2))
        logits = x @ weights.T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return x, _draw_labels(rng, p / p.sum(axis=1, keepdims=True))

    model = GaussianNB().fit(*sample(5000, (0.0, 0.0)))
    y_ref_x, y_ref = sample(8000, (0.0, 0.0))
    cbpe = CBPE("multiclass", metrics=("accuracy", "f1", "roc_auc")).fit(
        np.array(["a", "b", "c"])[y_ref], model.predict_proba(y_ref_x)
    )
    assert cbpe.classes_ == ["a", "b", "c"]
    for mean in ((0.8, 0.0), (-0.5, -0.8)):
        x, y = sample(2000, mean)
        proba = model.predict_proba(x)
        pred = proba.argmax(axis=1)
        est = cbpe.estimate(proba, np.array(["a", "b", "c"])[pred])
        realized = {
            "accuracy": skm.accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred, average="macro"),
            "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"),
        }
        for metric, value in realized.items():
            e = est[metric]
            assert e.lower is not None and e.upper is not None
            assert e.lower <= value <= e.upper, (metric, mean, e, value)


# --- calibration and thresholds ----------------------------------------------------------


def test_calibration_check_and_calibrate() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=4000)
    y = rng.uniform(size=4000) < p
    squashed = 0.5 + (p - 0.5) * 0.3  # badly under-confident, but perfectly ranked
    cbpe = CBPE(metrics=("accuracy",)).fit(y, squashed)
    assert 1 in cbpe.calibrators_
    calibrated = cbpe.calibrate(squashed)
    assert calibrated.shape == (4000, 2)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert expected_calibration_error(y, calibrated[:, 1]) < expected_calibration_error(y, squashed)
    assert CBPE(calibration=None).fit(y, squashed).calibrators_ == {}


def test_decisions_are_the_logged_predictions() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(size=3000)
    y = rng.uniform(size=3000) < p
    est = CBPE(metrics=("precision",), calibration=None).fit(y, p).estimate(p, p >= 0.8)
    value = est["precision"].value
    selected = p[p >= 0.8]
    assert value == pytest.approx(selected.mean())  # expected precision = mean q when predicted


def test_undefined_metrics_are_none_with_reason() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(size=500)
    cbpe = CBPE(calibration=None).fit(rng.uniform(size=500) < p, p)
    est = cbpe.estimate(np.full(50, 0.2), np.zeros(50, int))  # nothing predicted positive
    assert est["precision"].value is None and est["precision"].reason
    assert est["accuracy"].value == pytest.approx(0.8)
    single = cbpe.estimate([0.7], [1])
    assert single["roc_auc"].value is None and single["roc_auc"].reason


# --- malformed, missing, empty, huge and hostile input ---------------------------------


@pytest.fixture(scope="module")
def fitted() -> CBPE:
    rng = np.random.default_rng(6)
    p = rng.uniform(size=600)
    return CBPE().fit(rng.uniform(size=600) < p, p)


@pytest.mark.parametrize(
    "window",
    [[0.1, np.nan], [0.1, 1.2], [-0.1], [[0.2, 0.2]], "abc", [[0.1, 0.9, 0.0]], [None, 0.2]],
)
def test_bad_window(fitted: CBPE, window: Any) -> None:
    with pytest.raises(InvalidInputError):
        fitted.estimate(window, [1] * len(window))


def test_empty_window_and_unfitted() -> None:
    with pytest.raises(StatisticsError):
        CBPE(calibration=None).fit([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]).estimate([], [])
    with pytest.raises(InvalidInputError):
        CBPE().estimate([0.5], [1])


@pytest.mark.parametrize(
    ("params", "y", "p"),
    [
        ({}, [], []),
        ({}, [0, 1, 1], [0.1, 0.2]),
        ({}, [1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4]),
        ({}, [0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4]),
        ({}, [0, np.nan], [0.1, 0.2]),
        ({}, [0, 1] * 5, [0.5] * 10),  # too small to check calibration
        ({"task": "multiclass"}, [0, 1] * 5, [[0.5, 0.5]] * 10),
        ({"task": "regression"}, [0, 1], [0.1, 0.2]),
        ({"metrics": ("mae",)}, [0, 1], [0.1, 0.2]),
        ({"metrics": "accuracy"}, [0, 1], [0.1, 0.2]),
        ({"calibration": "platt"}, [0, 1], [0.1, 0.2]),
        ({"band_sigmas": -1.0}, [0, 1], [0.1, 0.2]),
        ({"n_simulations": 1}, [0, 1], [0.1, 0.2]),
        ({"average": "samples"}, [0, 1], [0.1, 0.2]),
    ],
)
def test_bad_fit(params: dict[str, Any], y: Any, p: Any) -> None:
    with pytest.raises((InvalidInputError, StatisticsError)):
        CBPE(**params).fit(y, p)


def test_huge_window_is_memory_bounded(fitted: CBPE) -> None:
    rng = np.random.default_rng(8)
    window = rng.uniform(size=300_000)
    est = (
        CBPE(metrics=("accuracy", "roc_auc"), n_simulations=40, calibration=None)
        .fit(rng.uniform(size=1000) < window[:1000], window[:1000])
        .estimate(window, window >= 0.5)
    )
    assert est["accuracy"].value == pytest.approx(np.maximum(window, 1 - window).mean())
    assert est["accuracy"].std_error is not None and est["accuracy"].std_error < 0.002


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(0.0, 1.0)),
    st.floats(0.05, 0.95),
)
def test_property_estimates_are_probabilities(fitted: CBPE, window: np.ndarray, t: float) -> None:
    cbpe = CBPE(n_simulations=20, calibration=None)
    cbpe.fit([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9])
    for e in cbpe.estimate(window, window >= t).values():
        assert (e.value is None) == (e.reason is not None)
        if e.value is not None:
            assert 0.0 <= e.value <= 1.0 and math.isfinite(e.value)
            assert e.lower is not None and e.upper is not None
            assert 0.0 <= e.lower <= e.value <= e.upper <= 1.0
