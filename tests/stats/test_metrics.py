"""Realized metrics are scikit-learn's values, with honest undefined cases and error bands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.metrics import MetricValue, realized_metrics


def _binary_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.uniform(size=n)
    y = (rng.uniform(size=n) < proba).astype(int)
    return y, proba


def test_binary_matches_sklearn_with_string_labels() -> None:
    y, proba = _binary_data()
    labels = np.array(["neg", "pos"])[y]
    pred = (proba >= 0.3).astype(int)
    out = realized_metrics(
        "binary", labels, np.array(["neg", "pos"])[pred], proba, classes=["neg", "pos"]
    )
    assert out["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert out["precision"].value == pytest.approx(skm.precision_score(y, pred))
    assert out["recall"].value == pytest.approx(skm.recall_score(y, pred))
    assert out["f1"].value == pytest.approx(skm.f1_score(y, pred))
    assert out["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba))
    assert out["log_loss"].value == pytest.approx(skm.log_loss(y, proba))
    assert all(m.n == y.size for m in out.values())


def test_binary_labels_derived_from_proba_with_threshold() -> None:
    y, proba = _binary_data()
    out = realized_metrics("binary", y, y_proba=proba, threshold=0.7)
    assert out["precision"].value == pytest.approx(skm.precision_score(y, proba >= 0.7))
    two_col = realized_metrics("binary", y, y_proba=np.column_stack([1 - proba, proba]))
    assert two_col["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_multiclass_matches_sklearn(average: str) -> None:
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1.0, 2.0, 3.0], size=500)
    y = np.array([rng.choice(3, p=row) for row in proba])
    pred = proba.argmax(axis=1)
    out = realized_metrics("multiclass", y, y_proba=proba, average=average, n_bootstrap=20)  # type: ignore[arg-type]
    assert out["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert out[name].value == pytest.approx(fn(y, pred, average=average))
    if average == "micro":
        onehot = np.eye(3)[y]
        expected_auc = skm.roc_auc_score(onehot, proba, average="micro")
    else:
        expected_auc = skm.roc_auc_score(y, proba, multi_class="ovr", average=average)
    assert out["roc_auc"].value == pytest.approx(expected_auc)
    assert out["log_loss"].value == pytest.approx(skm.log_loss(y, proba))


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 2, 300)
    yhat = y + rng.normal(0, 1, 300)
    out = realized_metrics("regression", y, yhat)
    assert out["mae"].value == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert out["rmse"].value == pytest.approx(math.sqrt(skm.mean_squared_error(y, yhat)))
    assert out["mape"].value == pytest.approx(skm.mean_absolute_percentage_error(y, yhat))
    err = np.abs(y - yhat)
    assert out["mae"].std_error == pytest.approx(err.std(ddof=1) / math.sqrt(300))


def test_metric_selection_and_defaults() -> None:
    y, proba = _binary_data()
    assert set(realized_metrics("binary", y, y_pred=proba > 0.5)) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
    }
    assert set(realized_metrics("binary", y, y_proba=proba, metrics=["roc_auc"])) == {"roc_auc"}
    assert set(realized_metrics("regression", [1.0, 2.0], [1.0, 2.0], metrics="mae")) == {"mae"}


# --- sampling-error bands ------------------------------------------------------------


def test_accuracy_std_error_is_binomial_closed_form() -> None:
    y, proba = _binary_data()
    acc = realized_metrics("binary", y, y_proba=proba)["accuracy"]
    assert acc.value is not None
    assert acc.std_error == pytest.approx(math.sqrt(acc.value * (1 - acc.value) / y.size))


_SKLEARN_BINARY = {
    "roc_auc": skm.roc_auc_score,
    "f1": lambda y, p: skm.f1_score(y, p >= 0.5),
    "log_loss": skm.log_loss,
    "recall": lambda y, p: skm.recall_score(y, p >= 0.5),
}


@pytest.mark.parametrize("metric", sorted(_SKLEARN_BINARY))
def test_std_error_matches_spread_over_independent_samples(metric: str) -> None:
    """The reported standard error matches the spread of sklearn's metric over fresh samples."""
    spread = np.std(
        [_SKLEARN_BINARY[metric](*_binary_data(n=300, seed=s)) for s in range(1000, 1500)], ddof=1
    )
    errors = []
    for seed in range(6):
        y, proba = _binary_data(n=300, seed=seed)
        m = realized_metrics("binary", y, y_proba=proba, metrics=[metric], n_bootstrap=80)[metric]
        assert m.value is not None and m.std_error is not None
        errors.append(m.std_error)
    assert np.mean(errors) == pytest.approx(spread, rel=0.2)


