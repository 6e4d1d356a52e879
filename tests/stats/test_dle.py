"""DLE: estimated regression loss tracks scikit-learn's realized loss under covariate shift."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.dle import DLE

REL_TOLERANCE = 0.10  # stated bound on |estimated / realized - 1|


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The nanny is OpenMP-parallel; on a shared 2-core machine oversubscription is slow.
    with threadpool_limits(1):
        yield


def _sample(rng: np.random.Generator, n: int, mean: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Heteroscedastic truth: the noise grows with |x0|, so shifting x0 raises the loss."""
    x = np.column_stack([rng.normal(mean, 1.0, n), rng.normal(0.0, 1.0, n)])
    sigma = 0.3 + 0.7 * np.abs(x[:, 0])
    y = 2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 0] * x[:, 1] + sigma * rng.normal(size=n)
    return x, y


@pytest.fixture(scope="module")
def setup() -> tuple[LinearRegression, DLE, np.random.Generator, float]:
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        model = LinearRegression().fit(*_sample(rng, 3000))
        x_ref, y_ref = _sample(rng, 5000)
        pred_ref = model.predict(x_ref)
        dle = DLE(metrics=("mae", "rmse", "mse")).fit(x_ref, y_ref, pred_ref)
    return model, dle, rng, skm.mean_absolute_error(y_ref, pred_ref)


@pytest.mark.parametrize("shift", [0.0, 0.75, 1.25])
def test_estimated_loss_tracks_realized_under_shift_into_noise(
    setup: tuple[LinearRegression, DLE, np.random.Generator, float], shift: float
) -> None:
    model, dle, rng, mae_ref = setup
    x, y = _sample(rng, 2000, shift)
    pred = model.predict(x)
    est = dle.estimate(x, pred)
    realized = {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": skm.root_mean_squared_error(y, pred),
        "mse": skm.mean_squared_error(y, pred),
    }
    for metric, truth in realized.items():
        value = est[metric].value
        assert value is not None
        tol = REL_TOLERANCE * (2 if metric == "mse" else 1)  # MSE: twice RMSE's relative error
        assert abs(value / truth - 1) <= tol, (metric, value, truth)
    if shift >= 1.0:
        # the shift made the model clearly worse, and the estimate followed it
        assert realized["mae"] > 1.3 * mae_ref
        assert abs(est["mae"].value - realized["mae"]) < abs(mae_ref - realized["mae"]) / 3


def test_band_is_the_sampling_error_of_the_realized_metric(
    setup: tuple[LinearRegression, DLE, np.random.Generator, float],
) -> None:
    """Over windows from one distribution, the realized MAE/RMSE spread matches std_error."""
    model, dle, rng, _ = setup
    realized: dict[str, list[float]] = {"mae": [], "rmse": []}
    errors: dict[str, list[float]] = {"mae": [], "rmse": []}
    for _ in range(60):
        x, y = _sample(rng, 500, 0.5)
        pred = model.predict(x)
        est = dle.estimate(x, pred)
        realized["mae"].append(skm.mean_absolute_error(y, pred))
        realized["rmse"].append(skm.root_mean_squared_error(y, pred))
        for m, ses in errors.items():
            se = est[m].std_error
            assert se is not None
            ses.append(se)
    for m, ses in errors.items():
        assert np.mean(ses) == pytest.approx(np.std(realized[m], ddof=1), rel=0.3), m


def test_band_widens_with_noise_and_shrinks_with_size(
    setup: tuple[LinearRegression, DLE, np.random.Generator, float],
) -> None:
    model, dle, rng, _ = setup
    calm_x, _ = _sample(rng, 1000, 0.0)
    noisy_x, _ = _sample(rng, 1000, 1.5)
    big_x, _ = _sample(rng, 4000, 0.0)
    se = {
        name: dle.estimate(x, model.predict(x))["mae"].std_error
        for name, x in (("calm", calm_x), ("noisy", noisy_x), ("big", big_x))
    }
    assert se["noisy"] > se["calm"] > se["big"]  # type: ignore[operator]
    assert se["big"] == pytest.approx(se["calm"] / 2, rel=0.15)  # type: ignore[operator]
    est = dle.estimate(calm_x, model.predict(calm_x))["mae"]
    assert est.lower is not None and est.upper is not None and est.value is not None
    assert est.lower == pytest.approx(est.value - 3 * est.std_error)  # type: ignore[operator]


