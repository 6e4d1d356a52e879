"""The set of calculators run on every window, and how segments get their own reference.

:class:`MonitorSuite` is fitted once per reference; :meth:`MonitorSuite.calculate` then
turns the per-segment summaries of a window into results. A segment (``carrier=AA``) is
compared with the same segment of the reference: drift and output drift with profiles of
the reference sample's rows in that segment, realized performance with the metric on
them. Estimators (CBPE/DLE) are fitted once on the whole reference and applied to the
segment's rows; data quality uses the whole reference's rates and the signature;
multivariate drift runs on whole windows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.monitor.calculators import (
    DataDriftCalculator,
    DataQualityCalculator,
    OutputDriftCalculator,
    QualityConfig,
)
from livemodel.monitor.performance import (
    EstimatedPerformance,
    MultivariateDrift,
    RealizedPerformance,
)
from livemodel.monitor.reference import MonitorReference
from livemodel.monitor.results import ALL, MetricResult
from livemodel.monitor.summary import SAMPLE_ROWS, ChunkPlan, SegmentPlan, WindowSummary
from livemodel.stats.columns import CategoricalColumnProfile
from livemodel.stats.drift import DriftConfig

__all__ = ["Calculator", "MonitorSuite", "segment_plan"]

MAX_SEGMENTS = 20


class Calculator(Protocol):
    """``fit(reference) -> self``, ``calculate(window) -> results``."""

    name: str

    def fit(self, reference: MonitorReference) -> Any: ...

    def calculate(self, window: WindowSummary) -> tuple[MetricResult, ...]: ...


def segment_plan(
    reference: MonitorReference, column: str, max_segments: int = MAX_SEGMENTS
) -> SegmentPlan:
    """Segments of a categorical feature: its ``max_segments`` most frequent reference
    values, the rest pooled as ``(other)``."""
    if not isinstance(column, str) or column not in reference.features:
        raise SchemaError(f"cannot segment by {column!r}: not a feature of the model")
    profile = reference.profile.columns[column]
    if not isinstance(profile, CategoricalColumnProfile):
        raise InvalidInputError(f"cannot segment by {column!r}: it is numeric, not categorical")
    if max_segments < 1:
        raise InvalidInputError("max_segments must be >= 1")
    return SegmentPlan(column, tuple(profile.categories[:max_segments]))


class MonitorSuite:
    """Every calculator, fitted on one reference, with per-segment variants."""

    def __init__(
        self,
        *,
        drift: DriftConfig | None = None,
        quality: QualityConfig | None = None,
        estimate: bool = True,
        multivariate: bool = True,
        band_sigmas: float = 3.0,
        max_segments: int = MAX_SEGMENTS,
        sample_rows: int = SAMPLE_ROWS,
        seed: int = 0,
    ) -> None:
        self.drift = drift
        self.quality = quality
        self.estimate = estimate
        self.multivariate = multivariate
        self.band_sigmas = band_sigmas
        self.max_segments = max_segments
        self.sample_rows = sample_rows
        self.seed = seed

    def fit(self, reference: MonitorReference, segments: Sequence[str] = ()) -> Self:
        if isinstance(segments, str):
            raise InvalidInputError("segments must be a sequence of column names")
        plans = tuple(
            segment_plan(reference, c, self.max_segments) for c in dict.fromkeys(segments)
        )
        self.reference_ = reference
        self.plan_ = ChunkPlan.of(reference, plans, self.sample_rows)
        self.quality_ = DataQualityCalculator(self.quality).fit(reference)
        self.estimated_: EstimatedPerformance | None = None
        if self.estimate:
            self.estimated_ = EstimatedPerformance(
                band_sigmas=self.band_sigmas, seed=self.seed
            ).fit(reference)
        whole: list[Calculator] = [*self._per_reference(reference), self.quality_]
        if self.estimated_ is not None:
            whole.append(self.estimated_)
        if self.multivariate:
            whole.append(MultivariateDrift(seed=self.seed).fit(reference))
        self.calculators_: dict[str, list[Calculator]] = {ALL: whole}
        return self

    def _per_reference(self, reference: MonitorReference) -> list[Calculator]:
        return [
            DataDriftCalculator(self.drift).fit(reference),
            OutputDriftCalculator(self.drift).fit(reference),
            RealizedPerformance(band_sigmas=self.band_sigmas).fit(reference),
        ]

    def for_segment(self, key: str) -> list[Calculator]:
        """The calculators of segment ``key`` (``column=value``), fitted on first use."""
        if not hasattr(self, "calculators_"):
            raise InvalidInputError("MonitorSuite is not fitted: call fit(reference)")
        if key in self.calculators_:
            return self.calculators_[key]
        column = key.split("=", 1)[0]
        plans = {p.column: p for p in self.plan_.segments}
        if column not in plans:
            raise InvalidInputError(f"{key!r} is not a segment of this suite")
        sample = self.reference_.sample
        rows = plans[column].keys(sample[column]) == key
        part = self.reference_.for_segment(key, rows)
        calculators: list[Calculator] = [*self._per_reference(part), self.quality_]
        if self.estimated_ is not None:
            calculators.append(self.estimated_.with_thresholds(part))
        self.calculators_[key] = calculators
        return calculators

    def calculate(
        self, summaries: Mapping[str, WindowSummary]
    ) -> dict[str, tuple[MetricResult, ...]]:
        """Results per segment key (``ALL`` first, then segments in sorted order)."""
        out: dict[str, tuple[MetricResult, ...]] = {}
        for key in sorted(summaries, key=lambda k: (k != ALL, k)):
            results: list[MetricResult] = []
            for calculator in self.for_segment(key):
                results.extend(calculator.calculate(summaries[key]))
            out[key] = tuple(results)
        return out