def test_bootstrap_is_seeded() -> None:
    y, proba = _binary_data()
    a = realized_metrics("binary", y, y_proba=proba, metrics=["f1"], seed=3, n_bootstrap=30)["f1"]
    b = realized_metrics("binary", y, y_proba=proba, metrics=["f1"], seed=3, n_bootstrap=30)["f1"]
    c = realized_metrics("binary", y, y_proba=proba, metrics=["f1"], seed=4, n_bootstrap=30)["f1"]
    assert a == b
    assert a.std_error != c.std_error


# --- undefined metrics: None with a reason, never NaN ---------------------------------


def test_single_class_auc_is_none_with_reason() -> None:
    out = realized_metrics("binary", [1, 1, 1], y_proba=[0.2, 0.6, 0.9])
    assert out["roc_auc"] == MetricValue(None, 3, out["roc_auc"].reason)
    assert out["roc_auc"].reason and "one class" in out["roc_auc"].reason
    assert out["log_loss"].value == pytest.approx(
        skm.log_loss([1, 1, 1], [0.2, 0.6, 0.9], labels=[0, 1])
    )


def test_binary_precision_and_recall_undefined() -> None:
    out = realized_metrics("binary", [0, 0, 1], y_pred=[0, 0, 0])
    assert out["precision"].value is None and out["precision"].reason
    assert out["recall"].value == 0.0
    none = realized_metrics("binary", [0, 0], y_pred=[0, 0])
    assert none["recall"].value is None and none["f1"].value is None
    assert none["accuracy"].value == 1.0


def test_multiclass_absent_class() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    out = realized_metrics("multiclass", [0, 1, 0], y_proba=proba, classes=[0, 1, 2])
    assert out["roc_auc"].value is None and out["roc_auc"].reason
    # class 2 is never predicted nor present: left out of the macro average, as sklearn does
    assert out["precision"].value == pytest.approx(
        skm.precision_score(
            [0, 1, 0], [0, 1, 0], labels=[0, 1, 2], average="macro", zero_division=np.nan
        )
    )


def test_mape_with_zero_target_and_overflow() -> None:
    out = realized_metrics("regression", [0.0, 1.0], [1.0, 1.0])
    assert out["mape"].value is None and out["mape"].reason
    huge = realized_metrics("regression", [1e308, -1e308], [-1e308, 1e308])
    for m in huge.values():
        assert m.value is None or math.isfinite(m.value)
    assert huge["rmse"].value is None


