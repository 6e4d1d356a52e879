"""The offline gate: may this candidate meet live traffic? Pure, given frames and models.

Run on fresh labelled rows the candidate was not trained on (the snapshot's holdout, the
most recent labelled slice), three checks must all pass:

1. **Overall**: the improvement of the configured metric (candidate minus champion; for
   error metrics champion minus candidate, so positive is better) has a paired-bootstrap
   percentile interval whose lower bound is above ``margin``. ``margin = 0`` asks for a
   significant improvement; a small negative margin asks for non-inferiority.
2. **Segments**: on every value of each declared segment column with at least
   ``min_segment_rows`` rows, and on the long tail (all rarer values pooled), the point
   improvement is at least ``-segment_tolerance``. A segment where the metric is undefined
   (one class only) is reported and not held against the candidate.
3. **Fairness** (optional): the between-group difference of a rate (recall, ...) across a
   protected attribute, computed with Fairlearn's ``MetricFrame`` over groups with at least
   ``min_group_rows`` rows, is at most ``max_difference`` and/or at most the champion's
   difference plus ``tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import ConfigError, InvalidInputError, SchemaError
from livemodel.loop.bootstrap import (
    LOWER_IS_BETTER,
    PairedBootstrap,
    Scored,
    metric_values,
    paired_bootstrap,
    score,
)
from livemodel.loop.policy import FairnessSettings, GateSettings
from livemodel.registry.model_io import predict_outputs

__all__ = ["FairnessCheck", "GateResult", "SegmentCheck", "run_gate"]

LONG_TAIL = "(long tail)"
MISSING = "(missing)"


@dataclass(frozen=True)
class SegmentCheck:
    column: str
    value: str
    n: int
    champion: float | None
    candidate: float | None
    improvement: float | None
    regressed: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class FairnessCheck:
    attribute: str
    metric: str
    champion_difference: float | None
    candidate_difference: float | None
    groups: Mapping[str, Mapping[str, float | int | None]]
    excluded: tuple[str, ...]
    passed: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["groups"] = {k: dict(v) for k, v in self.groups.items()}
        out["excluded"] = list(self.excluded)
        return out


@dataclass(frozen=True)
class GateResult:
    """Every number the gate looked at, and why it passed or failed."""

    passed: bool
    reasons: tuple[str, ...]
    overall: PairedBootstrap
    margin: float
    segment_tolerance: float
    segments: tuple[SegmentCheck, ...] = ()
    fairness: FairnessCheck | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "overall": self.overall.to_dict(),
            "margin": self.margin,
            "segment_tolerance": self.segment_tolerance,
            "segments": [s.to_dict() for s in self.segments],
            "fairness": None if self.fairness is None else self.fairness.to_dict(),
            "notes": list(self.notes),
        }


def run_gate(
    champion: Any,
    candidate: Any,
    holdout: pd.DataFrame,
    *,
    features: Sequence[str],
    target: str,
    kind: str,
    classes: Sequence[Any] | None,
    settings: GateSettings,
) -> GateResult:
    """Compare two fitted models on ``holdout`` (features and ``target``); see the module."""
    if not isinstance(holdout, pd.DataFrame) or holdout.empty:
        raise InvalidInputError("the gate needs a non-empty labelled holdout frame")
    needed = [*features, target, *settings.segments]
    if settings.fairness is not None:
        needed.append(settings.fairness.attribute)
    missing = sorted({c for c in needed if c not in holdout.columns})
    if missing:
        raise SchemaError(f"the holdout frame lacks columns {missing[:5]}")
    if holdout[target].isna().any():
        raise InvalidInputError("the holdout frame has rows without a label")
    rows = holdout[list(features)]
    champ_out = predict_outputs(champion, rows, kind)
    cand_out = predict_outputs(candidate, rows, kind)
    y = holdout[target].to_numpy(dtype=object)
    champ, cand = score(champ_out, y, kind, classes), score(cand_out, y, kind, classes)
    overall = paired_bootstrap(
        settings.metric, champ, cand,
        n_bootstrap=settings.n_bootstrap, confidence=settings.confidence, seed=settings.seed,
    )  # fmt: skip
    reasons: list[str] = []
    level = f"{settings.confidence:.0%} CI"
    summary = (
        f"{settings.metric}: candidate {overall.candidate:.4g} vs champion "
        f"{overall.champion:.4g}, improvement {overall.improvement:+.4g} "
        f"({level} {overall.lower:+.4g} … {overall.upper:+.4g}), margin {settings.margin:+g}"
    )
    if not overall.lower > settings.margin:
        reasons.append(f"not better enough: {summary}")
    segments = tuple(
        check
        for column in settings.segments
        for check in _segments(settings, column, holdout[column], champ, cand)
    )
    for s in segments:
        if s.regressed and s.improvement is not None:
            reasons.append(
                f"segment {s.column}={s.value} regresses: {settings.metric} "
                f"{s.candidate:.4g} vs {s.champion:.4g} ({s.improvement:+.4g}, "
                f"tolerance {settings.segment_tolerance:g}, n={s.n})"
            )
    fairness = None
    if settings.fairness is not None:
        fairness = _fairness(
            settings.fairness, holdout,
            target=target, champ_out=champ_out, cand_out=cand_out, kind=kind, classes=classes,
        )  # fmt: skip
        if not fairness.passed:
            reasons.append(f"fairness: {fairness.reason}")
    notes = (summary, *(f"segment {s.column}={s.value}: {s.reason}" for s in segments if s.reason))
    return GateResult(
        passed=not reasons,
        reasons=tuple(reasons),
        overall=overall,
        margin=settings.margin,
        segment_tolerance=settings.segment_tolerance,
        segments=segments,
        fairness=fairness,
        notes=notes,
    )


def group_labels(values: pd.Series, min_rows: int) -> tuple[np.ndarray, list[str]]:
    """Each row's group as text (missing as ``(missing)``); values with fewer than
    ``min_rows`` rows pooled as ``(long tail)``. Returns the labels and the pooled values."""
    text = np.array([MISSING if _missing(v) else str(v) for v in values.to_numpy(dtype=object)],
                    dtype=object)  # fmt: skip
    uniques, counts = np.unique(text.astype(str), return_counts=True)
    rare = [str(u) for u, c in zip(uniques, counts, strict=True) if c < min_rows]
    if rare:
        text[np.isin(text.astype(str), rare)] = LONG_TAIL
    return text, rare


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _segments(
    settings: GateSettings, column: str, values: pd.Series, champ: Scored, cand: Scored
) -> list[SegmentCheck]:
    labels, rare = group_labels(values, settings.min_segment_rows)
    sign = -1.0 if settings.metric in LOWER_IS_BETTER else 1.0
    checks = []
    for value in sorted(set(labels.tolist()), key=lambda v: (v == LONG_TAIL, v)):
        mask = (labels == value).astype(np.float64)[None, :]
        n = int(mask.sum())
        if value == LONG_TAIL and n < settings.min_segment_rows:
            checks.append(
                SegmentCheck(column, value, n, None, None, None, False,
                             f"{len(rare)} rare values pool only {n} rows: not checked")
            )  # fmt: skip
            continue
        old = float(metric_values(settings.metric, champ, mask)[0])
        new = float(metric_values(settings.metric, cand, mask)[0])
        if not (math.isfinite(old) and math.isfinite(new)):
            checks.append(
                SegmentCheck(column, value, n, None, None, None, False,
                             f"{settings.metric} is undefined here (one class only?)")
            )  # fmt: skip
            continue
        improvement = sign * (new - old)
        regressed = improvement < -settings.segment_tolerance
        checks.append(SegmentCheck(column, value, n, old, new, improvement, regressed))
    return checks


def _fairness(
    spec: FairnessSettings,
    holdout: pd.DataFrame,
    *,
    target: str,
    champ_out: pd.DataFrame,
    cand_out: pd.DataFrame,
    kind: str,
    classes: Sequence[Any] | None,
) -> FairnessCheck:
    if kind == "regression" or not classes:
        raise InvalidInputError("fairness constraints apply to classifiers only")
    if kind == "multiclass" and spec.metric != "accuracy":
        raise InvalidInputError(f"fairness metric {spec.metric} needs a binary classifier")
    try:
        from fairlearn.metrics import MetricFrame  # type: ignore[import-untyped]
    except ImportError as exc:  # fairlearn is an optional extra
        raise ConfigError(
            "gate.fairness needs fairlearn: install it with pip install 'livemodel[fairness]'"
        ) from exc
    labels, _ = group_labels(holdout[spec.attribute], 1)
    values, counts = np.unique(labels.astype(str), return_counts=True)
    kept = {str(v) for v, c in zip(values, counts, strict=True) if c >= spec.min_group_rows}
    excluded = tuple(sorted(str(v) for v in values if str(v) not in kept))
    rows = np.isin(labels.astype(str), sorted(kept))
    y_true = holdout[target].to_numpy(dtype=object)[rows]
    fn = _rate(spec.metric, classes[-1])
    groups: dict[str, dict[str, float | int | None]] = {
        g: {"n": int(c)} for g, c in zip(values, counts, strict=True) if str(g) in kept
    }
    differences: dict[str, float | None] = {"champion": None, "candidate": None}
    for who, out in (("champion", champ_out), ("candidate", cand_out)) if len(kept) >= 2 else ():
        y_pred = out["prediction"].to_numpy(dtype=object)[rows]
        frame = MetricFrame(
            metrics=fn, y_true=y_true, y_pred=y_pred, sensitive_features=labels[rows]
        )
        for group, value in frame.by_group.items():
            groups[str(group)][who] = _finite(value)
        defined = [v for v in frame.by_group.to_numpy(dtype=np.float64) if math.isfinite(v)]
        differences[who] = (
            _finite(frame.difference(method="between_groups")) if len(defined) >= 2 else None
        )
    champ_diff, cand_diff = differences["champion"], differences["candidate"]
    if cand_diff is None:
        reason = f"fewer than 2 groups of {spec.attribute} with a defined {spec.metric}"
        return FairnessCheck(spec.attribute, spec.metric, champ_diff, cand_diff, groups,
                             excluded, passed=True, reason=f"not checked: {reason}")  # fmt: skip
    failures = []
    if spec.max_difference is not None and cand_diff > spec.max_difference:
        failures.append(
            f"{spec.metric} differs by {cand_diff:.4g} between groups of {spec.attribute} "
            f"(max {spec.max_difference:g})"
        )
    widens = champ_diff is not None and cand_diff > champ_diff + spec.tolerance
    if spec.relative_to_champion and widens:
        failures.append(
            f"{spec.metric} gap across {spec.attribute} widens from {champ_diff:.4g} to "
            f"{cand_diff:.4g} (tolerance {spec.tolerance:g})"
        )
    return FairnessCheck(spec.attribute, spec.metric, champ_diff, cand_diff, groups, excluded,
                         passed=not failures, reason="; ".join(failures) or None)  # fmt: skip


def _rate(metric: str, positive: Any) -> Callable[[Any, Any], float]:
    """A per-group rate; NaN where it is undefined (no positives for recall, ...)."""

    def rate(y_true: Any, y_pred: Any) -> float:
        truth = np.array([_same(v, positive) for v in np.asarray(y_true, dtype=object)])
        said = np.array([_same(v, positive) for v in np.asarray(y_pred, dtype=object)])
        if metric == "accuracy":
            return float(np.mean([_same(a, b) for a, b in zip(y_true, y_pred, strict=True)]))
        if metric == "selection_rate":
            return float(said.mean()) if said.size else math.nan
        if metric == "recall":
            return float(said[truth].mean()) if truth.any() else math.nan
        if metric == "precision":
            return float(truth[said].mean()) if said.any() else math.nan
        return float(said[~truth].mean()) if (~truth).any() else math.nan  # false positive rate

    return rate


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    return bool(a == b) or str(a) == str(b)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
