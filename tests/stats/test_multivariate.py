"""Multivariate drift: PCA reconstruction error and a domain classifier."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError, SchemaError, StatisticsError
from livemodel.stats.multivariate import (
    DomainClassifierDrift,
    MultivariateDriftResult,
    PCAReconstructionDrift,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Gradient boosting is OpenMP-parallel; on a shared 2-core machine that oversubscribes.
    with threadpool_limits(1):
        yield


def _correlated(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return _correlated(np.random.default_rng(0), 5000, 0.8)


@pytest.fixture(scope="module")
def pca(reference: np.ndarray) -> PCAReconstructionDrift:
    return PCAReconstructionDrift().fit(reference)


# --- PCA reconstruction --------------------------------------------------------------------


def test_correlation_flip_is_caught_though_marginals_are_unchanged(
    reference: np.ndarray, pca: PCAReconstructionDrift
) -> None:
    flipped = _correlated(np.random.default_rng(1), 1000, -0.8)
    for i in range(2):  # univariate tests see nothing
        assert stats.ks_2samp(reference[:, i], flipped[:, i]).pvalue > 0.01
    result = pca.calculate(flipped)
    assert result.drifted
    assert result.statistic > 2 * result.upper
    assert result.n == 1000


def test_same_distribution_is_not_flagged(pca: PCAReconstructionDrift) -> None:
    rng = np.random.default_rng(2)
    results = [pca.calculate(_correlated(rng, 500, 0.8)) for _ in range(40)]
    assert sum(r.drifted for r in results) <= 2  # 3-sigma band: rare false alarms only
    for r in results:
        assert r.lower is not None and r.lower <= pca.reference_error_ <= r.upper


def test_band_scales_with_window_size(pca: PCAReconstructionDrift) -> None:
    rng = np.random.default_rng(3)
    small = pca.calculate(_correlated(rng, 250, 0.8))
    large = pca.calculate(_correlated(rng, 1000, 0.8))
    assert small.lower is not None and large.lower is not None
    assert (large.upper - large.lower) == pytest.approx((small.upper - small.lower) / 2)


def test_reference_error_is_out_of_fold() -> None:
    """In-sample PCA error is optimistic; the reference error must match fresh data's."""
    rng = np.random.default_rng(4)
    cov = np.full((8, 8), 0.3) + 0.7 * np.eye(8)
    det = PCAReconstructionDrift(n_components=3).fit(rng.multivariate_normal(np.zeros(8), cov, 300))
    fresh = [det.calculate(rng.multivariate_normal(np.zeros(8), cov, 300)) for _ in range(20)]
    assert np.mean([r.statistic for r in fresh]) == pytest.approx(det.reference_error_, rel=0.05)


def _mixed(rng: np.random.Generator, n: int, flip: bool = False) -> pd.DataFrame:
    a = rng.normal(size=n)
    b = rng.normal(size=n) + 0.9 * a
    high = (a > 0) != flip
    colour = np.where(high, "red", "blue").astype(object)
    colour[rng.uniform(size=n) < 0.05] = None
    frame = pd.DataFrame(
        {"a": a, "b": b, "colour": colour, "city": rng.choice(list("ABCDEFGHIJKLMNOP"), n)}
    )
    frame.loc[rng.uniform(size=n) < 0.1, "a"] = np.nan
    return frame


def test_mixed_frame_with_categoricals_and_missing_values() -> None:
    rng = np.random.default_rng(5)
    det = PCAReconstructionDrift().fit(_mixed(rng, 4000))
    assert not det.calculate(_mixed(rng, 800)).drifted
    flipped = det.calculate(_mixed(rng, 800, flip=True))  # colour no longer follows a
    assert flipped.drifted and flipped.statistic > flipped.upper
    unseen = _mixed(rng, 800)
    unseen["colour"] = "green"
    unseen["city"] = "Z"
    result = det.calculate(unseen)
    assert math.isfinite(result.statistic) and result.drifted


def test_frame_forms_agree(reference: np.ndarray, pca: PCAReconstructionDrift) -> None:
    window = _correlated(np.random.default_rng(6), 300, 0.8)
    as_array = pca.calculate(window)
    as_dict = pca.calculate({"0": window[:, 0], "1": window[:, 1], "extra": window[:, 0]})
    as_frame = pca.calculate(pd.DataFrame({"0": window[:, 0], "1": window[:, 1]}))
    assert as_array == as_dict == as_frame


def test_deterministic(reference: np.ndarray) -> None:
    a = PCAReconstructionDrift(seed=1).fit(reference[:1000])
    b = PCAReconstructionDrift(seed=1).fit(reference[:1000])
    assert a.calculate(reference[1000:1500]) == b.calculate(reference[1000:1500])


@pytest.mark.parametrize(
    "window",
    [
        {"0": [1.0, 2.0]},
        {"0": ["x", "y"], "1": [1.0, 2.0]},
        {"0": [1.0, 2.0], "1": [1.0]},
        {"0": [1.0, np.inf], "1": [1.0, 2.0]},
        {"0": np.array(["2024-01-01"], dtype="datetime64[D]"), "1": [1.0]},
        {"0": [1 + 2j], "1": [1.0]},
        np.zeros((2, 2, 2)),
        np.zeros(3),
        {},
        42,
        "frame",
    ],
)
def test_bad_window(pca: PCAReconstructionDrift, window: Any) -> None:
    with pytest.raises(InvalidInputError):  # SchemaError is an InvalidInputError
        pca.calculate(window)


def test_missing_column_is_a_schema_error(pca: PCAReconstructionDrift) -> None:
    with pytest.raises(SchemaError):
        pca.calculate({"0": [1.0, 2.0]})


