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

import numpy as np
import pandas as pd

from livemodel.errors import InvalidInputError
from livemodel.monitor.calculators import QualityConfig
from livemodel.monitor.reference import MonitorReference, canonical_frame
from livemodel.monitor.results import (
    ALL,
    DATA_DRIFT,
    DATA_QUALITY,
    ESTIMATED,
    REALIZED,
    MetricResult,
)
from livemodel.monitor.suite import MonitorSuite
from livemodel.monitor.summary import (
    SAMPLE_ROWS,
    WindowSummary,
    merge_all,
    row_keys,
    summarize_chunk,
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

    ``probability`` is the positive-class column of a binary model or a mapping of every
    class to its column. Columns other than these and ``target`` are features.
    """
    if not isinstance(current, pd.DataFrame):
        raise InvalidInputError(f"current must be a pandas DataFrame, not {type(current).__name__}")
    if isinstance(segments, str):
        raise InvalidInputError("segments must be a sequence of column names, e.g. ['carrier']")
    if not isinstance(reference, pd.DataFrame):
        raise InvalidInputError(f"reference must be a DataFrame, not {type(reference).__name__}")
    for role, column in (("target", target), ("prediction", prediction)):
        if column is not None and column not in reference.columns:
            raise InvalidInputError(
                f"the reference has no {role} column {column!r}: performance is realized "
                "and estimated against a reference with the target and the model outputs"
            )
    ref = MonitorReference.from_frame(
        reference, target=target, prediction=prediction, probability=probability
    )
    if len(ref.sample) > SAMPLE_ROWS:  # row-based methods fit on a bounded sample
        ref = _with_sample(ref, ref.sample.sample(n=SAMPLE_ROWS, random_state=seed))
    has_target = target is not None and target in current.columns
    outputs_given = prediction is not None and prediction in current.columns
    if target is not None and not has_target and outputs_given and not ref.has_labels:
        raise InvalidInputError(
            "to estimate performance without labels, the reference needs the target and "
            "the model outputs"
        )
    suite = MonitorSuite(
        drift=drift, quality=quality, estimate=not has_target, multivariate=multivariate,
        seed=seed,
    ).fit(ref, segments)  # fmt: skip
    canonical = canonical_frame(
        current,
        target=target if has_target else None,
        prediction=prediction if outputs_given else None,
        probability=_present(probability, current),
        classes=ref.classes,
    )
    summaries: dict[str, WindowSummary] = {ALL: WindowSummary.empty(suite.plan_)}
    for start in range(0, len(canonical), _CHUNK_ROWS):
        chunk = canonical.iloc[start : start + _CHUNK_ROWS]
        keys = row_keys(np.arange(start, start + len(chunk), dtype=np.int64))
        summaries = merge_all(summaries, summarize_chunk(suite.plan_, chunk, keys))
    results = suite.calculate(summaries)
    parts = {
        key: Report(results[key], summaries[key].n_rows, summaries[key].n_labelled, key)
        for key in results
        if key != ALL
    }
    whole = summaries[ALL]
    return Report(results[ALL], whole.n_rows, whole.n_labelled, ALL, parts)


def _present(
    probability: str | Mapping[Any, str] | None, frame: pd.DataFrame
) -> str | Mapping[Any, str] | None:
    if isinstance(probability, str):
        return probability if probability in frame.columns else None
    if probability is None:
        return None
    if all(column in frame.columns for column in probability.values()):
        return probability
    return None


def _with_sample(ref: MonitorReference, sample: pd.DataFrame) -> MonitorReference:
    from dataclasses import replace

    return replace(ref, sample=sample.reset_index(drop=True))
