"""Drift statistics against scipy and closed forms; the profile-based verdict."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from datasketches import kll_doubles_sketch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import spatial, stats

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.drift import (
    ColumnDrift,
    DriftConfig,
    chi2_test,
    compare_profiles,
    jensen_shannon,
    ks_test,
    psi,
    wasserstein,
)
from livemodel.stats.profile import NumericColumnProfile, Profile, ProfileSpec
from livemodel.stats.sketch import kll_distances

samples = st.lists(
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, np.nan])),
    min_size=1,
    max_size=60,
).filter(lambda xs: not all(np.isnan(xs)))
counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)


def count_pairs() -> st.SearchStrategy[tuple[list[int], list[int]]]:
    return st.integers(2, 12).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, 1000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
            st.lists(st.integers(0, 1000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0),
        )
    )


def clean(xs: list[float]) -> np.ndarray:
    arr = np.asarray(xs, dtype=float)
    kept: np.ndarray = arr[~np.isnan(arr)]
    return kept


# -- exact functions agree with scipy ----------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(samples, samples)
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
def test_ks_matches_scipy(a: list[float], b: list[float]) -> None:
    expected = stats.ks_2samp(clean(a), clean(b))
    result = ks_test(a, b)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_wasserstein_matches_scipy(a: list[float], b: list[float]) -> None:
    expected = stats.wasserstein_distance(clean(a), clean(b))
    assert wasserstein(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(count_pairs())
def test_chi2_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    ref, cur = pair
    table = np.array([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    result = chi2_test(ref, cur)
    if table.shape[1] < 2:
        assert (result.statistic, result.p_value) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(count_pairs(), st.sampled_from([2.0, np.e, 10.0]))
def test_jensen_shannon_matches_scipy(pair: tuple[list[int], list[int]], base: float) -> None:
    ref, cur = pair
    expected = spatial.distance.jensenshannon(ref, cur, base=base)
    assert jensen_shannon(ref, cur, base=base) == pytest.approx(expected, abs=1e-9)


def test_psi_closed_form() -> None:
    ref, cur = np.array([50, 30, 20]), np.array([40, 40, 20])
    r, c = ref / 100, cur / 100
    assert psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)), rel=1e-12)
    assert psi(ref, ref * 7) == 0.0
    # an empty bucket is floored at 1e-4 instead of giving infinity
    expected = (0.5 - 1e-4) * np.log(0.5 / 1e-4) + (0.5 - 1.0) * np.log(0.5 / 1.0)
    assert psi([0, 10], [5, 5]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: ks_test([], [1.0]), StatisticsError),
        (lambda: ks_test([np.nan], [1.0]), StatisticsError),
        (lambda: ks_test([[1.0, 2.0]], [1.0]), InvalidInputError),
        (lambda: ks_test(["a"], [1.0]), InvalidInputError),
        (lambda: wasserstein([1.0, np.inf], [1.0]), StatisticsError),
        (lambda: wasserstein(object(), [1.0]), InvalidInputError),
        (lambda: chi2_test([0, 0], [1, 2]), StatisticsError),
        (lambda: chi2_test([1, 2], [1, 2, 3]), InvalidInputError),
        (lambda: chi2_test([1, -2], [1, 2]), InvalidInputError),
        (lambda: chi2_test([1, np.nan], [1, 2]), InvalidInputError),
        (lambda: psi([], []), InvalidInputError),
        (lambda: psi([[1, 2]], [[1, 2]]), InvalidInputError),
        (lambda: jensen_shannon([1, 2], [1, 2], base=1.0), InvalidInputError),
        (lambda: jensen_shannon(["x"], [1]), InvalidInputError),
    ],
)
def test_exact_functions_reject_bad_input(call: Callable[[], Any], error: type) -> None:
    with pytest.raises(error):
        call()


def test_single_values_give_defined_drift() -> None:
    one = pd.DataFrame({"x": [1.0]})
    report = compare_profiles(*profiles(one, pd.DataFrame({"x": [2.0]})))
    ks = by_method(report, "x")["ks"]
    assert ks.statistic == 1.0 and ks.p_value is not None and 0.0 <= ks.p_value <= 1.0
    json.dumps(report.to_dict(), allow_nan=False)


def test_huge_samples_are_fine() -> None:
    assert wasserstein([1e300, -1e300], [1e300, -1e300]) == 0.0
    assert ks_test([1e308, -1e308, np.inf], [0.0]).statistic == pytest.approx(2 / 3)


# -- profile-based statistics ------------------------------------------------------------
def profiles(ref: pd.DataFrame, cur: pd.DataFrame, **kwargs: Any) -> tuple[Profile, Profile]:
    spec = ProfileSpec.from_reference(ref, **kwargs)
    return Profile.empty(spec).update(ref), Profile.empty(spec).update(cur)


def by_method(report: Any, column: str) -> dict[str, ColumnDrift]:
    return {r.method: r for r in report.for_column(column)}


def test_profile_statistics_are_exact_for_small_samples() -> None:
    # Below k=200 values a KLL sketch holds its data exactly, so every number is exact.
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=150), "c": rng.choice(list("abcd"), 150)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1.2, size=120), "c": rng.choice(list("abcde"), 120)})
    ref_p, cur_p = profiles(ref, cur, bins=5)
    report = compare_profiles(ref_p, cur_p, DriftConfig(correction="none"))
    x = by_method(report, "x")
    expected = stats.ks_2samp(ref["x"], cur["x"], method="asymp")
    assert x["ks"].statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert x["ks"].p_value == pytest.approx(expected.pvalue, abs=1e-9)
    w = trimmed_wasserstein(ref["x"].to_numpy(), cur["x"].to_numpy(), 0.01)
    assert x["wasserstein"].statistic == pytest.approx(w / ref["x"].std(ddof=1), rel=1e-9)
    ref_hist = _histogram(ref_p, "x")
    cur_hist = _histogram(cur_p, "x")
    assert x["psi"].statistic == pytest.approx(psi(ref_hist, cur_hist), rel=1e-12)
    js = spatial.distance.jensenshannon(ref_hist, cur_hist, base=2)
    assert x["jensen_shannon"].statistic == pytest.approx(js, abs=1e-9)
    c = by_method(report, "c")
    table = pd.crosstab(
        np.r_[np.zeros(150), np.ones(120)],
        np.r_[ref["c"], cur["c"].where(cur["c"] != "e", "other")],
    ).to_numpy()
    expected_chi2 = stats.chi2_contingency(table, correction=False)
    assert c["chi2"].statistic == pytest.approx(expected_chi2.statistic, rel=1e-9)
    assert c["chi2"].p_value == pytest.approx(expected_chi2.pvalue, rel=1e-9)
    assert (c["chi2"].n_reference, c["chi2"].n_current) == (150, 120)


def _histogram(profile: Profile, name: str) -> np.ndarray:
    col = profile.columns[name]
    assert isinstance(col, NumericColumnProfile)
    return col.histogram


def test_sketch_ks_is_within_rank_error_at_scale() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"x": rng.lognormal(size=200_000)})
    cur = pd.DataFrame({"x": rng.lognormal(0.05, 1.0, size=300_000)})
    report = compare_profiles(*profiles(ref, cur))
    ks = by_method(report, "x")["ks"]
    exact = stats.ks_2samp(ref["x"], cur["x"]).statistic
    col = profiles(ref, cur)[0].columns["x"]
    assert isinstance(col, NumericColumnProfile)
    eps = col.sketch.normalized_rank_error(False)
    assert ks.statistic is not None and abs(ks.statistic - exact) <= 2 * eps
    # The sketch's rank error, integrated over a long tail, is what limits the
    # Wasserstein distance; trimming 1% at each end keeps it small (the default
    # threshold is 0.1).
    for a, b in ((ref, cur), (ref.transform(np.log), cur.transform(np.log))):
        w = trimmed_wasserstein(a["x"].to_numpy(), b["x"].to_numpy(), 0.01)
        got = by_method(compare_profiles(*profiles(a, b)), "x")["wasserstein"].statistic
        assert got is not None and abs(got - w / a["x"].std(ddof=1)) < 0.04


def trimmed_wasserstein(a: np.ndarray, b: np.ndarray, alpha: float) -> float:
    """Mean |Q_a(p) - Q_b(p)| over alpha <= p <= 1 - alpha for empirical quantiles."""
    a, b = np.sort(a), np.sort(b)
    steps = np.union1d(np.arange(1, a.size) / a.size, np.arange(1, b.size) / b.size)
    steps = steps[(steps > alpha) & (steps < 1 - alpha)]
    grid = np.concatenate([[alpha], steps, [1 - alpha]])
    mids = (grid[:-1] + grid[1:]) / 2  # both quantile functions are constant in between
    qa = a[np.ceil(mids * a.size).astype(int) - 1]
    qb = b[np.ceil(mids * b.size).astype(int) - 1]
    return float(np.sum(np.abs(qa - qb) * np.diff(grid)) / (1 - 2 * alpha))


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_sketch_distances_are_exact_below_k(a: list[float], b: list[float]) -> None:
    ca, cb = clean(a), clean(b)
    sa, sb = kll_doubles_sketch(200), kll_doubles_sketch(200)
    sa.update(ca.copy())
    sb.update(cb.copy())
    ks, w = kll_distances(sa, sb)
    points = np.concatenate([ca, cb])
    ecdf_a = np.searchsorted(np.sort(ca), points, side="right") / ca.size
    ecdf_b = np.searchsorted(np.sort(cb), points, side="right") / cb.size
    assert ks == pytest.approx(np.abs(ecdf_a - ecdf_b).max(), abs=1e-12)
    expected = stats.wasserstein_distance(ca, cb)
    assert w == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert trimmed_wasserstein(ca, cb, 0.0) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    _, w_trim = kll_distances(sa, sb, trim=0.1)
    assert w_trim == pytest.approx(trimmed_wasserstein(ca, cb, 0.1), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("correction", ["bonferroni", "holm", "fdr_bh", "none"])
def test_multiple_testing_correction(correction: str) -> None:
    rng = np.random.default_rng(11)
    n = 150
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.1 * i, 1.0, size=n) for i in range(6)})
    config = DriftConfig(correction=correction, numeric_methods=("ks",))  # type: ignore[arg-type]
    report = compare_profiles(*profiles(ref, cur), config)
    raw = np.array([r.raw_p_value for r in report.results], dtype=float)
    adjusted = np.array([r.p_value for r in report.results], dtype=float)
    if correction == "bonferroni":
        expected = np.minimum(raw * raw.size, 1.0)
    elif correction == "holm":
        order = np.argsort(raw)
        expected = np.empty_like(raw)
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, raw[i] * (raw.size - rank)))
            expected[i] = running
    elif correction == "fdr_bh":
        expected = stats.false_discovery_control(raw, method="bh")
    else:
        expected = raw
    np.testing.assert_allclose(adjusted, expected, rtol=1e-12)
    for r in report.results:
        assert r.drifted == (r.p_value is not None and r.p_value < 0.05)


# -- undefined cases -----------------------------------------------------------------------
def test_empty_window_all_missing_and_constant_columns() -> None:
    ref = pd.DataFrame(
        {
            "x": np.arange(300.0),
            "null": np.full(300, np.nan),
            "const": np.full(300, 4.0),
            "c": ["a", "b", "c"] * 100,
        }
    )
    ref_p = Profile.empty(ProfileSpec.from_reference(ref)).update(ref)
    empty = Profile.empty(ref_p.spec)
    report = compare_profiles(ref_p, empty)
    for r in report.results:
        assert r.statistic is None and r.p_value is None and not r.drifted
        assert r.reason == (
            "reference has no non-missing values"
            if r.column == "null"
            else "current window has no non-missing values"
        )
    assert report.drifted_columns == ()
    assert all(v.reason for v in report.verdicts.values())
    json.dumps(report.to_dict(), allow_nan=False)

    same = compare_profiles(ref_p, Profile.empty(ref_p.spec).update(ref))
    const = by_method(same, "const")
    assert const["ks"].statistic == 0.0 and const["ks"].raw_p_value == 1.0
    assert const["wasserstein"].statistic is None
    assert const["wasserstein"].reason == "reference has no spread"
    assert const["psi"].statistic == 0.0
    assert not same.verdicts["const"].drifted and same.drifted_columns == ()

    moved = ref.assign(const=5.0)
    report = compare_profiles(ref_p, Profile.empty(ref_p.spec).update(moved))
    assert by_method(report, "const")["ks"].statistic == 1.0
    assert report.verdicts["const"].drifted  # PSI sees the jump although W is undefined
    json.dumps(report.to_dict(), allow_nan=False)


def test_compare_rejects_mismatched_inputs() -> None:
    a, _ = profiles(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [1.0]}))
    b, _ = profiles(pd.DataFrame({"x": [1.0, 3.0]}), pd.DataFrame({"x": [1.0]}))
    with pytest.raises(InvalidInputError):
        compare_profiles(a, b)
    with pytest.raises(InvalidInputError):
        compare_profiles(a, "b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"alpha": 1.5},
        {"correction": "magic"},
        {"numeric_methods": ("chi2",)},
        {"categorical_methods": ("ks",)},
        {"numeric_methods": ["ks"]},
        {"psi_threshold": -1.0},
        {"wasserstein_threshold": float("nan")},
        {"thresholds": {("x", "ks"): 0.1}},
        {"thresholds": {"x": 0.1}},
        {"thresholds": {("x", "psi"): "big"}},
        {"thresholds": {("x", "psi"): float("inf")}},
    ],
)
def test_drift_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        DriftConfig(**kwargs)


def test_config_thresholds_override_defaults() -> None:
    config = DriftConfig(thresholds={("x", "psi"): 0.5})
    assert config.threshold("x", "psi") == 0.5
    assert config.threshold("y", "psi") == 0.1
    assert config.threshold("x", "wasserstein") == 0.1
    json.dumps(config.to_dict(), allow_nan=False)


def test_verdict_needs_significance_and_effect() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=100_000)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1.0, size=100_000)})  # real but trivial
    report = compare_profiles(*profiles(ref, cur))
    verdict = report.verdicts["x"]
    assert verdict.significant and verdict.effect_exceeded is False and not verdict.drifted
    only_test = DriftConfig(numeric_methods=("ks",))
    assert compare_profiles(*profiles(ref, cur), only_test).verdicts["x"].drifted


# -- the headline scenario -----------------------------------------------------------------
def check_scenario(
    make_drift_frame: Callable[..., pd.DataFrame], shifted: tuple[str, ...], n_current: int
) -> None:
    reference = make_drift_frame(100_000, 1)
    spec = ProfileSpec.from_reference(reference)
    ref_profile = Profile.empty(spec).update(reference)
    same = Profile.empty(spec).update(make_drift_frame(n_current, 2))
    assert compare_profiles(ref_profile, same).drifted_columns == ()
    moved = Profile.empty(spec).update(make_drift_frame(n_current, 3, shifted=True))
    report = compare_profiles(ref_profile, moved)
    assert set(report.drifted_columns) == set(shifted)
    json.dumps(report.to_dict(), allow_nan=False)


def test_flags_exactly_the_shifted_columns(make_drift_frame: Any, shifted_columns: Any) -> None:
    check_scenario(make_drift_frame, shifted_columns, 100_000)


@pytest.mark.slow
def test_flags_exactly_the_shifted_columns_in_a_large_window(
    make_drift_frame: Any, shifted_columns: Any
) -> None:
    check_scenario(make_drift_frame, shifted_columns, 1_000_000)