# --- malformed, missing, empty, huge, hostile input ----------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"y_true": [0, 1], "y_pred": [0, 1, 1]}, InvalidInputError),
        ({"y_true": [0, 1], "y_proba": [0.1]}, InvalidInputError),
        ({"y_true": [], "y_pred": []}, StatisticsError),
        ({"y_true": [0, np.nan], "y_pred": [0, 1]}, InvalidInputError),
        ({"y_true": [0, None], "y_pred": [0, 1]}, InvalidInputError),
        ({"y_true": ["a", 1], "y_pred": [0, 1]}, InvalidInputError),
        ({"y_true": [0, 2], "y_pred": [0, 1], "classes": [0, 1]}, InvalidInputError),
        ({"y_true": ["0", "1"], "y_pred": [0, 1], "classes": [0, 1]}, InvalidInputError),
        ({"y_true": [0, 1, 2], "y_pred": [0, 1, 2]}, InvalidInputError),
        ({"y_true": [[0, 1]], "y_pred": [[0, 1]]}, InvalidInputError),
        ({"y_true": [0, 1], "y_proba": [0.1, np.nan]}, InvalidInputError),
        ({"y_true": [0, 1], "y_proba": [0.1, 1.5]}, InvalidInputError),
        ({"y_true": [0, 1], "y_proba": ["a", "b"]}, InvalidInputError),
        ({"y_true": [0, 1], "y_proba": [[0.1, 0.2], [0.5, 0.5]]}, InvalidInputError),
        ({"y_true": [0, 1]}, InvalidInputError),
        ({"y_true": [0, 1], "y_pred": [0, 1], "metrics": ["roc_auc"]}, InvalidInputError),
        ({"y_true": [0, 1], "y_pred": [0, 1], "metrics": ["bogus"]}, InvalidInputError),
        ({"y_true": [0, 1], "y_pred": [0, 1], "classes": [0, 0]}, InvalidInputError),
        ({"y_true": [0, 1], "y_pred": [0, 1], "threshold": 1.5}, InvalidInputError),
        ({"y_true": [0, 1], "y_pred": [0, 1], "average": "samples"}, InvalidInputError),
        ({"y_true": [{"x": 1}, {"x": 2}], "y_pred": [0, 1]}, InvalidInputError),
        ({"y_true": [5, 5], "y_pred": [5, 5]}, InvalidInputError),
    ],
)
def test_bad_binary_input(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        realized_metrics("binary", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"y_true": [0, 1, 2], "y_proba": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]},
        {"y_true": [0, 1], "y_proba": [[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]},
        {"y_true": [0, 0], "y_pred": [0, 0]},
    ],
)
def test_bad_multiclass_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        realized_metrics("multiclass", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"y_true": [1.0, 2.0]},
        {"y_true": [1.0, 2.0], "y_pred": [1.0]},
        {"y_true": [1.0, np.inf], "y_pred": [1.0, 2.0]},
        {"y_true": [1.0, 2.0], "y_pred": [1.0, None]},
        {"y_true": ["a", "b"], "y_pred": [1.0, 2.0]},
        {"y_true": [1.0, 2.0], "y_pred": [1.0, 2.0], "classes": [0, 1]},
        {"y_true": [1.0, 2.0], "y_pred": [1.0, 2.0], "y_proba": [0.1, 0.2]},
        {"y_true": [1.0, 2.0], "y_pred": [1.0, 2.0], "metrics": ["accuracy"]},
    ],
)
def test_bad_regression_input(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        realized_metrics("regression", **kwargs)  # type: ignore[arg-type]


def test_unknown_task_and_empty_regression() -> None:
    with pytest.raises(InvalidInputError):
        realized_metrics("ranking", [1], [1])  # type: ignore[arg-type]
    with pytest.raises(StatisticsError):
        realized_metrics("regression", [], [])


def test_huge_input_and_bool_labels() -> None:
    y, proba = _binary_data(n=200_000, seed=5)
    out = realized_metrics("binary", y.astype(bool), y_proba=proba, metrics=["accuracy", "roc_auc"])
    assert out["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba))
    assert out["roc_auc"].std_error is not None and out["roc_auc"].std_error < 0.01


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=40),
    st.floats(0.05, 0.95),
)
def test_property_binary_values_are_sklearns_or_none(
    rows: list[tuple[bool, float]], threshold: float
) -> None:
    y = np.array([r[0] for r in rows], dtype=int)
    proba = np.array([r[1] for r in rows])
    out = realized_metrics("binary", y, y_proba=proba, threshold=threshold, n_bootstrap=5)
    pred = (proba >= threshold).astype(int)
    assert out["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    for m in out.values():
        assert (m.value is None) == (m.reason is not None)
        assert m.value is None or math.isfinite(m.value)
        assert m.std_error is None or (math.isfinite(m.std_error) and m.std_error >= 0)
    if len(set(y.tolist())) == 2:
        assert out["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba))
    else:
        assert out["roc_auc"].value is None
