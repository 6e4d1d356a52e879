"""Tests for livemodel.stats.sequential: closed forms, simulations, decisions, bad input.

The simulations draw per-batch sufficient statistics (binomial counts; Gaussian batch means
and chi-square sums of squares), which have exactly the distribution of the raw streams'
statistics, so thousands of continuously monitored runs take a second or two.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from livemodel.errors import InvalidInputError
from livemodel.stats.sequential import (
    MSPRT,
    Moments,
    ab_summary,
    always_valid_p_value,
    confidence_sequence,
    decide,
    difference_estimate,
    mixture_log_likelihood_ratio,
)

ALPHA = 0.05
RUNS = 2000
LOOKS = 500  # 10 candidate observations per look: a horizon of 5,000 candidate requests
BATCH = 10
CANARY = 190  # 5% of traffic to the candidate
NOISE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)


# -- simulation helpers --------------------------------------------------------------------
def bernoulli_path(rng: np.random.Generator, batch: int, rate: float) -> Moments:
    errors = rng.binomial(batch, rate, size=(RUNS, LOOKS)).cumsum(axis=1).astype(float)
    n = np.broadcast_to(batch * np.arange(1, LOOKS + 1, dtype=float), errors.shape)
    return Moments(n, errors / n, errors * (1 - errors / n))


def gaussian_path(rng: np.random.Generator, batch: int, mu: float, sigma: float) -> Moments:
    batch_mean = rng.normal(mu, sigma / math.sqrt(batch), size=(RUNS, LOOKS))
    batch_m2 = sigma**2 * rng.chisquare(batch - 1, size=(RUNS, LOOKS))
    n = np.broadcast_to(batch * np.arange(1, LOOKS + 1, dtype=float), batch_mean.shape)
    mean = np.cumsum(batch * batch_mean, axis=1) / n
    m2 = np.cumsum(batch_m2, axis=1) + np.cumsum(batch * batch_mean**2, axis=1) - n * mean**2
    return Moments(n, mean, m2)


def monitor(
    candidate: Moments, champion: Moments, kind: str, tau: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    est, var = difference_estimate(candidate, champion, kind=kind)  # type: ignore[arg-type]
    p = always_valid_p_value(est, var, tau=tau)
    lower, upper = confidence_sequence(est, var, alpha=ALPHA, tau=tau)
    return p, lower, upper


def first_verdicts(
    lower: np.ndarray, upper: np.ndarray, n_min: np.ndarray, mde: float, min_samples: int = 100
) -> np.ndarray:
    """The first non-'continue' verdict of decide() per run, for lower_is_better."""
    rollback = lower > 0
    promote = ~rollback & (n_min >= min_samples) & (upper < mde)
    decided = rollback | promote
    first = decided.argmax(axis=1)
    rows = np.arange(len(first))
    return np.where(
        ~decided.any(axis=1), "continue", np.where(rollback[rows, first], "rollback", "promote")
    )


SCENARIOS_AA = {
    "errors 2%, 50/50": ("proportion", 0.05, BATCH, ("b", 0.02)),
    "errors 2%, 5% canary": ("proportion", 0.05, CANARY, ("b", 0.02)),
    "errors 10%, 50/50": ("proportion", 0.05, BATCH, ("b", 0.10)),
    "errors 10%, 5% canary": ("proportion", 0.05, CANARY, ("b", 0.10)),
    "latency N(200, 50), 50/50": ("mean", 10.0, BATCH, ("g", 200.0, 50.0)),
    "latency N(200, 50), 5% canary": ("mean", 10.0, CANARY, ("g", 200.0, 50.0)),
}


def draw(rng: np.random.Generator, batch: int, spec: tuple[Any, ...]) -> Moments:
    if spec[0] == "b":
        return bernoulli_path(rng, batch, spec[1])
    return gaussian_path(rng, batch, spec[1], spec[2])


# -- A/A: type-I error under continuous monitoring -------------------------------------------
@pytest.mark.parametrize("name", list(SCENARIOS_AA))
def test_aa_continuous_monitoring_keeps_type_one_error(name: str) -> None:
    kind, tau, champion_batch, spec = SCENARIOS_AA[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    candidate, champion = draw(rng, BATCH, spec), draw(rng, champion_batch, spec)
    p, lower, upper = monitor(candidate, champion, kind, tau)
    assert np.all(np.diff(p, axis=1) <= 0), "always-valid p-value must be non-increasing"
    ever_rejected = (p <= ALPHA).any(axis=1).mean()
    ever_rollback = (lower > 0).any(axis=1).mean()
    assert ever_rejected <= ALPHA + NOISE
    assert ever_rollback <= ALPHA + NOISE
    # p <= alpha exactly when 0 has left the confidence sequence.
    np.testing.assert_array_equal(p <= ALPHA, (lower > 0) | (upper < 0))


# -- A/B: a clearly worse candidate is rolled back fast -------------------------------------
def test_clearly_worse_candidate_is_rolled_back_within_a_hundred_requests() -> None:
    """Errors 2% -> 22% (candidate raises on 20% of requests) at a 5% canary.

    Measured with this seed: rollback in 100% of 2,000 runs; candidate requests needed:
    median 80, 95th percentile 120, worst 190 (i.e. about 1,600 / 2,400 requests in total).
    """
    rng = np.random.default_rng(7)
    candidate = bernoulli_path(rng, BATCH, 0.22)
    champion = bernoulli_path(rng, CANARY, 0.02)
    _, lower, upper = monitor(candidate, champion, "proportion", 0.05)
    verdicts = first_verdicts(lower, upper, np.minimum(candidate.n, champion.n), mde=0.02)
    assert (verdicts == "rollback").mean() >= 0.99
    rolled = (lower > 0).any(axis=1)
    needed = BATCH * ((lower > 0).argmax(axis=1)[rolled] + 1)
    assert np.median(needed) <= 90
    assert np.percentile(needed, 95) <= 130


HARMFUL = {  # name: kind, tau, champion batch, candidate, champion, min detectable effect
    "errors 2% -> 4%, 5% canary": ("proportion", 0.05, CANARY, ("b", 0.04), ("b", 0.02), 0.02),
    "errors 2% -> 4%, 50/50": ("proportion", 0.05, BATCH, ("b", 0.04), ("b", 0.02), 0.02),
    "errors 2% -> 3%, 5% canary": ("proportion", 0.01, CANARY, ("b", 0.03), ("b", 0.02), 0.01),
    "latency +10, 5% canary": ("mean", 10.0, CANARY, ("g", 210.0, 50.0), ("g", 200.0, 50.0), 10),
    "latency +10, sd x2": ("mean", 10.0, CANARY, ("g", 210.0, 100.0), ("g", 200.0, 50.0), 10),
}


@pytest.mark.parametrize("name", list(HARMFUL))
def test_harmful_candidate_is_rarely_promoted_and_ci_covers_uniformly(name: str) -> None:
    """True harm equals the minimum detectable effect: the hardest case for promotion."""
    kind, tau, champion_batch, cand_spec, champ_spec, mde = HARMFUL[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    candidate, champion = draw(rng, BATCH, cand_spec), draw(rng, champion_batch, champ_spec)
    _, lower, upper = monitor(candidate, champion, kind, tau)
    verdicts = first_verdicts(lower, upper, np.minimum(candidate.n, champion.n), mde=mde)
    assert (verdicts == "promote").mean() <= ALPHA + NOISE
    truth = mde
    assert ((lower > truth) | (upper < truth)).any(axis=1).mean() <= ALPHA + NOISE


def test_ci_covers_a_large_difference_uniformly_over_time() -> None:
    rng = np.random.default_rng(13)
    candidate = bernoulli_path(rng, BATCH, 0.22)
    champion = bernoulli_path(rng, CANARY, 0.02)
    _, lower, upper = monitor(candidate, champion, "proportion", 0.05)
    assert np.all(np.diff(lower, axis=1) >= 0) and np.all(np.diff(upper, axis=1) <= 0)
    assert ((lower > 0.2) | (upper < 0.2)).any(axis=1).mean() <= ALPHA + NOISE


def test_identical_arms_are_eventually_promoted() -> None:
    """The non-inferiority rule is not vacuous: A/A canaries promote by the horizon."""
    rng = np.random.default_rng(17)
    candidate = bernoulli_path(rng, BATCH, 0.02)
    champion = bernoulli_path(rng, CANARY, 0.02)
    _, lower, upper = monitor(candidate, champion, "proportion", 0.05)
    verdicts = first_verdicts(lower, upper, np.minimum(candidate.n, champion.n), mde=0.02)
    assert (verdicts == "promote").mean() >= 0.95


def test_state_object_and_decide_match_the_vectorised_path() -> None:
    """MSPRT fed raw observations batch by batch equals the vectorised functions."""
    rng = np.random.default_rng(19)
    runs, looks = 20, 60
    for cand_rate in (0.02, 0.22):
        cand = rng.random((runs, looks, BATCH)) < cand_rate
        champ = rng.random((runs, looks, CANARY)) < 0.02
        n_c = BATCH * np.arange(1, looks + 1.0)
        n_h = CANARY * np.arange(1, looks + 1.0)
        k_c, k_h = cand.sum(axis=2).cumsum(axis=1), champ.sum(axis=2).cumsum(axis=1)
        est, var = difference_estimate(
            Moments(n_c, k_c / n_c, k_c * (1 - k_c / n_c)),
            Moments(n_h, k_h / n_h, k_h * (1 - k_h / n_h)),
            kind="proportion",
        )
        p = always_valid_p_value(est, var, tau=0.05)
        lower, upper = confidence_sequence(est, var, alpha=ALPHA, tau=0.05)
        expected = first_verdicts(lower, upper, np.broadcast_to(n_c, lower.shape), mde=0.02)
        for run in range(runs):
            test = MSPRT(alpha=ALPHA, kind="proportion")
            first = "continue"
            for look in range(looks):
                test.update(cand[run, look].astype(float), champ[run, look].astype(float))
                assert test.p_value == pytest.approx(p[run, look], rel=1e-9, abs=1e-300)
                ci = test.confidence_interval
                assert ci[0] == pytest.approx(lower[run, look], rel=1e-9)
                assert ci[1] == pytest.approx(upper[run, look], rel=1e-9)
                verdict = decide(test, min_detectable_effect=0.02, min_samples=100).verdict
                if first == "continue":
                    first = verdict
            assert first == expected[run]


# -- closed forms ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "V", "tau", "diff", "theta0"),
    [(1, 2.0, 1.0, 0.0, 0.0), (10, 2.0, 0.5, 0.3, 0.0), (1000, 0.5, 0.05, 0.02, 0.01),
     (50_000, 8.0, 2.0, -0.4, 0.1), (3, 1e-3, 10.0, 0.2, -0.2)],
)  # fmt: skip
def test_log_lambda_matches_the_papers_closed_form(
    n: int, V: float, tau: float, diff: float, theta0: float
) -> None:
    """Johari et al.: Lambda_n = sqrt(V/(V+n tau^2)) exp(n^2 tau^2 (d-theta0)^2/(2V(V+n tau^2)))."""
    t2 = tau**2
    expected = 0.5 * math.log(V / (V + n * t2)) + n**2 * t2 * (diff - theta0) ** 2 / (
        2 * V * (V + n * t2)
    )
    got = mixture_log_likelihood_ratio(diff, V / n, tau=tau, null_delta=theta0)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("diff", "s2", "tau"), [(0.1, 0.01, 0.2), (-0.3, 0.05, 0.1), (0, 1, 1)])
def test_lambda_is_the_mixture_integral_of_likelihood_ratios(
    diff: float, s2: float, tau: float
) -> None:
    def integrand(theta: float) -> float:
        lr = stats.norm.pdf(diff, theta, math.sqrt(s2)) / stats.norm.pdf(diff, 0, math.sqrt(s2))
        return float(lr * stats.norm.pdf(theta, 0.0, tau))

    numeric, _ = integrate.quad(integrand, -20 * tau, 20 * tau)
    closed = math.exp(float(mixture_log_likelihood_ratio(diff, s2, tau=tau)))
    assert closed == pytest.approx(numeric, rel=1e-7)


def test_class_matches_known_variance_formula_on_a_single_look() -> None:
    """Two arms with sample variance exactly sigma^2: the test's p equals 1/Lambda_paper."""
    rng = np.random.default_rng(3)
    n, sigma, tau = 400, 3.0, 0.5
    arms = []
    for mean in (10.4, 10.0):
        z = rng.normal(size=n)
        arms.append(mean + sigma * (z - z.mean()) / z.std(ddof=1))
    test = MSPRT(tau=tau, kind="mean").update(arms[0], arms[1])
    V = 2 * sigma**2
    log_lr = 0.5 * math.log(V / (V + n * tau**2)) + n**2 * tau**2 * 0.4**2 / (
        2 * V * (V + n * tau**2)
    )
    assert test.p_value == pytest.approx(min(1.0, math.exp(-log_lr)), rel=1e-8)
    assert test.effect == pytest.approx(0.4)


