"""Whether to retrain, decided from monitoring results and the loop's history (pure).

:func:`latest_window` picks the window the triggers read: the latest complete window of
the whole traffic (segment ``*``) holding enough rows. :func:`evaluate` checks every
configured trigger on it and the schedule against the last retrain, then applies the
cooldown. Nothing here reads a database or a clock: the controller hands in the numbers.

>>> from datetime import UTC, datetime, timedelta
>>> from livemodel.loop.policy import Triggers
>>> now = datetime(2026, 1, 31, tzinfo=UTC)
>>> d = evaluate(Triggers(schedule=timedelta(days=30)), None, now=now,
...              last_retrain=None, baseline=now - timedelta(days=45),
...              cooldown=timedelta(days=7))
>>> d.retrain, [h.kind for h in d.hits]
(True, ['schedule'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from livemodel.loop.policy import (
    ConceptDriftTrigger,
    PerformanceTrigger,
    QualityTrigger,
    Triggers,
)
from livemodel.monitor.performance import LOWER_IS_BETTER
from livemodel.monitor.results import (
    ALL,
    DATA_QUALITY,
    ESTIMATED,
    MULTIVARIATE,
    REALIZED,
    MetricResult,
    WindowResult,
)

__all__ = ["Decision", "TriggerHit", "evaluate", "latest_window"]

_QUALITY_LIMITS = (
    ("missing_rate", "max_missing_rate"),
    ("unseen_category_rate", "max_unseen_rate"),
    ("out_of_range_rate", "max_out_of_range_rate"),
)


@dataclass(frozen=True)
class TriggerHit:
    """One trigger that fired, with the numbers that made it fire."""

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "details": dict(self.details)}


@dataclass(frozen=True)
class Decision:
    """What the triggers say: ``retrain`` only when something fired and no cooldown holds."""

    retrain: bool
    hits: tuple[TriggerHit, ...]
    window: tuple[datetime, datetime] | None = None
    blocked: str | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h.kind for h in self.hits))

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.retrain,
            "hits": [h.to_dict() for h in self.hits],
            "window": None if self.window is None else [t.isoformat() for t in self.window],
            "blocked": self.blocked,
        }


def latest_window(
    windows: Iterable[WindowResult],
    now: datetime,
    *,
    min_rows: int,
    rows_per_window: int | None = None,
) -> WindowResult | None:
    """The latest complete whole-traffic window with at least ``min_rows`` rows.

    A time window is complete once it ended (``end <= now``); a count window once it holds
    ``rows_per_window`` rows.
    """
    complete = [
        w
        for w in windows
        if w.segment == ALL
        and w.n_rows >= min_rows
        and (w.n_rows >= rows_per_window if rows_per_window is not None else w.end <= now)
    ]
    return max(complete, key=lambda w: w.start, default=None)


def evaluate(
    triggers: Triggers,
    window: WindowResult | None,
    *,
    now: datetime,
    last_retrain: datetime | None,
    baseline: datetime | None,
    cooldown: timedelta,
    concept: Sequence[MetricResult] = (),
) -> Decision:
    """Check every trigger on ``window`` and the schedule; hold back within ``cooldown``.

    ``last_retrain`` is when the loop last retrained this model (None: never);
    ``baseline`` is when the current version came to be, the schedule's start when the
    loop never retrained. ``concept`` holds the version's concept-drift results (the
    summary rows of :mod:`livemodel.monitor.concept`), read by the concept-drift trigger.
    """
    hits: list[TriggerHit] = []
    if triggers.concept_drift is not None:
        hits.extend(_concept(triggers.concept_drift, concept))
    if window is not None:
        results = window.results
        if triggers.drift is not None:
            hits.extend(_drift(triggers, window))
        if triggers.multivariate:
            hits.extend(_multivariate(results))
        for perf in triggers.performance:
            hits.extend(_performance(perf, results))
        if triggers.quality is not None:
            hits.extend(_quality(triggers.quality, results))
    if triggers.schedule is not None:
        start = last_retrain or baseline
        if start is not None and now - start >= triggers.schedule:
            hits.append(
                TriggerHit(
                    "schedule",
                    f"{_days(now - start)} since the last retrain; the schedule is "
                    f"every {_days(triggers.schedule)}",
                    {
                        "since": start.isoformat(),
                        "every_seconds": triggers.schedule.total_seconds(),
                    },
                )
            )
    span = None if window is None else (window.start, window.end)
    if not hits:
        return Decision(False, (), span)
    if last_retrain is not None and now - last_retrain < cooldown:
        until = last_retrain + cooldown
        return Decision(False, tuple(hits), span, blocked=f"cooldown until {until.isoformat()}")
    return Decision(True, tuple(hits), span)


def _drift(triggers: Triggers, window: WindowResult) -> list[TriggerHit]:
    spec = triggers.drift
    if spec is None:
        return []
    drifted = [c for c in window.drifted_columns if spec.features is None or c in spec.features]
    if len(drifted) < spec.min_features:
        return []
    return [
        TriggerHit(
            "drift",
            f"{len(drifted)} feature(s) drifted ({', '.join(drifted[:5])}); "
            f"the trigger needs {spec.min_features}",
            {"columns": drifted, "min_features": spec.min_features, "n_rows": window.n_rows},
        )
    ]


def _multivariate(results: Sequence[MetricResult]) -> list[TriggerHit]:
    return [
        TriggerHit(
            "multivariate",
            f"multivariate drift: {r.metric} {r.value:.4g} outside [{_num(r.lower)}, "
            f"{_num(r.upper)}]",
            {"metric": r.metric, "value": r.value, "lower": r.lower, "upper": r.upper, "n": r.n},
        )
        for r in results
        if r.calculator == MULTIVARIATE and r.alert and r.value is not None
    ]


def _performance(spec: PerformanceTrigger, results: Sequence[MetricResult]) -> list[TriggerHit]:
    sources = (REALIZED, ESTIMATED) if spec.source == "any" else (_SOURCES[spec.source],)
    lower_better = spec.metric in LOWER_IS_BETTER
    hits = []
    for r in results:
        if r.calculator not in sources or r.metric != spec.metric or r.column is not None:
            continue
        if r.value is None or r.n < spec.min_rows:
            continue
        kind = "realized" if r.calculator == REALIZED else "estimated"
        numbers = {
            "source": kind, "metric": r.metric, "value": r.value, "n": r.n,
            "reference": r.threshold, "floor": spec.floor, "max_drop": spec.max_drop,
        }  # fmt: skip
        if spec.floor is not None and (
            r.value > spec.floor if lower_better else r.value < spec.floor
        ):
            worse = "above the ceiling" if lower_better else "below the floor"
            hits.append(
                TriggerHit(
                    "performance",
                    f"{kind} {r.metric} {r.value:.4g} is {worse} {spec.floor:g}",
                    numbers,
                )
            )
            continue
        if spec.max_drop is not None and r.threshold is not None:
            drop = (r.value - r.threshold) if lower_better else (r.threshold - r.value)
            if drop > spec.max_drop:
                hits.append(
                    TriggerHit(
                        "performance",
                        f"{kind} {r.metric} {r.value:.4g} is {drop:.4g} worse than the "
                        f"reference's {r.threshold:.4g} (allowed {spec.max_drop:g})",
                        {**numbers, "drop": drop},
                    )
                )
    return hits


_SOURCES = {"realized": REALIZED, "estimated": ESTIMATED}


def _quality(spec: QualityTrigger, results: Sequence[MetricResult]) -> list[TriggerHit]:
    hits = []
    for metric, key in _QUALITY_LIMITS:
        limit = getattr(spec, key)
        if limit is None:
            continue
        for r in results:
            if r.calculator != DATA_QUALITY or r.metric != metric or r.value is None:
                continue
            if spec.columns is not None and r.column not in spec.columns:
                continue
            if r.value > limit:
                hits.append(
                    TriggerHit(
                        "quality",
                        f"{metric} of {r.column} is {r.value:.4g}, above {key} {limit:g}",
                        {"metric": metric, "column": r.column, "value": r.value, "limit": limit},
                    )
                )
    return hits


def _concept(spec: ConceptDriftTrigger, results: Sequence[MetricResult]) -> list[TriggerHit]:
    hits = []
    for r in results:
        detector = r.metric.removesuffix("_detections")
        if r.calculator != "concept_drift" or detector == r.metric:
            continue
        if detector not in spec.detectors or r.details.get("order") != spec.order:
            continue
        count = int(r.value or 0)
        if count < spec.min_detections:
            continue
        last = dict(r.details.get("last") or {})
        start = dict(last.get("start") or {})
        hits.append(
            TriggerHit(
                "concept_drift",
                f"{detector} found {count} concept-drift detection(s) in the labelled error "
                f"stream ({spec.order} order); the last began at prediction "
                f"{start.get('prediction_id')} ({start.get('time')})",
                {
                    "detector": detector,
                    "order": spec.order,
                    "detections": count,
                    "n": r.n,
                    "last": last,
                },
            )
        )
    return hits


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86_400
    return f"{days:.3g} days" if days >= 1 else f"{delta.total_seconds() / 3600:.3g} hours"