def test_seeded_and_deterministic() -> None:
    rng = np.random.default_rng(1)
    x, y = _sample(rng, 800)
    a = DLE(seed=3).fit(x, y, y * 0.9).estimate(x[:100], y[:100] * 0.9)
    b = DLE(seed=3).fit(x, y, y * 0.9).estimate(x[:100], y[:100] * 0.9)
    assert a == b


def test_missing_feature_values_are_handled_by_the_nanny() -> None:
    rng = np.random.default_rng(2)
    x, y = _sample(rng, 1000)
    x[::7, 1] = np.nan
    est = DLE().fit(x, y, 2 * np.nan_to_num(x[:, 0])).estimate(x[:50], 2 * x[:50, 0])
    assert all(e.value is not None and math.isfinite(e.value) for e in est.values())


def test_perfect_model_estimates_zero_loss() -> None:
    x = np.arange(200, dtype=float).reshape(-1, 1)
    est = DLE().fit(x, x[:, 0], x[:, 0]).estimate(x[:10], x[:10, 0])
    for e in est.values():
        assert e.value == pytest.approx(0.0, abs=1e-12)
        assert e.lower == 0.0


# --- malformed, missing, empty, huge and hostile input ---------------------------------


@pytest.fixture(scope="module")
def fitted() -> DLE:
    rng = np.random.default_rng(4)
    x, y = _sample(rng, 300)
    with threadpool_limits(1):
        return DLE(max_iter=20).fit(x, y, 2 * x[:, 0])


@pytest.mark.parametrize(
    ("x", "pred"),
    [
        (np.zeros((3, 2)), [1.0, 2.0]),
        (np.zeros((2, 3)), [1.0, 2.0]),
        (np.zeros((2, 2, 2)), [1.0, 2.0]),
        ([["a", "b"], ["c", "d"]], [1.0, 2.0]),
        ([[np.inf, 0.0], [0.0, 0.0]], [1.0, 2.0]),
        (np.zeros((2, 2)), [1.0, np.nan]),
        (np.zeros((2, 2)), [1.0, None]),
        (np.zeros((2, 2)), "ab"),
    ],
)
def test_bad_window(fitted: DLE, x: Any, pred: Any) -> None:
    with pytest.raises(InvalidInputError):
        fitted.estimate(x, pred)


def test_empty_window_and_unfitted(fitted: DLE) -> None:
    with pytest.raises(StatisticsError):
        fitted.estimate(np.zeros((0, 2)), [])
    with pytest.raises(InvalidInputError):
        DLE().estimate(np.zeros((1, 2)), [0.0])


@pytest.mark.parametrize(
    ("params", "x", "y", "pred", "error"),
    [
        ({}, np.zeros((0, 1)), [], [], StatisticsError),
        ({}, np.zeros((1, 1)), [1.0], [1.0], StatisticsError),
        ({}, np.zeros((3, 1)), [1.0, 2.0], [1.0, 2.0], InvalidInputError),
        ({}, np.zeros((2, 1)), [1.0, np.nan], [1.0, 2.0], InvalidInputError),
        ({}, np.zeros((2, 1)), [1e200, -1e200], [-1e200, 1e200], InvalidInputError),
        ({"metrics": ("r2",)}, np.zeros((2, 1)), [1.0, 2.0], [1.0, 2.0], InvalidInputError),
        ({"metrics": "mae"}, np.zeros((2, 1)), [1.0, 2.0], [1.0, 2.0], InvalidInputError),
        ({"band_sigmas": 0.0}, np.zeros((2, 1)), [1.0, 2.0], [1.0, 2.0], InvalidInputError),
        ({"max_iter": 0}, np.zeros((2, 1)), [1.0, 2.0], [1.0, 2.0], InvalidInputError),
    ],
)
def test_bad_fit(params: dict[str, Any], x: Any, y: Any, pred: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        DLE(**params).fit(x, y, pred)


def test_huge_window(fitted: DLE) -> None:
    rng = np.random.default_rng(5)
    x, _ = _sample(rng, 300_000)
    est = fitted.estimate(x, 2 * x[:, 0])
    assert est["mae"].std_error is not None and est["mae"].std_error < 0.01