@pytest.mark.parametrize(("diff", "s2", "tau", "alpha"), [(0.1, 0.01, 0.2, 0.05), (3, 2, 1, 0.2)])
def test_ci_endpoints_are_where_lambda_reaches_one_over_alpha(
    diff: float, s2: float, tau: float, alpha: float
) -> None:
    lower, upper = confidence_sequence(diff, s2, alpha=alpha, tau=tau)

    def excess(theta0: float) -> float:
        log_lr = mixture_log_likelihood_ratio(diff, s2, tau=tau, null_delta=theta0)
        return float(log_lr) - math.log(1 / alpha)

    root_lo = optimize.brentq(excess, diff - 100, diff, xtol=1e-13)
    root_hi = optimize.brentq(excess, diff, diff + 100, xtol=1e-13)
    assert float(lower) == pytest.approx(root_lo, rel=1e-9)
    assert float(upper) == pytest.approx(root_hi, rel=1e-9)


finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(diff=finite, s2=st.floats(1e-8, 1e4), tau=st.floats(1e-3, 1e3))
def test_always_valid_p_is_never_below_the_fixed_horizon_z_test(
    diff: float, s2: float, tau: float
) -> None:
    """1/Lambda >= exp(-z^2/2) >= 2 Phi(-|z|): peeking-safe means more conservative."""
    p = float(always_valid_p_value(diff, s2, tau=tau))
    z_p = 2 * stats.norm.sf(abs(diff) / math.sqrt(s2))
    assert p >= z_p * (1 - 1e-9)
    lower, upper = confidence_sequence(diff, s2, alpha=ALPHA, tau=tau)
    z = stats.norm.ppf(1 - ALPHA / 2) * math.sqrt(s2)
    assert float(lower) <= diff - z * (1 - 1e-9) and float(upper) >= diff + z * (1 - 1e-9)


