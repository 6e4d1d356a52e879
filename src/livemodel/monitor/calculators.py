"""Calculators on profiles: data drift, output (prediction) drift, label drift, data quality.

Each follows the contract ``fit(reference) -> self``, ``calculate(window) ->
tuple[MetricResult, ...]`` where ``reference`` is a
:class:`~livemodel.monitor.reference.MonitorReference` and ``window`` a
:class:`~livemodel.monitor.summary.WindowSummary`. They only read profiles, so their cost
does not depend on the number of rows.

Data quality alerts (:class:`QualityConfig`):

* ``missing_rate`` above the reference's rate ``p0`` plus ``missing_sigmas`` binomial
  standard errors at the window's size (``p0 = 0``: any missing value alerts);
* ``out_of_range_rate`` (numeric: values below the reference minimum or above its
  maximum, read from the histogram's under- and overflow buckets, whose edges are the
  signature's min and max; infinite values count too) above ``out_of_range_threshold``;
* ``unseen_category_rate`` (values outside the signature's categories; exact while the
  profile counts every training category, else an upper estimate, marked
  ``approximate``) above ``unseen_threshold``;
* ``type_violation_rate`` (cells that are not of the column's type) above
  ``type_violation_threshold``; ``label_type_violation_rate`` likewise for labels that
  match no class or are not numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import numpy as np

from livemodel.errors import InvalidInputError
from livemodel.monitor.reference import MonitorReference
from livemodel.monitor.results import (
    DATA_DRIFT,
    DATA_QUALITY,
    OUTPUT_DRIFT,
    MetricResult,
    finite,
)
from livemodel.monitor.summary import WindowSummary
from livemodel.schema.signature import ColumnSchema
from livemodel.stats.columns import CategoricalColumnProfile, NumericColumnProfile
from livemodel.stats.drift import DriftConfig, compare_profiles
from livemodel.stats.profile import Profile

__all__ = [
    "LABEL_DRIFT",
    "DataDriftCalculator",
    "DataQualityCalculator",
    "OutputDriftCalculator",
    "QualityConfig",
]

LABEL_DRIFT = "label_drift"


def _check_fitted(calculator: object, attribute: str) -> None:
    if not hasattr(calculator, attribute):
        raise InvalidInputError(f"{type(calculator).__name__} is not fitted: call fit(reference)")


def drift_rows(
    reference: Profile,
    current: Profile,
    config: DriftConfig,
    calculator: str,
    relabel: dict[str, str] | None = None,
) -> tuple[MetricResult, ...]:
    """Every method's statistic and the verdict of every column, as results."""
    if reference.spec != current.spec:
        raise InvalidInputError("the window was profiled with another spec than the reference")
    with np.errstate(over="ignore", invalid="ignore"):
        # Values near the float limit overflow inside the sketch distances (a warning);
        # the statistic is then not finite and reported as undefined below.
        report = compare_profiles(reference, current, config)
    out: list[MetricResult] = []
    for name, verdict in report.verdicts.items():
        calc = (relabel or {}).get(name, calculator)
        n_current = current.columns[name].n
        for r in report.for_column(name):
            overflowed = r.statistic is not None and finite(r.statistic) is None
            out.append(
                MetricResult(
                    calc, r.method, name, r.statistic,
                    upper=None if r.p_value is not None else r.threshold,
                    threshold=r.threshold, alert=r.drifted and not overflowed, n=r.n_current,
                    reason="the statistic overflowed" if overflowed else r.reason,
                    details={"p_value": r.p_value, "raw_p_value": r.raw_p_value,
                             "n_reference": r.n_reference},
                )
            )  # fmt: skip
        undefined = verdict.reason is not None
        out.append(
            MetricResult(
                calc, "drift", name, None if undefined else float(verdict.drifted),
                alert=verdict.drifted, n=n_current, reason=verdict.reason,
                details={"kind": verdict.kind, "significant": verdict.significant,
                         "effect_exceeded": verdict.effect_exceeded},
            )
        )  # fmt: skip
    return tuple(out)


class DataDriftCalculator:
    """Univariate drift of every feature (and, as ``label_drift``, of the target)."""

    name = DATA_DRIFT

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config

    def fit(self, reference: MonitorReference) -> Self:
        self.reference_ = reference.profile
        self.relabel_ = {reference.target: LABEL_DRIFT} if reference.target else {}
        return self

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        config = self.config or DriftConfig()
        return drift_rows(self.reference_, window.features, config, DATA_DRIFT, self.relabel_)


class OutputDriftCalculator:
    """Drift of the model's outputs: the predicted label or value, and the probabilities."""

    name = OUTPUT_DRIFT

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config

    def fit(self, reference: MonitorReference) -> Self:
        self.reference_ = reference.output_profile
        return self

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        if self.reference_ is None or window.outputs is None:
            reason = "the reference has no model outputs"
            return (MetricResult(OUTPUT_DRIFT, "drift", None, None, reason=reason),)
        config = self.config or DriftConfig()
        return drift_rows(self.reference_, window.outputs, config, OUTPUT_DRIFT)


@dataclass(frozen=True)
class QualityConfig:
    """When data-quality rates alert (see the module docstring)."""

    missing_sigmas: float = 3.0
    out_of_range_threshold: float = 0.01
    unseen_threshold: float = 0.01
    type_violation_threshold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("missing_sigmas", "out_of_range_threshold", "unseen_threshold",
                     "type_violation_threshold"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInputError(f"QualityConfig.{name} must be a number")
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"QualityConfig.{name} must be finite and >= 0")