def test_empty_window_and_unfitted(pca: PCAReconstructionDrift) -> None:
    with pytest.raises(StatisticsError):
        pca.calculate(np.zeros((0, 2)))
    with pytest.raises(InvalidInputError):
        PCAReconstructionDrift().calculate(np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("params", "reference", "error"),
    [
        ({}, np.zeros((10, 1)), InvalidInputError),  # one column: nothing to compress
        ({}, np.ones((100, 3)), StatisticsError),  # no variance
        ({}, np.random.default_rng(0).normal(size=(5, 3)), StatisticsError),
        ({"n_components": 0.0}, np.zeros((100, 3)), InvalidInputError),
        ({"n_components": 1.0}, np.zeros((100, 3)), InvalidInputError),
        ({"n_components": True}, np.zeros((100, 3)), InvalidInputError),
        ({"n_components": 5}, np.random.default_rng(0).normal(size=(100, 3)), InvalidInputError),
        ({"n_folds": 1}, np.zeros((100, 3)), InvalidInputError),
        ({"threshold_sigmas": 0.0}, np.zeros((100, 3)), InvalidInputError),
        ({"chunk_size": 80}, np.random.default_rng(0).normal(size=(100, 3)), StatisticsError),
    ],
)
def test_bad_fit(params: dict[str, Any], reference: np.ndarray, error: type[Exception]) -> None:
    with pytest.raises(error):
        PCAReconstructionDrift(**params).fit(reference)


def test_all_missing_numeric_column_and_huge_window() -> None:
    rng = np.random.default_rng(7)
    frame = {"a": rng.normal(size=500), "b": rng.normal(size=500), "gone": np.full(500, np.nan)}
    det = PCAReconstructionDrift().fit(frame)
    big = {
        "a": rng.normal(size=200_000),
        "b": rng.normal(size=200_000),
        "gone": np.full(200_000, np.nan),
    }
    result = det.calculate(big)
    assert math.isfinite(result.statistic) and not result.drifted


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.float64, (60, 3), elements=st.floats(-1e6, 1e6)))
def test_property_result_is_consistent(data: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    det = PCAReconstructionDrift().fit(rng.normal(size=(100, 3)))
    r = det.calculate(data)
    assert math.isfinite(r.statistic) and r.statistic >= 0
    assert r.lower is not None and r.lower <= r.upper
    assert r.drifted == (not r.lower <= r.statistic <= r.upper)


# --- domain classifier --------------------------------------------------------------------


@pytest.fixture(scope="module")
def domain(reference: np.ndarray) -> DomainClassifierDrift:
    with threadpool_limits(1):
        return DomainClassifierDrift(max_rows=1500, max_iter=50).fit(reference)


def test_domain_classifier_same_distribution_is_chance(domain: DomainClassifierDrift) -> None:
    result = domain.calculate(_correlated(np.random.default_rng(8), 1500, 0.8))
    assert abs(result.statistic - 0.5) < 0.05
    assert not result.drifted
    assert result.upper == pytest.approx(0.55 + 3 * math.sqrt(3001 / (12 * 1500 * 1500)))


def test_domain_classifier_shift_is_high(domain: DomainClassifierDrift) -> None:
    flipped = domain.calculate(_correlated(np.random.default_rng(9), 1500, -0.8))
    assert flipped.statistic > 0.8 and flipped.drifted
    shifted = _correlated(np.random.default_rng(10), 1500, 0.8) + np.array([0.7, 0.0])
    assert domain.calculate(shifted).drifted


def test_domain_classifier_subsamples_and_is_seeded(domain: DomainClassifierDrift) -> None:
    window = _correlated(np.random.default_rng(11), 20_000, 0.8)
    first, second = domain.calculate(window), domain.calculate(window)
    assert first == second
    assert first.n == 1500  # bounded cost: at most max_rows from each side


def test_domain_classifier_with_categoricals() -> None:
    rng = np.random.default_rng(12)
    det = DomainClassifierDrift(max_rows=1000, max_iter=50).fit(_mixed(rng, 1000))
    assert not det.calculate(_mixed(rng, 1000)).drifted
    assert det.calculate(_mixed(rng, 1000, flip=True)).drifted


def test_domain_classifier_bad_input(domain: DomainClassifierDrift) -> None:
    with pytest.raises(StatisticsError):
        domain.calculate(np.zeros((3, 2)))
    with pytest.raises(SchemaError):
        domain.calculate({"1": [1.0] * 10})
    with pytest.raises(InvalidInputError):
        DomainClassifierDrift().calculate(np.zeros((10, 2)))
    for params in ({"threshold": 0.4}, {"threshold": 1.0}, {"n_folds": 1}, {"max_rows": 2}):
        with pytest.raises(InvalidInputError):
            DomainClassifierDrift(**params).fit(np.zeros((10, 2)))
    with pytest.raises(StatisticsError):
        DomainClassifierDrift().fit(np.zeros((3, 2)))


def test_result_is_plain_frozen_data() -> None:
    r = MultivariateDriftResult(0.5, None, 0.6, False, 10)
    with pytest.raises(AttributeError):
        r.statistic = 1.0  # type: ignore[misc]


def test_exact_linear_relation_broken_is_caught_without_roundoff_alarms() -> None:
    rng = np.random.default_rng(13)
    a = rng.normal(size=1000)
    det = PCAReconstructionDrift(n_components=1).fit(np.column_stack([a, 2 * a]))
    same = rng.normal(size=300)
    assert not det.calculate(np.column_stack([same, 2 * same])).drifted
    assert det.calculate(np.column_stack([same, -2 * same])).drifted
