"""Offline monitoring of two frames: :func:`compare` and its :class:`Report`.

The same calculators as the log monitor, on a ``reference`` frame (what the model was
validated on) and a ``current`` one (what it sees now):

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
>>> cur = ref.assign(x=ref["x"] + 1.0)
>>> report = compare(ref, cur)
>>> report.drifted_columns
('x',)

Performance: with ``target`` (and the model's ``prediction``/``probability`` columns) in
``current``, the realized metrics; without the target in ``current``, CBPE (classifiers)
or DLE (regression) estimates with their bands, fitted on ``reference``, which must then
hold the target and the model outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from livemodel.errors import InvalidInputError
from livemodel.monitor.calculators import QualityConfig
from livemodel.monitor.results import (
    ALL,
    DATA_DRIFT,
    DATA_QUALITY,
    ESTIMATED,
    REALIZED,
    MetricResult,
)
from livemodel.stats.drift import DriftConfig

__all__ = ["Report", "compare"]

_CHUNK_ROWS = 100_000
_FRAME_COLUMNS = ("segment", "calculator", "metric", "column", "value", "lower", "upper",
                  "threshold", "alert", "n", "reason")  # fmt: skip


@dataclass(frozen=True)
class Report:
    """Results of one comparison; ``segments`` holds one sub-report per segment value."""

    results: tuple[MetricResult, ...]
    n_rows: int
    n_labelled: int
    segment: str = ALL
    segment_reports: Mapping[str, Report] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Features whose drift verdict is positive (a significant test and a large effect)."""
        return tuple(
            r.column
            for r in self.results
            if r.calculator == DATA_DRIFT and r.metric == "drift" and r.alert and r.column
        )

    @property
    def quality(self) -> dict[str, dict[str, float | None]]:
        """Per column, its quality rates (``None`` where undefined)."""
        out: dict[str, dict[str, float | None]] = {}
        for r in self.results:
            if r.calculator == DATA_QUALITY and r.column is not None:
                out.setdefault(r.column, {})[r.metric] = r.value
        return out

    @property
    def performance(self) -> dict[str, MetricResult]:
        """Per metric: realized where the current frame had labels, else estimated."""
        realized = {r.metric: r for r in self.results if r.calculator == REALIZED}
        if self.n_labelled > 0 and realized:
            return realized
        return {r.metric: r for r in self.results if r.calculator == ESTIMATED}

    @property
    def segments(self) -> Mapping[str, Report]:
        return self.segment_reports

    @property
    def alerts(self) -> tuple[MetricResult, ...]:
        return tuple(r for r in self.results if r.alert)

    def to_frame(self) -> pd.DataFrame:
        """One row per result, segments included (``segment == "*"`` is the whole frame)."""
        rows = [{"segment": self.segment, **r.to_dict()} for r in self.results]
        for report in self.segment_reports.values():
            rows += [{"segment": report.segment, **r.to_dict()} for r in report.results]
        frame = pd.DataFrame(rows, columns=[*_FRAME_COLUMNS, "details"])
        return frame.drop(columns="details")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data."""
        return {
            "segment": self.segment,
            "n_rows": self.n_rows,
            "n_labelled": self.n_labelled,
            "drifted_columns": list(self.drifted_columns),
            "quality": self.quality,
            "performance": {m: r.to_dict() for m, r in self.performance.items()},
            "results": [r.to_dict() for r in self.results],
            "segments": {k: v.to_dict() for k, v in self.segment_reports.items()},
        }


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    target: str | None = None,
    prediction: str | None = None,
    probability: str | Mapping[Any, str] | None = None,
    segments: Sequence[str] = (),
    drift: DriftConfig | None = None,
    quality: QualityConfig | None = None,
    multivariate: bool = True,
    seed: int = 0,
) -> Report:
    """Compare ``current`` with ``reference``: drift, quality, performance, per segment.

    The one-shot form of :class:`~livemodel.monitor.fitted.Reference`: to compare many
    windows with one reference, fit it once (``Reference(reference, ...)``) and call its
    ``compare(window)``, which gives the same results. ``probability`` is the
    positive-class column of a binary model or a mapping of every class to its column.
    Columns other than these and ``target`` are features.
    """
    if not isinstance(current, pd.DataFrame):
        raise InvalidInputError(f"current must be a pandas DataFrame, not {type(current).__name__}")
    from livemodel.monitor.fitted import Reference

    # Estimators are fitted only when this one window needs them (it has no labels).
    has_target = target is not None and target in current.columns
    fitted = Reference(
        reference, target=target, prediction=prediction, probability=probability,
        segments=segments, drift=drift, quality=quality, multivariate=multivariate,
        estimate=not has_target, seed=seed,
    )  # fmt: skip
    return fitted.compare(current)
