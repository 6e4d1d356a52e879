"""Thresholds learned from the reference's chunk-to-reference noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from livemodel.errors import InvalidInputError
from livemodel.stats.drift import DriftConfig, compare_profiles
from livemodel.stats.profile import Profile, ProfileSpec
from livemodel.stats.thresholds import fit_thresholds


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2]) if shift == 0 else np.array([0.3, 0.3, 0.4])
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "skewed": rng.exponential(1.0 + shift, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=weights),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(60_000, 0)


@pytest.fixture(scope="module")
def spec(reference: pd.DataFrame) -> ProfileSpec:
    return ProfileSpec.from_reference(reference)


def test_keys_cover_every_effect_method(reference: pd.DataFrame, spec: ProfileSpec) -> None:
    learned = fit_thresholds(reference, spec, chunk_size=6000)
    assert set(learned) == {
        ("normal", "wasserstein"), ("normal", "psi"), ("normal", "jensen_shannon"),
        ("skewed", "wasserstein"), ("skewed", "psi"), ("skewed", "jensen_shannon"),
        ("colour", "psi"), ("colour", "jensen_shannon"),
    }  # fmt: skip
    assert all(np.isfinite(v) and v > 0 for v in learned.values())
    only = fit_thresholds(reference, spec, chunk_size=6000, methods=["psi"])
    assert set(only) == {("normal", "psi"), ("skewed", "psi"), ("colour", "psi")}


def test_mean_psi_matches_its_sampling_expectation(
    reference: pd.DataFrame, spec: ProfileSpec
) -> None:
    # For a chunk of m rows drawn from a reference of n rows (the chunk is part of it),
    # PSI is close to chi2 / m with B - 1 degrees of freedom shrunk by (1 - m/n):
    # E[PSI] ~ (B - 1) (1/m - 1/n), with B = 20 occupied histogram bins.
    m, n = 2000, len(reference)
    learned = fit_thresholds(
        reference, spec, chunk_size=m, rule="std", std_multiplier=0.0, methods=["psi"]
    )
    expected = 19 * (1 / m - 1 / n)
    assert learned[("normal", "psi")] == pytest.approx(expected, rel=0.25)
    assert learned[("skewed", "psi")] == pytest.approx(expected, rel=0.25)
    colour = 2 * (1 / m - 1 / n)  # three categories
    assert learned[("colour", "psi")] == pytest.approx(colour, rel=0.5)


def test_smaller_chunks_are_noisier(reference: pd.DataFrame, spec: ProfileSpec) -> None:
    small = fit_thresholds(reference, spec, chunk_size=1000)
    large = fit_thresholds(reference, spec, chunk_size=10_000)
    assert all(small[key] > large[key] for key in large)


def test_quantile_and_std_rules(reference: pd.DataFrame, spec: ProfileSpec) -> None:
    top = fit_thresholds(reference, spec, chunk_size=3000, quantile=1.0)
    q50 = fit_thresholds(reference, spec, chunk_size=3000, quantile=0.5)
    mean = fit_thresholds(reference, spec, chunk_size=3000, rule="std", std_multiplier=0.0)
    wide = fit_thresholds(reference, spec, chunk_size=3000, rule="std", std_multiplier=3.0)
    for key in top:
        assert q50[key] <= top[key]
        assert mean[key] < wide[key]


def test_unshifted_window_passes_and_shifted_window_is_flagged(
    reference: pd.DataFrame, spec: ProfileSpec
) -> None:
    chunk = 3000
    config = DriftConfig(thresholds=fit_thresholds(reference, spec, chunk_size=chunk))
    ref_profile = Profile.empty(spec).update(reference)
    same = Profile.empty(spec).update(frame(chunk, 1))
    assert compare_profiles(ref_profile, same, config).drifted_columns == ()
    moved = Profile.empty(spec).update(frame(chunk, 2, shift=0.3))
    report = compare_profiles(ref_profile, moved, config)
    assert set(report.drifted_columns) == {"normal", "skewed", "colour"}
    learned = {(r.column, r.method): r.threshold for r in report.results if r.p_value is None}
    assert learned == dict(config.thresholds)


def test_shuffled_chunks_for_a_sorted_reference(spec: ProfileSpec) -> None:
    ordered = frame(20_000, 3).sort_values("normal", ignore_index=True)
    contiguous = fit_thresholds(ordered, spec, chunk_size=2000)
    shuffled = fit_thresholds(ordered, spec, chunk_size=2000, seed=0)
    # sorted chunks each cover a slice of the range: huge, meaningless thresholds
    assert contiguous[("normal", "psi")] > 1.0
    assert shuffled[("normal", "psi")] < 0.1
    again = fit_thresholds(ordered, spec, chunk_size=2000, seed=0)
    # histogram statistics are reproducible; KLL compaction draws its own random bits
    assert {k: v for k, v in again.items() if k[1] != "wasserstein"} == {
        k: v for k, v in shuffled.items() if k[1] != "wasserstein"
    }


def test_undefined_statistics_are_left_out() -> None:
    ref = pd.DataFrame({"x": np.arange(1000.0), "null": np.full(1000, np.nan)})
    spec = ProfileSpec.from_reference(ref)
    learned = fit_thresholds(ref, spec, chunk_size=100)
    assert {key[0] for key in learned} == {"x"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chunk_size": 0},
        {"chunk_size": 2.5},
        {"chunk_size": True},
        {"chunk_size": 600},  # only one chunk
        {"chunk_size": 100, "quantile": 0.0},
        {"chunk_size": 100, "quantile": 1.5},
        {"chunk_size": 100, "rule": "max"},
        {"chunk_size": 100, "std_multiplier": -1.0},
        {"chunk_size": 100, "std_multiplier": float("nan")},
        {"chunk_size": 100, "methods": ["ks"]},
        {"chunk_size": 100, "methods": "psi"},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    ref = frame(1000, 4)
    spec = ProfileSpec.from_reference(ref)
    with pytest.raises(InvalidInputError):
        fit_thresholds(ref, spec, **kwargs)


def test_rejects_bad_inputs() -> None:
    ref = frame(1000, 4)
    spec = ProfileSpec.from_reference(ref)
    with pytest.raises(InvalidInputError):
        fit_thresholds(ref.to_dict(), spec, chunk_size=100)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        fit_thresholds(ref, spec.to_dict(), chunk_size=100)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        fit_thresholds(ref.drop(columns="colour"), spec, chunk_size=100)
