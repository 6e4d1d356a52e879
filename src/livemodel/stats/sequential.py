"""Always-valid sequential tests for rollouts: the mixture SPRT (mSPRT).

A canary compares a candidate with the champion on a guard metric observed as a stream and
looks at the result after every batch. Fixed-horizon p-values are invalid under such peeking;
the mSPRT of Johari, Pekelis & Walsh ("Always Valid Inference", 2017, as used by Optimizely)
is not. For an estimate ``d`` of the difference ``theta = mean(candidate) - mean(champion)``
with sampling variance ``s2 = v_candidate / n_candidate + v_champion / n_champion`` and a
normal mixing distribution ``theta ~ N(theta0, tau**2)`` on the alternative, the mixture
likelihood ratio is::

    Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (d - theta0)**2 / (2 * s2 * (s2 + tau2)))

(with ``s2 = V / n`` this is the paper's ``sqrt(V/(V+n tau2)) exp(n2 tau2 (d-theta0)2 /
(2V(V+n tau2)))``). Under the null it is a martingale with mean 1, so by Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``: the always-valid p-value
``p_n = min(p_{n-1}, 1/Lambda_n)`` may be read at every look. Inverting the test gives the
confidence sequence ``d +- sqrt(s2 (s2 + tau2) / tau2 * (2 log(1/alpha) + log((s2 + tau2)/s2)))``,
intersected over looks so that it only shrinks; ``theta0`` lies outside it exactly when
``p <= alpha``.

Unknown variance is plugged in per arm, each floored at the pooled variance of both arms:
under the null the pooled value is the right one (a canary arm with few observations and,
by chance, few errors would otherwise look precise and "significantly better"), and under
an alternative the larger per-arm value keeps the interval honest for a noisier arm.
Means use sample variances, further floored at ``1e-12 * max(1, mean**2)``. Proportions use
the largest ``p (1 - p)`` over the rate's Wilson interval (z = 2): an all-zero error stream
does not get variance 0, and a small canary arm that by chance saw few errors does not look
precise (plain ``p^(1 - p^)`` let the interval miss a 2% -> 22% jump in 6.5% of simulated
runs; this rule: 2%). ``variance_floor`` adds a user floor (per
observation). Plug-in makes validity approximate rather than exact, so nothing is evaluated
until both arms have ``burn_in`` observations. The guarantee is exact for Gaussian data with
known variance and a fixed traffic split; changing the split mid-test (canary steps) is
approximate too. tests/stats/test_sequential.py measures the plug-in version on Bernoulli
and Gaussian streams at 50% and 5% splits.

``tau`` is the standard deviation of the effects the test is tuned to find: set it to the
minimum detectable effect, in the metric's units. Proportions default to 0.05 (five points of
error rate); means have units, so ``tau`` is required for them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from livemodel.errors import InvalidInputError

Kind = Literal["mean", "proportion"]
Direction = Literal["lower_is_better", "higher_is_better"]
Verdict = Literal["continue", "rollback", "promote"]
FloatArray = NDArray[np.float64]

DEFAULT_PROPORTION_TAU = 0.05
_RELATIVE_VARIANCE_FLOOR = 1e-12
_WILSON_Z = 2.0
_FORMAT = 1


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, int | float) or not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _number(name: str, value: float, *, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and math.isfinite(value) and (value > 0 or not positive)
    if not ok:
        raise InvalidInputError(f"{name} must be a finite number{' > 0' * positive}, got {value!r}")
    return float(value)


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _float_array(name: str, values: ArrayLike, *, allow_inf: bool = False) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numeric: {exc}") from exc
    if (np.isnan(arr) if allow_inf else ~np.isfinite(arr)).any():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return arr


def _estimate_variance(estimate: ArrayLike, variance: ArrayLike) -> tuple[FloatArray, FloatArray]:
    est = _float_array("estimate", estimate)
    var = _float_array("variance", variance, allow_inf=True)
    if (var <= 0).any():
        raise InvalidInputError("variance must be > 0 (inf: no information yet)")
    est, var = np.broadcast_arrays(est, var)
    return est, var


def mixture_log_likelihood_ratio(
    estimate: ArrayLike, variance: ArrayLike, *, tau: float, null_delta: float = 0.0
) -> FloatArray:
    """``log Lambda`` for an estimate with sampling variance ``variance`` (vectorised).

    ``variance = inf`` means "no information yet" and gives 0 (Lambda = 1, p = 1).
    """
    tau2 = _number("tau", tau, positive=True) ** 2
    null_delta = _number("null_delta", null_delta)
    est, var = _estimate_variance(estimate, variance)
    known = np.isfinite(var)
    v = np.where(known, var, 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        # Written to avoid v * (v + tau2) underflowing to 0 for tiny variances.
        log_lr = 0.5 * (np.log(v) - np.log(v + tau2)) + (
            (est - null_delta) ** 2 / (2.0 * v) * (tau2 / (v + tau2))
        )
    return np.asarray(np.where(known, log_lr, 0.0), dtype=np.float64)


def always_valid_p_value(
    estimate: ArrayLike, variance: ArrayLike, *, tau: float, null_delta: float = 0.0
) -> FloatArray:
    """Always-valid p-values along the last axis (the looks): running min of ``1/Lambda``.

    A 2-D input is read as ``(runs, looks)``; the result is non-increasing along each run.
    """
    log_lr = mixture_log_likelihood_ratio(estimate, variance, tau=tau, null_delta=null_delta)
    with np.errstate(under="ignore"):
        p_now = np.minimum(1.0, np.exp(-log_lr))
    if p_now.ndim == 0:
        return p_now
    return np.minimum.accumulate(p_now, axis=-1)


def _half_width(var: FloatArray, tau2: float, alpha: float) -> FloatArray:
    known = np.isfinite(var)
    v = np.where(known, var, 1.0)
    with np.errstate(over="ignore"):  # factored so huge variances give inf, not a warning
        width = np.sqrt(v) * np.sqrt(1.0 + v / tau2)
        width = width * np.sqrt(2.0 * math.log(1.0 / alpha) + np.log1p(tau2 / v))
    return np.asarray(np.where(known, width, np.inf), dtype=np.float64)


def confidence_sequence(
    estimate: ArrayLike, variance: ArrayLike, *, alpha: float, tau: float
) -> tuple[FloatArray, FloatArray]:
    """Always-valid ``(lower, upper)`` bounds along the last axis, intersected over looks.

    With probability ``>= 1 - alpha`` the true difference lies inside at every look at once.
    ``variance = inf`` gives ``(-inf, inf)``.
    """
    alpha = _check_alpha(alpha)
    tau2 = _number("tau", tau, positive=True) ** 2
    est, var = _estimate_variance(estimate, variance)
    half = _half_width(var, tau2, alpha)
    lower, upper = est - half, est + half
    if lower.ndim == 0:
        return lower, upper
    return np.maximum.accumulate(lower, axis=-1), np.minimum.accumulate(upper, axis=-1)


class Moments(NamedTuple):
    """Per-arm count, mean and sum of squared deviations ``m2`` (floats or arrays of looks)."""

    n: ArrayLike
    mean: ArrayLike
    m2: ArrayLike


def _per_observation_variance(
    kind: Kind, n: FloatArray, mean: FloatArray, m2: FloatArray
) -> FloatArray:
    if kind == "proportion":
        # The largest p(1-p) inside the rate's Wilson interval: never 0 for an all-zero
        # stream, and an arm that by chance saw few errors does not look precise.
        z2 = _WILSON_Z**2
        centre = (mean * n + z2 / 2) / (n + z2)
        half = _WILSON_Z * np.sqrt(mean * (1 - mean) * n + z2 / 4) / (n + z2)
        rate = np.clip(0.5, centre - half, centre + half)
        return np.asarray(rate * (1.0 - rate))
    floor = _RELATIVE_VARIANCE_FLOOR * np.maximum(1.0, mean**2)
    return np.maximum(m2 / np.maximum(n - 1.0, 1.0), floor)


def difference_estimate(
    candidate: Moments,
    champion: Moments,
    *,
    kind: Kind = "mean",
    burn_in: int = 20,
    variance_floor: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Estimate and plug-in sampling variance of ``mean(candidate) - mean(champion)``.

    Vectorised over looks/runs. Looks where an arm has fewer than ``burn_in`` observations
    get variance ``inf`` (no information). See the module docstring for the plug-in rule.
    """
    if kind not in ("mean", "proportion"):
        raise InvalidInputError(f"kind must be 'mean' or 'proportion', got {kind!r}")
    arms = [
        (_float_array("n", arm.n), _float_array("mean", arm.mean), _float_array("m2", arm.m2))
        for arm in (candidate, champion)
    ]
    (n_c, mean_c, m2_c), (n_h, mean_h, m2_h) = arms
    n_all = n_c + n_h
    pooled_mean = (n_c * mean_c + n_h * mean_h) / np.maximum(n_all, 1.0)
    pooled = _per_observation_variance(kind, n_all, pooled_mean, m2_c + m2_h)
    var_c, var_h = (
        np.where(
            n >= max(burn_in, 2),
            np.maximum(
                _per_observation_variance(kind, n, mean, m2), np.maximum(pooled, variance_floor)
            )
            / np.maximum(n, 1.0),
            np.inf,
        )
        for n, mean, m2 in arms
    )
    return np.asarray(mean_c - mean_h, dtype=np.float64), np.asarray(var_c + var_h)