@given(st.lists(st.tuples(finite, st.floats(1e-6, 1e3)), min_size=1, max_size=30))
def test_p_value_path_is_monotone_and_consistent_with_the_ci(path: list[Any]) -> None:
    est, var = np.array(path).T
    p = always_valid_p_value(est, var, tau=1.0)
    lower, upper = confidence_sequence(est, var, alpha=ALPHA, tau=1.0)
    assert np.all(np.diff(p) <= 0) and np.all((p > 0) | (p == 0)) and np.all(p <= 1)
    boundary = np.isclose(lower, 0, atol=1e-9) | np.isclose(upper, 0, atol=1e-9)
    agree = (p <= ALPHA) == ((lower > 0) | (upper < 0))
    assert np.all(agree | boundary)


# -- the state object --------------------------------------------------------------------
def test_empty_stream_has_p_one_and_an_infinite_interval() -> None:
    test = MSPRT()
    assert test.p_value == 1.0
    assert test.confidence_interval == (-math.inf, math.inf)
    assert test.effect is None and test.n_candidate == 0 and test.n_champion == 0
    test.update([], [])
    assert test.p_value == 1.0
    decision = decide(test, min_detectable_effect=0.01)
    assert decision.verdict == "continue" and decision.effect is None


def test_nothing_is_evaluated_before_burn_in() -> None:
    test = MSPRT(burn_in=20).update([1.0] * 19, [0.0] * 1000)
    assert test.p_value == 1.0 and test.confidence_interval == (-math.inf, math.inf)
    assert test.update_candidate(1.0).p_value < 1.0


