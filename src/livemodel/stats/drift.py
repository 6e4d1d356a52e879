"""Univariate drift: exact tests on raw samples and the profile-based comparison.

The exact functions take 1-D samples (NaN dropped) or bucket counts and agree with scipy
where scipy computes the same thing. :func:`compare_profiles` is what runs at scale: it
compares two :class:`~livemodel.stats.profile.Profile` objects column by column.

At large sample sizes a p-value flags differences nobody cares about, so a column is
reported as drifted only when **both** a hypothesis test is significant after
multiple-testing correction (KS for numeric columns, chi-square for categorical ones) **and**
an effect size exceeds its threshold (Wasserstein of the 1%-trimmed distributions over
the reference's standard deviation, PSI or Jensen-Shannon). A
method that cannot be computed (empty window, all-missing column, a reference without
spread for the normalised Wasserstein) yields ``statistic=None`` with a ``reason`` and
never counts as drift.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

import numpy as np
from scipy import special

from livemodel.errors import InvalidInputError, StatisticsError
from livemodel.stats.columns import CategoricalColumnProfile, ColumnProfile, NumericColumnProfile
from livemodel.stats.profile import Profile
from livemodel.stats.sketch import FloatArray, kll_distances

__all__ = [
    "ColumnDrift",
    "ColumnVerdict",
    "DriftConfig",
    "DriftReport",
    "TestResult",
    "chi2_test",
    "compare_profiles",
    "jensen_shannon",
    "ks_test",
    "psi",
    "wasserstein",
]

Method = Literal["ks", "chi2", "wasserstein", "psi", "jensen_shannon"]
Correction = Literal["bonferroni", "holm", "fdr_bh", "none"]
TEST_METHODS: frozenset[str] = frozenset({"ks", "chi2"})
EFFECT_METHODS: frozenset[str] = frozenset({"wasserstein", "psi", "jensen_shannon"})
NUMERIC_METHODS: frozenset[str] = frozenset({"ks", "wasserstein", "psi", "jensen_shannon"})
CATEGORICAL_METHODS: frozenset[str] = frozenset({"chi2", "psi", "jensen_shannon"})
PSI_EPSILON = 1e-4
WASSERSTEIN_TRIM = 0.01
_KSTWO_MAX_N = 10_000


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value."""

    statistic: float
    p_value: float


@dataclass(frozen=True)
class DriftConfig:
    """How :func:`compare_profiles` decides.

    Effect thresholds are in scale-free units: the 1%-trimmed Wasserstein distance over
    the reference's standard deviation, PSI, and the base-2 Jensen-Shannon distance. All
    default to 0.1, as in Evidently: a 0.25-sigma mean shift or a 1.3x change of scale
    exceeds them clearly, while trivial shifts and the noise of sketch-based statistics
    (about 0.05 at most for the Wasserstein distance at k=200, even on exponential or
    lognormal columns) stay below. ``thresholds`` overrides them per ``(column, method)``,
    e.g. with the values :func:`livemodel.stats.thresholds.fit_thresholds` learns.
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    numeric_methods: tuple[Method, ...] = ("ks", "wasserstein", "psi", "jensen_shannon")
    categorical_methods: tuple[Method, ...] = ("chi2", "psi", "jensen_shannon")
    wasserstein_threshold: float = 0.1
    psi_threshold: float = 0.1
    jensen_shannon_threshold: float = 0.1
    thresholds: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if self.correction not in get_args(Correction):
            raise InvalidInputError(f"unknown correction {self.correction!r}")
        for allowed, methods in (
            (NUMERIC_METHODS, self.numeric_methods),
            (CATEGORICAL_METHODS, self.categorical_methods),
        ):
            if not isinstance(methods, tuple) or not set(methods) <= allowed:
                raise InvalidInputError(f"methods must be a tuple drawn from {sorted(allowed)}")
        checked: dict[tuple[str, str], float] = {}
        for key, value in dict(self.thresholds).items():
            if not (isinstance(key, tuple) and len(key) == 2 and key[1] in EFFECT_METHODS):
                raise InvalidInputError(f"threshold keys are (column, effect method): {key!r}")
            checked[(str(key[0]), str(key[1]))] = _threshold_value(value)
        for name in ("wasserstein_threshold", "psi_threshold", "jensen_shannon_threshold"):
            _threshold_value(getattr(self, name))
        object.__setattr__(self, "thresholds", MappingProxyType(checked))

    def threshold(self, column: str, method: str) -> float:
        default = getattr(self, f"{method}_threshold")
        return float(self.thresholds.get((column, method), default))

    def methods_for(self, column: ColumnProfile) -> tuple[Method, ...]:
        if isinstance(column, NumericColumnProfile):
            return self.numeric_methods
        return self.categorical_methods

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "numeric_methods": list(self.numeric_methods),
            "categorical_methods": list(self.categorical_methods),
            "wasserstein_threshold": self.wasserstein_threshold,
            "psi_threshold": self.psi_threshold,
            "jensen_shannon_threshold": self.jensen_shannon_threshold,
            "thresholds": [
                {"column": c, "method": m, "threshold": t} for (c, m), t in self.thresholds.items()
            ],
        }


def _threshold_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise InvalidInputError(f"thresholds must be numbers, got {value!r}")
    if not (np.isfinite(value) and value >= 0):
        raise InvalidInputError(f"thresholds must be finite and >= 0, got {value!r}")
    return float(value)


# -- exact statistics on raw samples ------------------------------------------------------
def ks_test(reference: object, current: object) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, method ``auto``).

    NaN is dropped; infinite values take part as the most extreme ranks.
    """
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    with warnings.catch_warnings():
        # scipy falls back to the asymptotic p-value, which is what we want, but warns.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        from scipy import stats  # scipy.stats costs ~1 s to import: only here

        result = stats.ks_2samp(ref, cur)
    return TestResult(float(result.statistic), float(result.pvalue))


