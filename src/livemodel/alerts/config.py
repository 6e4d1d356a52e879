"""The ``[alerts]`` table of ``livemodel.toml``: rules, notifiers and retries, validated.

.. code-block:: toml

    [alerts]
    cooldown = "1h"                  # default for every rule
    [alerts.retry]
    max_attempts = 4                 # per notifier and alert
    initial_delay = 0.5              # seconds, doubled after each failure
    max_delay = 30

    [[alerts.rules]]
    kind = "drift"                   # drift | quality | performance | multivariate
    column = "dep_delay"             # | rollback | metric | error_rate | latency
                                     # | concept_drift
    severity = "warning"

    [[alerts.notifiers]]
    kind = "slack"                   # webhook | slack | log
    url = "https://hooks.slack.com/services/..."
    min_severity = "warning"

Without ``[alerts]`` (or without rules) the defaults apply: any drifted feature, flagged
data quality, flagged realized/estimated accuracy or MAE, multivariate drift, rollbacks and
concept drift (ADWIN on the labelled error stream, in label-arrival order);
without notifiers, alerts go to the log. Anything malformed is a one-line
:class:`~livemodel.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from livemodel.alerts.notifiers import LogNotifier, Notifier, RetryPolicy, WebhookNotifier
from livemodel.alerts.rules import (
    ConceptDriftRule,
    DriftRule,
    MetricRule,
    MultivariateRule,
    PerformanceRule,
    QualityRule,
    RollbackRule,
    Rule,
    Severity,
)
from livemodel.errors import ConfigError, InvalidInputError

__all__ = ["AlertsConfig", "default_rules", "load_alerts_config"]

MAX_COOLDOWN = timedelta(days=30)


def _duration(value: Any) -> timedelta:
    from livemodel.monitor.windows import parse_duration

    if isinstance(value, timedelta):
        return value
    try:
        parsed = parse_duration(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from exc
    if parsed > MAX_COOLDOWN:
        raise ValueError(f"{value!r} is longer than 30 days")
    return parsed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _RuleBase(_Strict):
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[\w.\-]+$")
    severity: Severity = "warning"
    cooldown: timedelta | None = None
    segment: str = Field("*", min_length=1, max_length=200)

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: Any) -> timedelta | None:
        return None if value is None else _duration(value)


class _Drift(_RuleBase):
    kind: Literal["drift"]
    column: str | None = Field(None, min_length=1, max_length=200)
    min_features: int = Field(1, ge=1, le=10_000)
    calculator: Literal["data_drift", "output_drift"] = "data_drift"


class _Quality(_RuleBase):
    kind: Literal["quality"]
    metric: (
        Literal["missing_rate", "out_of_range_rate", "unseen_category_rate", "type_violation_rate",
                "label_type_violation_rate"] | None
    ) = None  # fmt: skip
    column: str | None = Field(None, min_length=1, max_length=200)
    threshold: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)


class _Performance(_RuleBase):
    kind: Literal["performance"]
    metric: str = Field("accuracy", min_length=1, max_length=64)
    source: Literal["realized", "estimated", "any"] = "any"
    floor: float | None = Field(None, allow_inf_nan=False)
    ceiling: float | None = Field(None, allow_inf_nan=False)


class _Multivariate(_RuleBase):
    kind: Literal["multivariate"]
    threshold: float | None = Field(None, ge=0.0, allow_inf_nan=False)


class _Rollback(_RuleBase):
    kind: Literal["rollback"]
    severity: Severity = "critical"
    lookback: timedelta = timedelta(days=1)

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> timedelta:
        return _duration(value)


class _Metric(_RuleBase):
    kind: Literal["metric"]
    metric: str = Field(min_length=1, max_length=64)
    calculator: str | None = Field(None, min_length=1, max_length=64)
    column: str | None = Field(None, min_length=1, max_length=200)
    above: float | None = Field(None, allow_inf_nan=False)
    below: float | None = Field(None, allow_inf_nan=False)


class _ErrorRate(_RuleBase):
    kind: Literal["error_rate"]
    metric: str = "error_rate"
    above: float = Field(0.01, ge=0.0, le=1.0, allow_inf_nan=False)
    severity: Severity = "critical"


class _Latency(_RuleBase):
    kind: Literal["latency"]
    metric: str = "latency_p99_ms"
    above: float = Field(gt=0.0, allow_inf_nan=False)


class _ConceptDrift(_RuleBase):
    kind: Literal["concept_drift"]
    detector: Literal["page_hinkley", "adwin", "kswin"] | None = None
    order: Literal["arrival", "prediction_time"] | None = None


_RuleConfig = Annotated[
    _Drift
    | _Quality
    | _Performance
    | _Multivariate
    | _Rollback
    | _Metric
    | _ErrorRate
    | _Latency
    | _ConceptDrift,
    Field(discriminator="kind"),
]


class _Webhook(_Strict):
    kind: Literal["webhook", "slack"]
    name: str | None = Field(None, min_length=1, max_length=100)
    url: str = Field(min_length=8, max_length=2000)
    payload: Literal["json", "slack"] | None = None
    timeout: float = Field(5.0, gt=0.0, le=300.0)
    headers: dict[str, str] = Field(default_factory=dict)
    min_severity: Severity = "info"


class _Log(_Strict):
    kind: Literal["log"]
    name: str = Field("log", min_length=1, max_length=100)
    logger: str = Field("livemodel.alerts", min_length=1, max_length=200)
    min_severity: Severity = "info"


class _Retry(_Strict):
    max_attempts: int = Field(4, ge=1, le=20)
    initial_delay: float = Field(0.5, ge=0.0, le=3600.0)
    factor: float = Field(2.0, ge=1.0, le=10.0)
    max_delay: float = Field(30.0, ge=0.0, le=3600.0)


class _Alerts(_Strict):
    cooldown: timedelta = timedelta(hours=1)
    retry: _Retry = Field(default_factory=lambda: _Retry.model_validate({}))
    rules: list[_RuleConfig] = Field(default_factory=list, max_length=500)
    notifiers: list[Annotated[_Webhook | _Log, Field(discriminator="kind")]] = Field(
        default_factory=list, max_length=50
    )

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: Any) -> timedelta:
        return _duration(value)


@dataclass(frozen=True)
class AlertsConfig:
    rules: tuple[Rule, ...]
    notifiers: tuple[Notifier, ...]
    retry: RetryPolicy


def default_rules(cooldown: timedelta = timedelta(hours=1)) -> tuple[Rule, ...]:
    """What livemodel watches when ``[alerts]`` names no rules."""
    return (
        DriftRule(name="drift", cooldown=cooldown),
        QualityRule(name="quality", cooldown=cooldown),
        PerformanceRule(name="accuracy", metric="accuracy", severity="critical", cooldown=cooldown),
        PerformanceRule(name="mae", metric="mae", severity="critical", cooldown=cooldown),
        MultivariateRule(name="multivariate", cooldown=cooldown),
        RollbackRule(name="rollback", cooldown=cooldown),
        # One alert per change: ADWIN in label-arrival order (docs/benchmarks.md).
        ConceptDriftRule(
            name="concept_drift", detector="adwin", order="arrival", cooldown=cooldown
        ),
    )


def load_alerts_config(project: Mapping[str, Any], source: object = None) -> AlertsConfig:
    """The alert configuration of a parsed project file (``Settings.project``)."""
    where = f" in {source}" if source else ""
    table = project.get("alerts", {}) if isinstance(project, Mapping) else None
    if not isinstance(table, Mapping):
        raise ConfigError(f"the alerts settings{where} must be a TOML table")
    try:
        parsed = _Alerts.model_validate(dict(table))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"alerts settings{where}: {location}: {first['msg']}{more}") from exc
    rules = tuple(
        _rule(r, f"alerts settings{where}: rules.{i}", parsed.cooldown)
        for i, r in enumerate(parsed.rules)
    )
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"alerts settings{where}: rule names must be unique; repeated: {dupes}")
    try:
        notifiers = tuple(_notifier(n, i) for i, n in enumerate(parsed.notifiers))
        retry = RetryPolicy(**parsed.retry.model_dump())
    except InvalidInputError as exc:
        raise ConfigError(f"alerts settings{where}: {exc.message}") from exc
    notifier_names = [n.name for n in notifiers]
    if len(set(notifier_names)) != len(notifier_names):
        raise ConfigError(
            f"alerts settings{where}: notifier names must be unique: {notifier_names}"
        )
    return AlertsConfig(
        rules=rules or default_rules(parsed.cooldown),
        notifiers=notifiers or (LogNotifier(),),
        retry=retry,
    )


def _rule(config: _RuleConfig, where: str, cooldown: timedelta) -> Rule:
    base: dict[str, Any] = {
        "severity": config.severity,
        "cooldown": config.cooldown or cooldown,
        "segment": config.segment,
    }
    name = config.name
    if isinstance(config, _Drift):
        name = name or (f"drift.{config.column}" if config.column else "drift")
        return DriftRule(name=name, column=config.column, min_features=config.min_features,
                         calculator=config.calculator, **base)  # fmt: skip
    if isinstance(config, _Quality):
        name = name or ".".join(p for p in ("quality", config.metric, config.column) if p)
        return QualityRule(name=name, metric=config.metric, column=config.column,
                           threshold=config.threshold, **base)  # fmt: skip
    if isinstance(config, _Performance):
        if config.floor is not None and config.ceiling is not None:
            raise ConfigError(f"{where}: give floor or ceiling, not both")
        return PerformanceRule(name=name or f"performance.{config.metric}", metric=config.metric,
                               source=config.source, floor=config.floor,
                               ceiling=config.ceiling, **base)  # fmt: skip
    if isinstance(config, _Multivariate):
        return MultivariateRule(name=name or "multivariate", threshold=config.threshold, **base)
    if isinstance(config, _Rollback):
        return RollbackRule(name=name or "rollback", lookback=config.lookback, **base)
    if isinstance(config, _ConceptDrift):
        name = name or ".".join(p for p in ("concept_drift", config.detector, config.order) if p)
        return ConceptDriftRule(name=name, detector=config.detector, order=config.order, **base)
    if isinstance(config, _Metric) and config.above is None and config.below is None:
        raise ConfigError(f"{where}: a metric rule needs above or below")
    above = getattr(config, "above", None)
    below = getattr(config, "below", None)
    return MetricRule(name=name or f"{config.kind}.{config.metric}", metric=config.metric,
                      calculator=getattr(config, "calculator", None),
                      column=getattr(config, "column", None), above=above, below=below,
                      **base)  # fmt: skip


def _notifier(config: _Webhook | _Log, index: int) -> Notifier:
    if isinstance(config, _Log):
        return LogNotifier(name=config.name, logger=config.logger, min_severity=config.min_severity)
    payload = config.payload or ("slack" if config.kind == "slack" else "json")
    return WebhookNotifier(
        name=config.name or f"{config.kind}{index}",
        url=config.url,
        payload=payload,
        timeout=config.timeout,
        headers=dict(config.headers),
        min_severity=config.min_severity,
    )