def test_all_zero_error_streams_do_not_make_variance_zero() -> None:
    test = MSPRT().update([0.0] * 5000, [0.0] * 5000)
    assert test.p_value == 1.0
    lo, hi = test.confidence_interval
    assert lo < 0 < hi and math.isfinite(lo) and math.isfinite(hi)


def test_single_updates_equal_the_same_looks_in_batch() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 2.0, 300), rng.normal(0.0, 2.0, 300)
    one = MSPRT(tau=0.5, kind="mean")
    other = MSPRT(tau=0.5, kind="mean")
    for x, y in zip(a, b, strict=True):
        one.update_candidate(x).update_champion(y)
        other.update([x], []).update([], [y])
    assert one.to_dict() == other.to_dict()
    assert one.n_candidate == one.n_champion == 300
    assert one.effect == pytest.approx(a.mean() - b.mean())


def test_serialised_state_resumes_exactly() -> None:
    rng = np.random.default_rng(6)
    batches = [(rng.random(10) < 0.3, rng.random(190) < 0.05) for _ in range(30)]
    straight = MSPRT(kind="proportion")
    resumed = MSPRT(kind="proportion")
    for i, (c, h) in enumerate(batches):
        straight.update(c, h)
        resumed.update(c, h)
        if i % 7 == 0:
            resumed = MSPRT.from_dict(json.loads(json.dumps(resumed.to_dict(), allow_nan=False)))
    assert resumed.to_dict() == straight.to_dict()
    fresh = MSPRT.from_dict(json.loads(json.dumps(MSPRT().to_dict(), allow_nan=False)))
    assert fresh.confidence_interval == (-math.inf, math.inf)