def wasserstein(reference: object, current: object) -> float:
    """First Wasserstein distance between the empirical distributions (same units)."""
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise StatisticsError("the Wasserstein distance is undefined for infinite values")
    grid = np.sort(np.concatenate([ref, cur]))
    ref_cdf = np.searchsorted(np.sort(ref), grid[:-1], side="right") / ref.size
    cur_cdf = np.searchsorted(np.sort(cur), grid[:-1], side="right") / cur.size
    return float(np.sum(np.abs(ref_cdf - cur_cdf) * np.diff(grid)))


def chi2_test(reference_counts: object, current_counts: object) -> TestResult:
    """Chi-square test of homogeneity on a 2 x k table of counts (no Yates correction).

    Buckets empty in both samples are dropped, as they carry no information (scipy's
    ``chi2_contingency`` refuses them). With a single non-empty bucket the samples cannot
    differ: statistic 0, p-value 1.
    """
    ref, cur = _counts_pair(reference_counts, current_counts)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return TestResult(0.0, 1.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return TestResult(statistic, float(special.chdtrc(table.shape[1] - 1, statistic)))


def psi(reference_counts: object, current_counts: object) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bucket proportions.

    Proportions are floored at ``PSI_EPSILON`` so an empty bucket gives a large but finite
    contribution (the convention of Evidently and most PSI tooling).
    """
    ref, cur = _counts_pair(reference_counts, current_counts)
    r = np.maximum(ref / ref.sum(), PSI_EPSILON)
    c = np.maximum(cur / cur.sum(), PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_counts: object, current_counts: object, *, base: float = 2.0) -> float:
    """Jensen-Shannon *distance* (square root of the divergence), in [0, 1] for base 2."""
    if not base > 1:
        raise InvalidInputError(f"base must be > 1, got {base}")
    ref, cur = _counts_pair(reference_counts, current_counts)
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    divergence = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / 2
    return float(np.sqrt(max(divergence, 0.0) / np.log(base)))


def _sample(values: object, name: str) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a 1-D array of numbers: {exc}") from exc
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D, got shape {arr.shape}")
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise StatisticsError(f"{name} has no non-missing values")
    return arr


def _counts_pair(reference: object, current: object) -> tuple[FloatArray, FloatArray]:
    pair = []
    for name, values in (("reference_counts", reference), ("current_counts", current)):
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must be a 1-D array of counts: {exc}") from exc
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidInputError(f"{name} must be a non-empty 1-D array")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise InvalidInputError(f"{name} must be finite and non-negative")
        if arr.sum() <= 0:
            raise StatisticsError(f"{name} are all zero")
        pair.append(arr)
    if pair[0].size != pair[1].size:
        raise InvalidInputError("reference and current counts must have the same length")
    return pair[0], pair[1]


# -- profile-based comparison -------------------------------------------------------------
@dataclass(frozen=True)
class ColumnDrift:
    """One method's result on one column.

    For tests (``ks``, ``chi2``) ``p_value`` is corrected for multiple testing (the raw
    value is ``raw_p_value``), ``threshold`` is the significance level and ``drifted``
    means significant. For effect sizes ``threshold`` bounds ``statistic`` and ``drifted``
    means ``statistic > threshold``. ``statistic is None`` when undefined (see ``reason``).
    """

    column: str
    method: Method
    statistic: float | None
    threshold: float | None
    p_value: float | None
    n_reference: int
    n_current: int
    drifted: bool
    reason: str | None = None
    raw_p_value: float | None = None


@dataclass(frozen=True)
class ColumnVerdict:
    """Whether a column drifted: a significant test AND an effect above its threshold."""

    column: str
    kind: Literal["numeric", "categorical"]
    drifted: bool
    significant: bool | None
    effect_exceeded: bool | None
    reason: str | None = None


@dataclass(frozen=True)
class DriftReport:
    results: tuple[ColumnDrift, ...]
    verdicts: Mapping[str, ColumnVerdict]
    config: DriftConfig

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(name for name, v in self.verdicts.items() if v.drifted)

    def for_column(self, column: str) -> tuple[ColumnDrift, ...]:
        return tuple(r for r in self.results if r.column == column)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return {
            "drifted_columns": list(self.drifted_columns),
            "verdicts": {name: dict(vars(v)) for name, v in self.verdicts.items()},
            "results": [dict(vars(r)) for r in self.results],
            "config": self.config.to_dict(),
        }


@dataclass(frozen=True)
class RawStatistic:
    """A statistic before thresholds and correction (shared with threshold fitting)."""

    statistic: float | None
    p_value: float | None
    n_reference: int
    n_current: int
    reason: str | None = None


def compare_profiles(
    reference: Profile, current: Profile, config: DriftConfig | None = None
) -> DriftReport:
    """Compare every column of two profiles of the same spec."""
    config = config or DriftConfig()
    if not isinstance(reference, Profile) or not isinstance(current, Profile):
        raise InvalidInputError("compare_profiles needs two Profile objects")
    if reference.spec != current.spec:
        raise InvalidInputError("reference and current profiles have different specs")
    raw: list[tuple[str, Method, RawStatistic]] = []
    for name, ref_col in reference.columns.items():
        cur_col = current.columns[name]
        methods = config.methods_for(ref_col)
        for method, value in column_statistics(ref_col, cur_col, methods).items():
            raw.append((name, method, value))
    adjusted = _adjust(
        [r.p_value for _, m, r in raw if m in TEST_METHODS and r.p_value is not None],
        config,
    )
    results = []
    for name, method, r in raw:
        if method in TEST_METHODS:
            p = next(adjusted) if r.p_value is not None else None
            drifted = p is not None and p < config.alpha
            results.append(
                ColumnDrift(name, method, r.statistic, config.alpha, p, r.n_reference,
                            r.n_current, drifted, r.reason, r.p_value)
            )  # fmt: skip
        else:
            threshold = config.threshold(name, method)
            drifted = r.statistic is not None and r.statistic > threshold
            results.append(
                ColumnDrift(name, method, r.statistic, threshold, None, r.n_reference,
                            r.n_current, drifted, r.reason)
            )  # fmt: skip
    verdicts = {
        name: _verdict(name, col, [r for r in results if r.column == name])
        for name, col in reference.columns.items()
    }
    return DriftReport(tuple(results), verdicts, config)


def column_statistics(
    reference: ColumnProfile,
    current: ColumnProfile,
    methods: Sequence[Method],
    *,
    trim: float = WASSERSTEIN_TRIM,
) -> dict[Method, RawStatistic]:
    """Each method's uncorrected statistic for one column (undefined ones carry a reason).

    The Wasserstein distance is taken between the distributions trimmed of ``trim`` of
    their mass at each end, then divided by the reference's standard deviation. Trimming
    1% halves the sketch's error on heavy-tailed columns (whose far tail a KLL sketch
    describes with a handful of items); tail changes still show in KS and PSI.
    """
    n_ref, n_cur = reference.n, current.n
    out: dict[Method, RawStatistic] = {}
    reason = None
    if n_ref == 0:
        reason = "reference has no non-missing values"
    elif n_cur == 0:
        reason = "current window has no non-missing values"
    for method in methods:
        if reason is not None:
            out[method] = RawStatistic(None, None, n_ref, n_cur, reason)
        elif isinstance(reference, NumericColumnProfile) and isinstance(
            current, NumericColumnProfile
        ):
            out[method] = _numeric_statistic(method, reference, current, trim)
        elif isinstance(reference, CategoricalColumnProfile) and isinstance(
            current, CategoricalColumnProfile
        ):
            ref_b, cur_b = reference.bucket_counts(), current.bucket_counts()
            out[method] = _bucket_statistic(method, ref_b, cur_b, n_ref, n_cur)
        else:
            raise InvalidInputError("reference and current columns are of different kinds")
    return out


def _numeric_statistic(
    method: Method, ref: NumericColumnProfile, cur: NumericColumnProfile, trim: float
) -> RawStatistic:
    n_ref, n_cur = ref.n, cur.n
    if method in ("psi", "jensen_shannon", "chi2"):
        return _bucket_statistic(method, ref.histogram, cur.histogram, n_ref, n_cur)
    d, distance = kll_distances(ref.sketch, cur.sketch, trim=trim)
    if method == "ks":
        return RawStatistic(d, ks_p_value(d, n_ref, n_cur), n_ref, n_cur)
    if method != "wasserstein":
        raise InvalidInputError(f"method {method!r} does not apply to numeric columns")
    scale = reference_scale(ref)
    if scale is None:
        return RawStatistic(None, None, n_ref, n_cur, "reference has no spread")
    return RawStatistic(distance / scale, None, n_ref, n_cur)


def ks_p_value(d: float, n_ref: int, n_cur: int) -> float:
    """Two-sided KS p-value as ``scipy.stats.ks_2samp(method="asymp")`` computes it
    (``kstwo`` at ``round(nm / (n + m))``); past an effective size of 10,000, where
    ``kstwo`` gets slow, Kolmogorov's limit ``kstwobign`` (within 1% of it there)."""
    en = n_ref * n_cur / (n_ref + n_cur)
    if en <= _KSTWO_MAX_N:
        from scipy import stats

        return float(stats.kstwo.sf(d, max(round(en), 1)))  # one value each: en = 0.5
    return float(special.kolmogorov(d * np.sqrt(en)))  # = scipy.stats.kstwobign.sf