@dataclass(frozen=True)
class _Arm:
    """Mergeable moments of one arm: count, mean, sum of squared deviations (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, other: _Arm) -> _Arm:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        if not (math.isfinite(mean) and math.isfinite(m2)):
            raise InvalidInputError("values too large to summarise in float64")
        return _Arm(n, mean, m2)

    @classmethod
    def of(cls, values: FloatArray) -> _Arm:
        if values.size == 0:
            return cls()
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(values.mean())
            m2 = float(((values - mean) ** 2).sum())
        if not (math.isfinite(mean) and math.isfinite(m2)):
            raise InvalidInputError("values too large to summarise in float64")
        return cls(int(values.size), mean, m2)


class MSPRT:
    """Two-sample mSPRT on ``candidate - champion``; state is sufficient statistics only.

    Every ``update*`` call or ``merge`` is one look: it refreshes the running minimum p-value
    and the running intersection of confidence intervals. ``to_dict``/``from_dict`` persist
    the whole state (JSON-safe) so a controller can resume after a restart.

    >>> test = MSPRT(alpha=0.05, kind="proportion")
    >>> test = test.update([0] * 95 + [1] * 5, [0] * 98 + [1] * 2)
    >>> test.n_candidate, test.n_champion, round(test.effect, 2)
    (100, 100, 0.03)
    >>> test.p_value
    1.0
    """

    def __init__(
        self,
        alpha: float = 0.05,
        tau: float | None = None,
        null_delta: float = 0.0,
        *,
        kind: Kind = "proportion",
        burn_in: int = 20,
        variance_floor: float = 0.0,
    ) -> None:
        if kind not in ("mean", "proportion"):
            raise InvalidInputError(f"kind must be 'mean' or 'proportion', got {kind!r}")
        if tau is None:
            if kind == "mean":
                raise InvalidInputError(
                    "tau is required for kind='mean' (it has the metric's units): "
                    "set it to the minimum detectable effect"
                )
            tau = DEFAULT_PROPORTION_TAU
        self.alpha = _check_alpha(alpha)
        self.tau = _number("tau", tau, positive=True)
        self.null_delta = _number("null_delta", null_delta)
        self.kind: Kind = kind
        self.burn_in = _count("burn_in", burn_in, 2)
        self.variance_floor = _number("variance_floor", variance_floor)
        if self.variance_floor < 0:
            raise InvalidInputError("variance_floor must be >= 0")
        self._candidate = _Arm()
        self._champion = _Arm()
        self._p_value = 1.0
        self._lower = -math.inf
        self._upper = math.inf

    # -- updates -------------------------------------------------------------------------
    def _values(self, name: str, values: ArrayLike) -> FloatArray:
        arr = _float_array(name, values)
        if arr.ndim > 1:
            raise InvalidInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
        if self.kind == "proportion" and not np.isin(arr, (0.0, 1.0)).all():
            raise InvalidInputError(f"{name}: a proportion test takes 0/1 values only")
        return arr.ravel()

    def update(self, candidate_values: ArrayLike, champion_values: ArrayLike) -> MSPRT:
        """Add a batch to each arm (either may be empty), then look once."""
        cand = _Arm.of(self._values("candidate_values", candidate_values))
        champ = _Arm.of(self._values("champion_values", champion_values))
        # Validate both before mutating, so bad input leaves the state untouched.
        new_cand, new_champ = self._candidate.merge(cand), self._champion.merge(champ)
        self._candidate, self._champion = new_cand, new_champ
        self._look()
        return self

    def update_candidate(self, x: float) -> MSPRT:
        """Add one candidate observation, then look."""
        return self.update([x], [])

    def update_champion(self, x: float) -> MSPRT:
        """Add one champion observation, then look."""
        return self.update([], [x])

    def merge(self, other: MSPRT) -> MSPRT:
        """A new test holding both tests' observations, as one more look of ``self``.

        ``other``'s observations are treated as a batch this test had not seen yet (the
        controller pattern: a central test absorbs replicas' counts); ``other``'s own
        p-value path is about a different stream and is not carried over.
        """
        if not isinstance(other, MSPRT) or self._params() != other._params():
            raise InvalidInputError("cannot merge tests with different parameters")
        merged = MSPRT.from_dict(self.to_dict())
        merged._candidate = self._candidate.merge(other._candidate)
        merged._champion = self._champion.merge(other._champion)
        merged._look()
        return merged

    def _current(self) -> tuple[FloatArray, FloatArray]:
        c, h = self._candidate, self._champion
        return difference_estimate(
            Moments(c.n, c.mean, c.m2),
            Moments(h.n, h.mean, h.m2),
            kind=self.kind,
            burn_in=self.burn_in,
            variance_floor=self.variance_floor,
        )

    def _look(self) -> None:
        est, var = self._current()
        p_now = always_valid_p_value(est, var, tau=self.tau, null_delta=self.null_delta)
        lower, upper = confidence_sequence(est, var, alpha=self.alpha, tau=self.tau)
        self._p_value = min(self._p_value, float(p_now))
        self._lower = max(self._lower, float(lower))
        self._upper = min(self._upper, float(upper))

    # -- results -------------------------------------------------------------------------
    @property
    def p_value(self) -> float:
        """Always-valid p-value for ``theta == null_delta``; 1.0 until both arms pass burn-in."""
        return self._p_value

    @property
    def confidence_interval(self) -> tuple[float, float]:
        """Always-valid ``(lower, upper)`` for ``theta``; ``(-inf, inf)`` before burn-in.

        In the rare event (probability <= alpha) that the running intersection becomes
        empty, ``lower > upper`` is returned as is: it still excludes every ``theta``.
        """
        return (self._lower, self._upper)

    @property
    def effect(self) -> float | None:
        """Point estimate ``mean(candidate) - mean(champion)``; None while an arm is empty."""
        if self._candidate.n == 0 or self._champion.n == 0:
            return None
        return self._candidate.mean - self._champion.mean

    @property
    def n_candidate(self) -> int:
        return self._candidate.n

    @property
    def n_champion(self) -> int:
        return self._champion.n

    @property
    def mean_champion(self) -> float | None:
        return self._champion.mean if self._champion.n else None

    # -- persistence ---------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "tau": self.tau,
            "null_delta": self.null_delta,
            "kind": self.kind,
            "burn_in": self.burn_in,
            "variance_floor": self.variance_floor,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (infinite bounds are written as None)."""
        return {
            "format": _FORMAT,
            "params": self._params(),
            "candidate": dataclasses.asdict(self._candidate),
            "champion": dataclasses.asdict(self._champion),
            "p_value": self._p_value,
            "ci_lower": None if math.isinf(self._lower) else self._lower,
            "ci_upper": None if math.isinf(self._upper) else self._upper,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MSPRT:
        """Rebuild a test from ``to_dict`` output; malformed data raises InvalidInputError."""
        try:
            if data["format"] != _FORMAT:
                raise InvalidInputError(f"unknown MSPRT state format {data['format']!r}")
            test = cls(**data["params"])
            arms = []
            for name in ("candidate", "champion"):
                arm = data[name]
                n, mean, m2 = arm["n"], float(arm["mean"]), float(arm["m2"])
                if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise InvalidInputError(f"{name}.n must be a non-negative integer")
                if not (math.isfinite(mean) and math.isfinite(m2) and m2 >= 0):
                    raise InvalidInputError(f"{name} moments must be finite, m2 >= 0")
                arms.append(_Arm(n, mean, m2) if n else _Arm())
            p_value = float(data["p_value"])
            lower = -math.inf if data["ci_lower"] is None else float(data["ci_lower"])
            upper = math.inf if data["ci_upper"] is None else float(data["ci_upper"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed MSPRT state: {exc!r}") from exc
        if not 0.0 <= p_value <= 1.0 or math.isnan(lower) or math.isnan(upper):
            raise InvalidInputError("malformed MSPRT state: p_value or bounds out of range")
        test._candidate, test._champion = arms
        test._p_value, test._lower, test._upper = p_value, lower, upper
        return test


@dataclass(frozen=True)
class Decision:
    """Verdict of :func:`decide` with the numbers it was based on."""

    verdict: Verdict
    reason: str
    p_value: float
    ci: tuple[float, float]
    effect: float | None
    n: int
    n_candidate: int
    n_champion: int


def decide(
    test: MSPRT,
    *,
    min_detectable_effect: float,
    direction: Direction = "lower_is_better",
    min_samples: int = 100,
) -> Decision:
    """One-sided guard decision from an always-valid test; pure, so callable at every look.

    With ``(lo, hi)`` the test's confidence sequence for ``theta = candidate - champion``,
    ``theta0 = test.null_delta`` and ``m = min_detectable_effect``:

    * ``lower_is_better`` (errors, latency, loss): **rollback** if ``lo > theta0`` (the
      candidate is significantly worse; any time, no minimum sample); else **promote** if
      ``min(n_candidate, n_champion) >= min_samples`` and ``hi < theta0 + m`` (non-inferior:
      a harm of ``m`` or more is excluded); else **continue**.
    * ``higher_is_better`` (accuracy, conversion): rollback if ``hi < theta0``; promote if
      enough samples and ``lo > theta0 - m``; else continue.

    Rollback is checked first. Because the sequence only shrinks, both verdicts are sticky,
    and each errs with probability ``<= test.alpha`` over the whole rollout: a rollback of a
    candidate that is not worse, or a promotion of one that is worse by ``m`` or more.
    """
    if direction not in ("lower_is_better", "higher_is_better"):
        raise InvalidInputError(f"unknown direction {direction!r}")
    mde = _number("min_detectable_effect", min_detectable_effect, positive=True)
    _count("min_samples", min_samples, 0)
    lo, hi = test.confidence_interval
    theta0 = test.null_delta
    n_min = min(test.n_candidate, test.n_champion)
    worse = "higher" if direction == "lower_is_better" else "lower"
    if (lo > theta0) if direction == "lower_is_better" else (hi < theta0):
        verdict: Verdict = "rollback"
        reason = f"candidate significantly {worse} than champion (CI {lo:.4g}..{hi:.4g})"
    elif n_min < min_samples:
        verdict = "continue"
        reason = f"{n_min} < min_samples={min_samples} observations in the smaller arm"
    elif (hi < theta0 + mde) if direction == "lower_is_better" else (lo > theta0 - mde):
        verdict = "promote"
        reason = f"harm of {mde:.4g} or more excluded (CI {lo:.4g}..{hi:.4g})"
    else:
        verdict = "continue"
        reason = f"inconclusive (CI {lo:.4g}..{hi:.4g}, p={test.p_value:.4g})"
    return Decision(
        verdict, reason, test.p_value, (lo, hi), test.effect,
        test.n_candidate + test.n_champion, test.n_candidate, test.n_champion,
    )  # fmt: skip


@dataclass(frozen=True)
class ABSummary:
    """Final read-out of an A/B test (A = champion, B = candidate), always-valid numbers."""

    effect: float | None
    ci: tuple[float, float]
    p_value: float
    relative_lift: float | None
    n_a: int
    n_b: int


def ab_summary(test: MSPRT) -> ABSummary:
    """Effect, always-valid CI and p-value, and lift ``effect / mean(champion)``.

    ``relative_lift`` is None when an arm is empty or the champion's mean is 0.
    """
    base = test.mean_champion
    effect = test.effect
    lift = None if effect is None or not base else effect / base
    return ABSummary(
        effect, test.confidence_interval, test.p_value, lift, test.n_champion, test.n_candidate
    )