@given(
    st.lists(st.floats(-1e6, 1e6), max_size=40),
    st.lists(st.floats(-1e6, 1e6), max_size=40),
    st.lists(st.floats(-1e6, 1e6), max_size=40),
    st.lists(st.floats(-1e6, 1e6), max_size=40),
)
def test_merge_equals_one_batch_of_the_union(
    c1: list[float], h1: list[float], c2: list[float], h2: list[float]
) -> None:
    first = MSPRT(tau=1.0, kind="mean", burn_in=2).update(c1, h1)
    merged = first.merge(MSPRT(tau=1.0, kind="mean", burn_in=2).update(c2, h2))
    direct = MSPRT(tau=1.0, kind="mean", burn_in=2).update(c1, h1).update(c2, h2)
    assert merged.n_candidate == direct.n_candidate and merged.n_champion == direct.n_champion
    state_m, state_d = merged.to_dict(), direct.to_dict()
    for arm in ("candidate", "champion"):
        for key in ("mean", "m2"):
            assert state_m[arm][key] == pytest.approx(state_d[arm][key], rel=1e-9, abs=1e-3)
    assert merged.p_value == pytest.approx(direct.p_value, rel=1e-6, abs=1e-12)
    assert first.n_candidate == len(c1)  # merge does not mutate


def test_merge_rejects_different_parameters() -> None:
    with pytest.raises(InvalidInputError):
        MSPRT(alpha=0.05).merge(MSPRT(alpha=0.1))
    with pytest.raises(InvalidInputError):
        MSPRT().merge("not a test")  # type: ignore[arg-type]


# -- decisions ---------------------------------------------------------------------------
def test_decide_rules_in_both_directions() -> None:
    worse = MSPRT().update([1.0] * 30 + [0.0] * 70, [0.0] * 1000)
    d = decide(worse, min_detectable_effect=0.02, min_samples=10_000)
    assert d.verdict == "rollback" and d.p_value <= 0.05 and d.ci[0] > 0
    assert d.n == 1100 and d.n_candidate == 100 and d.n_champion == 1000
    assert "significantly higher" in d.reason
    assert decide(worse, min_detectable_effect=0.02, direction="higher_is_better").verdict != (
        "rollback"
    )

    same = MSPRT().update([0.0] * 20_000, [0.0] * 20_000)
    assert decide(same, min_detectable_effect=0.02, min_samples=100).verdict == "promote"
    assert decide(same, min_detectable_effect=0.02, min_samples=50_000).verdict == "continue"
    higher = decide(same, min_detectable_effect=0.02, direction="higher_is_better")
    assert higher.verdict == "promote"

    better = MSPRT(tau=1.0, kind="mean").update(np.full(100, 1.0) + np.tile([0, 0.1], 50),
                                                 np.tile([0, 0.1], 500))  # fmt: skip
    assert decide(better, min_detectable_effect=0.1, direction="higher_is_better").verdict == (
        "promote"
    )
    assert decide(better, min_detectable_effect=0.1).verdict == "rollback"


@pytest.mark.parametrize(
    "kwargs",
    [{"min_detectable_effect": 0.0}, {"min_detectable_effect": math.nan},
     {"min_detectable_effect": 0.1, "direction": "up"},
     {"min_detectable_effect": 0.1, "min_samples": -1},
     {"min_detectable_effect": 0.1, "min_samples": 2.5}],
)  # fmt: skip
def test_decide_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        decide(MSPRT(), **kwargs)