def reference_scale(ref: NumericColumnProfile) -> float | None:
    """The reference's sample standard deviation (ddof=1), which makes the Wasserstein
    distance scale-free as in Evidently; ``None`` when it is zero or undefined.

    The standard deviation, not a robust spread, on purpose: the sketch's error in the
    distance grows with the length of the tails, and the standard deviation grows with
    it, so the noise floor stays near 0.05 (k=200) even for lognormal columns.
    """
    std = ref.std
    return std if std is not None and std > 0 else None


def _bucket_statistic(method: Method, ref: Any, cur: Any, n_ref: int, n_cur: int) -> RawStatistic:
    if method == "psi":
        return RawStatistic(psi(ref, cur), None, n_ref, n_cur)
    if method == "jensen_shannon":
        return RawStatistic(jensen_shannon(ref, cur), None, n_ref, n_cur)
    if method == "chi2":
        result = chi2_test(ref, cur)
        return RawStatistic(result.statistic, result.p_value, n_ref, n_cur)
    raise InvalidInputError(f"method {method!r} does not apply to categorical columns")


def _adjust(p_values: list[float], config: DriftConfig) -> Any:
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0 or config.correction == "none":
        return iter(p.tolist())
    if config.correction == "bonferroni":
        adjusted = np.minimum(p * p.size, 1.0)
    elif config.correction == "holm":
        order = np.argsort(p, kind="stable")
        stepped = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
        adjusted = np.empty_like(p)
        adjusted[order] = np.minimum(stepped, 1.0)
    else:
        from scipy import stats

        adjusted = stats.false_discovery_control(p, method="bh")
    return iter(adjusted.tolist())


def _verdict(name: str, col: ColumnProfile, results: list[ColumnDrift]) -> ColumnVerdict:
    kind: Literal["numeric", "categorical"] = (
        "numeric" if isinstance(col, NumericColumnProfile) else "categorical"
    )
    tests = [r for r in results if r.method in TEST_METHODS]
    effects = [r for r in results if r.method in EFFECT_METHODS]
    defined_tests = [r for r in tests if r.statistic is not None]
    defined_effects = [r for r in effects if r.statistic is not None]
    significant = any(r.drifted for r in defined_tests) if defined_tests else None
    exceeded = any(r.drifted for r in defined_effects) if defined_effects else None
    reasons = [r.reason for r in results if r.reason]
    if (tests and significant is None) or (effects and exceeded is None) or not results:
        reason = reasons[0] if reasons else "no method configured for this column"
        return ColumnVerdict(name, kind, False, significant, exceeded, reason)
    drifted = significant is not False and exceeded is not False
    return ColumnVerdict(name, kind, drifted, significant, exceeded, None)
