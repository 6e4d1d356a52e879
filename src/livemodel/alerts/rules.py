"""Alert rules: pure functions of monitoring results and audit events.

A rule looks at the results of the latest window(s) of one model (rows shaped like
:class:`~livemodel.monitor.resultstore.StoredResult`) and at recent audit events (rows
shaped like :class:`~livemodel.store.metadata.AuditEvent`), and returns :class:`Alert`
objects. Nothing here reads a database or sends anything.

Every alert has a deduplication ``key`` (rule, model, subject: the feature, the metric, the
event). :func:`decide` says which alerts to notify and which to suppress: an alert is
suppressed when an alert of the same key was *sent* within the rule's cooldown, or at all
for one-off alerts about an event (a rollback is announced once), or when the same key
occurs twice in one batch.

Rules and what fires them (``segment`` defaults to ``*``, the whole window):

==================  =================================================================
``DriftRule``       the drift verdict of ``column``, or ``min_features`` drifted columns
``QualityRule``     a data-quality rate above ``threshold`` (or the calculator's flag)
``PerformanceRule`` realized and/or estimated ``metric`` below ``floor`` / above
                    ``ceiling`` (or outside its band: the calculator's flag)
``MultivariateRule`` the PCA reconstruction error above ``threshold`` (or its band)
``MetricRule``      any stored number above ``above`` / below ``below`` (server error
                    rate, latency, ... when a calculator stores them)
``RollbackRule``    a rollout rolled back or aborted, or an alias rolled back
``ConceptDriftRule`` a concept-drift detector found a change in the labelled error
                    stream (of ``detector``, in ``order``, when given); each detection
                    is announced once
==================  =================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

__all__ = [
    "SEVERITIES",
    "Alert",
    "ConceptDriftRule",
    "Decision",
    "DriftRule",
    "EventLike",
    "MetricRule",
    "MultivariateRule",
    "PerformanceRule",
    "QualityRule",
    "ResultLike",
    "RollbackRule",
    "Rule",
    "decide",
    "evaluate",
    "latest_windows",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
ALL = "*"
ROLLBACK_ACTIONS = ("rollout.rollback", "alias.rollback")


class ResultLike(Protocol):
    """What a rule reads of a stored monitoring result."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def window(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def segment(self) -> str: ...
    @property
    def calculator(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def column(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def lower(self) -> float | None: ...
    @property
    def upper(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def alert(self) -> bool: ...
    @property
    def n(self) -> int: ...


class EventLike(Protocol):
    """What a rule reads of an audit event."""

    @property
    def id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def model(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def from_version(self) -> int | None: ...
    @property
    def to_version(self) -> int | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One condition that calls for attention; ``key`` identifies it for deduplication."""

    rule: str
    severity: Severity
    model: str
    subject: str
    message: str
    at: datetime
    version: int | None = None
    value: float | None = None
    threshold: float | None = None
    cooldown: timedelta = timedelta(hours=1)
    once: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.rule}|{self.model}|{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "model": self.model,
            "version": self.version,
            "subject": self.subject,
            "key": self.key,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
            "at": self.at.isoformat(),
            "cooldown_seconds": self.cooldown.total_seconds(),
            "details": dict(self.details),
        }


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What every rule has: a name (part of the key), a severity and a cooldown."""

    name: str
    severity: Severity = "warning"
    cooldown: timedelta = timedelta(hours=1)
    segment: str = ALL

    def evaluate(
        self,
        model: str,
        results: Sequence[ResultLike],
        events: Sequence[EventLike],
        now: datetime,
    ) -> list[Alert]:
        raise NotImplementedError

    def _alert(self, r: ResultLike, subject: str, message: str, **extra: Any) -> Alert:
        where = "" if r.segment == ALL else f" in segment {r.segment}"
        return Alert(
            rule=self.name,
            severity=self.severity,
            model=r.model,
            version=r.version,
            subject=subject if r.segment == ALL else f"{subject}@{r.segment}",
            message=f"{r.model}@{r.version}: {message}{where} (window {r.window} from "
            f"{r.start:%Y-%m-%d %H:%M}, n={r.n})",
            at=r.end,
            cooldown=self.cooldown,
            details={"window": r.window, "start": r.start.isoformat(),
                     "end": r.end.isoformat(), "segment": r.segment, **extra},
        )  # fmt: skip

    def _mine(self, results: Sequence[ResultLike], calculators: Iterable[str]) -> list[ResultLike]:
        wanted = set(calculators)
        return [r for r in results if r.segment == self.segment and r.calculator in wanted]


@dataclass(frozen=True, kw_only=True)
class DriftRule(Rule):
    """Drift of one ``column``, or of at least ``min_features`` columns at once."""

    column: str | None = None
    min_features: int = 1
    calculator: str = "data_drift"

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        verdicts = [r for r in self._mine(results, [self.calculator]) if r.metric == "drift"]
        by_window: dict[tuple[str, datetime], list[ResultLike]] = {}
        for r in verdicts:
            by_window.setdefault((r.window, r.start), []).append(r)
        out = []
        for rows in by_window.values():
            drifted = [r for r in rows if r.alert and r.column]
            if self.column is not None:
                out += [
                    self._alert(r, f"drift:{r.column}", f"{r.column} drifted", column=r.column)
                    for r in drifted
                    if r.column == self.column
                ]
            elif len(drifted) >= self.min_features:
                names = sorted(str(r.column) for r in drifted)
                message = f"{len(names)} column(s) drifted: {', '.join(names[:10])}"
                extra = {"columns": names, "min_features": self.min_features}
                out.append(self._alert(drifted[0], "drift", message, **extra))
        return out


@dataclass(frozen=True, kw_only=True)
class QualityRule(Rule):
    """A data-quality rate above ``threshold`` (None: the calculator's own flag)."""

    metric: str | None = None
    column: str | None = None
    threshold: float | None = None

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        out = []
        for r in self._mine(results, ["data_quality"]):
            if self.metric is not None and r.metric != self.metric:
                continue
            if self.column is not None and r.column != self.column:
                continue
            if r.value is None:
                continue
            fired = r.alert if self.threshold is None else r.value > self.threshold
            if fired:
                limit = self.threshold if self.threshold is not None else r.threshold
                text = f"{r.metric} of {r.column} is {r.value:.4g}" + _limit(" above", limit)
                alert = self._alert(r, f"quality:{r.metric}:{r.column}", text, column=r.column)
                out.append(_with(alert, value=r.value, threshold=limit))
        return out


@dataclass(frozen=True, kw_only=True)
class PerformanceRule(Rule):
    """Realized and/or estimated ``metric`` below ``floor`` or above ``ceiling``; with
    neither, outside the band the calculator flags."""

    metric: str = "accuracy"
    source: Literal["realized", "estimated", "any"] = "any"
    floor: float | None = None
    ceiling: float | None = None

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        sources = ("realized", "estimated") if self.source == "any" else (self.source,)
        out = []
        for r in self._mine(results, [f"{s}_performance" for s in sources]):
            if r.metric != self.metric or r.value is None:
                continue
            kind = r.calculator.removesuffix("_performance")
            limit: float | None
            if self.floor is not None and r.value < self.floor:
                text, limit = f"{kind} {r.metric} {r.value:.4g} is below {self.floor:g}", self.floor
            elif self.ceiling is not None and r.value > self.ceiling:
                text = f"{kind} {r.metric} {r.value:.4g} is above {self.ceiling:g}"
                limit = self.ceiling
            elif self.floor is None and self.ceiling is None and r.alert:
                # The calculator flags a window whose band excludes the reference's value
                # (``threshold``) on the good side: significantly worse than the reference.
                band = f"[{_num(r.lower)}, {_num(r.upper)}]"
                text = (f"{kind} {r.metric} {r.value:.4g} {band} is significantly worse than "
                        f"the reference's {_num(r.threshold)}")  # fmt: skip
                limit = r.threshold
            else:
                continue
            alert = self._alert(r, f"performance:{kind}:{r.metric}", text, source=kind,
                                lower=r.lower, upper=r.upper)  # fmt: skip
            out.append(_with(alert, value=r.value, threshold=limit))
        return out


@dataclass(frozen=True, kw_only=True)
class MultivariateRule(Rule):
    """The multivariate drift statistic above ``threshold`` (None: outside its band)."""

    threshold: float | None = None

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        out = []
        for r in self._mine(results, ["multivariate_drift"]):
            if r.value is None:
                continue
            fired = r.alert if self.threshold is None else r.value > self.threshold
            if fired:
                limit = self.threshold if self.threshold is not None else r.upper
                text = f"multivariate drift: {r.metric} {r.value:.4g}" + _limit(" above", limit)
                out.append(_with(self._alert(r, "multivariate", text), value=r.value,
                                 threshold=limit))  # fmt: skip
        return out


@dataclass(frozen=True, kw_only=True)
class MetricRule(Rule):
    """Any stored number (``calculator``/``metric``/``column``; None matches any) above
    ``above`` or below ``below``: e.g. a server's error rate or latency."""

    metric: str
    calculator: str | None = None
    column: str | None = None
    above: float | None = None
    below: float | None = None

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        out = []
        for r in results:
            if r.segment != self.segment or r.metric != self.metric or r.value is None:
                continue
            if self.calculator is not None and r.calculator != self.calculator:
                continue
            if self.column is not None and r.column != self.column:
                continue
            over = self.above is not None and r.value > self.above
            under = self.below is not None and r.value < self.below
            if not (over or under):
                continue
            limit = self.above if over else self.below
            of = f" of {r.column}" if r.column else ""
            text = f"{r.metric}{of} is {r.value:.4g}, {'above' if over else 'below'} {limit:g}"
            subject = f"metric:{r.calculator}:{r.metric}:{r.column or ''}"
            out.append(_with(self._alert(r, subject, text), value=r.value, threshold=limit))
        return out


@dataclass(frozen=True, kw_only=True)
class RollbackRule(Rule):
    """A rollback or aborted rollout, or an alias moved back, in the last ``lookback``."""

    severity: Severity = "critical"
    lookback: timedelta = timedelta(days=1)

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        out = []
        for e in events:
            if e.model != model or e.action not in ROLLBACK_ACTIONS or e.at < now - self.lookback:
                continue
            details = dict(e.details or {})
            if e.action == "rollout.rollback":
                verb = "aborted" if details.get("aborted") else "rolled back"
                what = f"rollout {details.get('rollout', '?')} {verb}"
            else:
                what = f"alias {details.get('alias', '')} rolled back".replace("  ", " ")
                if e.from_version is not None and e.to_version is not None:
                    what += f" from v{e.from_version} to v{e.to_version}"
            readings = [
                {k: x.get(k) for k in ("guard", "verdict", "effect", "ci", "p_value")}
                for x in details.get("readings", [])
                if isinstance(x, Mapping)
            ]
            out.append(
                Alert(
                    rule=self.name, severity=self.severity, model=model,
                    version=e.to_version, subject=f"event:{e.id}",
                    message=f"{model}: {what}" + (f": {e.reason}" if e.reason else ""),
                    at=e.at, cooldown=self.cooldown, once=True,
                    details={"event": e.id, "action": e.action, "readings": readings},
                )
            )  # fmt: skip
        return out


@dataclass(frozen=True, kw_only=True)
class ConceptDriftRule(Rule):
    """A concept-drift detection (see :mod:`livemodel.monitor.concept`) by ``detector``
    (None: any) in ``order`` (``arrival`` or ``prediction_time``; None: any). It reads the
    summary rows (``<detector>_detections`` of calculator ``concept_drift``) and announces
    the last detection of each detector and order once (its key names where it began)."""

    detector: str | None = None
    order: str | None = None

    def evaluate(
        self, model: str, results: Sequence[ResultLike], events: Sequence[EventLike], now: datetime
    ) -> list[Alert]:
        out = []
        for r in results:
            if r.calculator != "concept_drift" or not r.metric.endswith("_detections"):
                continue
            detector = r.metric.removesuffix("_detections")
            details = dict(getattr(r, "details", None) or {})
            last, order = details.get("last"), str(details.get("order", ""))
            if not r.alert or not isinstance(last, Mapping):
                continue
            if (self.detector or detector) != detector or (self.order or order) != order:
                continue
            start, found = dict(last.get("start") or {}), dict(last.get("detected") or {})
            before = _num(_finite(last.get("error_before")))
            after = _num(_finite(last.get("error_after")))
            text = (f"{model}@{r.version}: concept drift found by {detector} in {order} order: "
                    f"mean error {before} -> {after}, change began at prediction "
                    f"{start.get('prediction_id')} ({start.get('time')}, row {start.get('index')}),"
                    f" detected at row {found.get('index')} of {r.n} labelled")  # fmt: skip
            out.append(
                Alert(
                    rule=self.name, severity=self.severity, model=model, version=r.version,
                    subject=f"concept:{order}:{detector}:{start.get('prediction_id')}",
                    message=text, at=r.end, cooldown=self.cooldown, once=True,
                    value=_finite(last.get("error_after")),
                    threshold=_finite(last.get("error_before")),
                    details={"detector": detector, "order": order, "detection": dict(last),
                             "detections": details.get("detections")},
                )
            )  # fmt: skip
        return out


def _finite(value: object) -> float | None:
    """``value`` (read from a result's JSON details) as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def latest_windows(results: Iterable[ResultLike]) -> list[ResultLike]:
    """The results of the most recent window of each window spec (``1d``, ``1h``, ...)."""
    rows = list(results)
    newest: dict[str, datetime] = {}
    for r in rows:
        if r.window not in newest or r.start > newest[r.window]:
            newest[r.window] = r.start
    return [r for r in rows if r.start == newest[r.window]]


def evaluate(
    rules: Sequence[Rule],
    model: str,
    results: Sequence[ResultLike],
    events: Sequence[EventLike] = (),
    *,
    now: datetime,
) -> tuple[Alert, ...]:
    """Every alert of every rule, in rule order."""
    return tuple(a for rule in rules for a in rule.evaluate(model, results, events, now))


@dataclass(frozen=True)
class Decision:
    """Whether to notify an alert, and if not, why."""

    alert: Alert
    suppressed: bool
    reason: str | None = None


def decide(
    alerts: Iterable[Alert], last_sent: Mapping[str, datetime], now: datetime
) -> tuple[Decision, ...]:
    """Deduplicate: suppress a key sent within its cooldown (ever, for one-off alerts),
    and a key repeated within this batch. ``last_sent`` maps keys to their last send."""
    seen: set[str] = set()
    out = []
    for a in alerts:
        sent = last_sent.get(a.key)
        if a.key in seen:
            out.append(Decision(a, True, "duplicate in this check"))
        elif sent is not None and a.once:
            out.append(Decision(a, True, f"already notified at {sent.isoformat()}"))
        elif sent is not None and now - sent < a.cooldown:
            until = sent + a.cooldown
            out.append(Decision(a, True, f"in cooldown until {until.isoformat()}"))
        else:
            out.append(Decision(a, False))
        seen.add(a.key)
    return tuple(out)


def _with(alert: Alert, *, value: float | None, threshold: float | None) -> Alert:
    return replace(alert, value=value, threshold=threshold)


def _limit(word: str, limit: float | None) -> str:
    return "" if limit is None else f"{word} {limit:.4g}"


def _num(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"