def test_ab_summary() -> None:
    test = MSPRT().update([1.0] * 30 + [0.0] * 70, [1.0] * 100 + [0.0] * 900)
    summary = ab_summary(test)
    assert summary.effect == pytest.approx(0.2)
    assert summary.relative_lift == pytest.approx(2.0)
    assert (summary.n_a, summary.n_b) == (1000, 100)
    assert summary.ci == test.confidence_interval and summary.p_value == test.p_value
    zero_base = ab_summary(MSPRT().update([1.0] * 30, [0.0] * 30))
    assert zero_base.relative_lift is None and zero_base.effect == 1.0
    assert ab_summary(MSPRT()).effect is None


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf, "0.05", None])
def test_alpha_outside_the_unit_interval_is_rejected(alpha: object) -> None:
    with pytest.raises(InvalidInputError):
        MSPRT(alpha=alpha)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        confidence_sequence(0.0, 1.0, alpha=alpha, tau=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_observations_are_rejected_and_state_is_untouched(bad: float) -> None:
    test = MSPRT(tau=1.0, kind="mean").update([1.0, 2.0], [1.0, 2.0])
    before = test.to_dict()
    calls: list[Callable[[], MSPRT]] = [
        lambda: test.update_candidate(bad),
        lambda: test.update_champion(bad),
        lambda: test.update([1.0], [1.0, bad]),
        lambda: test.update([bad], [1.0]),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert test.to_dict() == before


@pytest.mark.parametrize(
    ("kind", "values"),
    [("mean", ["a", "b"]), ("mean", [[1.0, 2.0], [3.0, 4.0]]), ("mean", [1e300, -1e300]),
     ("mean", [object()]), ("proportion", [0.0, 0.5]), ("proportion", [2.0]),
     ("proportion", [-1.0])],
)  # fmt: skip
def test_malformed_observations_are_rejected(kind: str, values: list[Any]) -> None:
    test = MSPRT(tau=1.0, kind=kind)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        test.update(values, [])


def test_huge_stream_is_summarised_without_overflow() -> None:
    test = MSPRT(tau=1.0, kind="mean").update(np.full(10**6, 1e150), np.full(10**6, 1e150))
    assert test.effect == 0.0 and test.p_value == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "mean"}, {"kind": "median"}, {"tau": 0.0}, {"tau": -1.0}, {"tau": math.inf},
     {"null_delta": math.nan}, {"burn_in": 1}, {"burn_in": True}, {"variance_floor": -1.0},
     {"variance_floor": math.inf}],
)  # fmt: skip
def test_bad_parameters_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        MSPRT(**kwargs)


def test_tau_defaults_for_proportions_only() -> None:
    assert MSPRT().tau == 0.05
    with pytest.raises(InvalidInputError, match="tau is required"):
        MSPRT(kind="mean")


@pytest.mark.parametrize(
    "state",
    [{}, {"format": 2}, {"format": 1, "params": {"alpha": 2}},
     {**MSPRT().to_dict(), "p_value": 1.5}, {**MSPRT().to_dict(), "ci_lower": "x"},
     {**MSPRT().to_dict(), "candidate": {"n": -1, "mean": 0.0, "m2": 0.0}},
     {**MSPRT().to_dict(), "candidate": {"n": 3, "mean": math.nan, "m2": 0.0}},
     {**MSPRT().to_dict(), "params": {"bogus": 1}}, {**MSPRT().to_dict(), "champion": None}],
)  # fmt: skip
def test_malformed_state_is_rejected(state: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        MSPRT.from_dict(state)


def test_vectorised_functions_reject_bad_arrays() -> None:
    with pytest.raises(InvalidInputError):
        always_valid_p_value([0.0, math.nan], [1.0, 1.0], tau=1.0)
    with pytest.raises(InvalidInputError):
        always_valid_p_value([0.0], [0.0], tau=1.0)
    with pytest.raises(InvalidInputError):
        always_valid_p_value([0.0], [1.0], tau=0.0)
    with pytest.raises(InvalidInputError):
        mixture_log_likelihood_ratio(["x"], [1.0], tau=1.0)
    with pytest.raises(InvalidInputError):
        difference_estimate(Moments(1, 0, 0), Moments(1, 0, 0), kind="median")  # type: ignore[arg-type]
    # variance = inf means "no information yet": p = 1 and an infinite interval.
    assert float(always_valid_p_value(5.0, math.inf, tau=1.0)) == 1.0
    assert confidence_sequence(5.0, math.inf, alpha=0.05, tau=1.0)[1] == math.inf