class DataQualityCalculator:
    """Missing, out-of-range, unseen-category and wrong-type rates, from the profile."""

    name = DATA_QUALITY

    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config

    def fit(self, reference: MonitorReference) -> Self:
        self.reference_ = reference.profile
        self.features_ = reference.features
        self.target_ = reference.target
        self.schemas_: dict[str, ColumnSchema] = {}
        if reference.signature is not None:
            self.schemas_ = {c.name: c for c in reference.signature.columns}
        return self

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]:
        _check_fitted(self, "reference_")
        config = self.config or QualityConfig()
        n = window.n_rows
        out: list[MetricResult] = []
        limit = config.type_violation_threshold
        for name in self.features_:
            if n == 0:
                out.append(_row("missing_rate", name, None, n, reason="empty window"))
                continue
            ref_col, col = self.reference_.columns[name], window.features.columns[name]
            absent = window.absent_rows.get(name, 0)
            out.append(self._missing(name, ref_col, col, n, absent=absent, config=config))
            if isinstance(col, NumericColumnProfile) and isinstance(ref_col, NumericColumnProfile):
                out.append(self._out_of_range(name, col, config))
            elif isinstance(col, CategoricalColumnProfile):
                out.append(self._unseen(name, col, config))
            bad = window.type_errors.get(name, 0)
            out.append(
                _row("type_violation_rate", name, bad / n, n,
                     upper=limit, threshold=limit, alert=bad / n > limit, details={"count": bad})
            )  # fmt: skip
        if self.target_ is not None:
            rate = window.label_errors / n if n else None
            out.append(
                _row("label_type_violation_rate", self.target_, rate, n,
                     reason=None if n else "empty window",
                     upper=limit, threshold=limit, alert=rate is not None and rate > limit,
                     details={"count": window.label_errors})
            )  # fmt: skip
        for name in sorted(window.unexpected):
            out.append(
                _row("unexpected_column", name, None, n, alert=True,
                     reason="this column is not in the reference")
            )  # fmt: skip
        return tuple(out)

    def _missing(
        self,
        name: str,
        ref_col: NumericColumnProfile | CategoricalColumnProfile,
        col: NumericColumnProfile | CategoricalColumnProfile,
        n: int,
        *,
        absent: int,
        config: QualityConfig,
    ) -> MetricResult:
        rate = col.missing / col.count if col.count else None
        p0 = ref_col.missing / ref_col.count if ref_col.count else 0.0
        upper = p0 + config.missing_sigmas * math.sqrt(p0 * (1.0 - p0) / n)
        details = {"count": col.missing, "absent_rows": absent, "reference_rate": p0}
        return _row(
            "missing_rate", name, rate, n, upper=upper, threshold=p0,
            alert=rate is not None and rate > upper, details=details,
            reason="the column is absent from the window" if absent == n else None,
        )  # fmt: skip

    def _out_of_range(
        self, name: str, col: NumericColumnProfile, config: QualityConfig
    ) -> MetricResult:
        if col.edges.size == 0:
            reason = "the reference has no values in this column: no range"
            return _row("out_of_range_rate", name, None, col.count, reason=reason)
        hist = col.histogram
        schema = self.schemas_.get(name)
        check_low = schema is None or schema.min is not None
        check_high = schema is None or schema.max is not None
        below = int(hist[0]) if check_low else 0
        above = int(hist[-1]) if check_high else 0
        infinite = col.infinite if check_low and check_high else 0
        count = below + above + infinite
        rate = count / col.count
        return _row(
            "out_of_range_rate", name, rate, col.count,
            upper=config.out_of_range_threshold, threshold=config.out_of_range_threshold,
            alert=rate > config.out_of_range_threshold,
            details={"below": below, "above": above, "infinite": infinite,
                     "min": float(col.edges[0]), "max": float(col.edges[-1])},
        )  # fmt: skip

    def _unseen(
        self, name: str, col: CategoricalColumnProfile, config: QualityConfig
    ) -> MetricResult:
        schema = self.schemas_.get(name)
        known = None if schema is None else schema.categories
        profiled = {str(c) for c in col.categories}
        if schema is not None and schema.type.value == "categorical" and known is None:
            reason = "training had too many categories to enumerate: unseen values not checked"
            return _row("unseen_category_rate", name, None, col.count, reason=reason)
        approximate = known is not None and not set(known) <= profiled
        count = col.other
        if approximate and known is not None:
            # Rare training categories fall in "other"; remove the ones the bounded
            # frequent-value summary still tracks (an upper estimate remains).
            known_set = set(known)
            count -= sum(c for value, c in col.unseen.items() if value in known_set)
            count = max(count, 0)
        rate = count / col.count
        top = [value for value, _ in col.unseen.items() if known is None or value not in set(known)]
        return _row(
            "unseen_category_rate", name, rate, col.count,
            upper=config.unseen_threshold, threshold=config.unseen_threshold,
            alert=rate > config.unseen_threshold,
            details={"count": count, "approximate": approximate, "top_unseen": top[:10]},
        )  # fmt: skip


def _row(
    metric: str,
    column: str,
    value: float | None,
    n: int,
    *,
    upper: float | None = None,
    threshold: float | None = None,
    alert: bool = False,
    reason: str | None = None,
    details: Mapping[str, object] | None = None,
) -> MetricResult:
    return MetricResult(
        DATA_QUALITY, metric, column, value, upper=upper, threshold=threshold, alert=alert,
        n=n, reason=reason, details=details or {},
    )  # fmt: skip
