"""``[alerts]`` in livemodel.toml: parsed into rules and notifiers, or a clear ConfigError."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from typing import Any

import pytest

from livemodel.alerts.config import load_alerts_config
from livemodel.alerts.notifiers import LogNotifier, WebhookNotifier
from livemodel.alerts.rules import (
    DriftRule,
    MetricRule,
    MultivariateRule,
    PerformanceRule,
    QualityRule,
    RollbackRule,
)
from livemodel.errors import ConfigError

FULL = """
[alerts]
cooldown = "2h"
[alerts.retry]
max_attempts = 3
initial_delay = 0.1

[[alerts.rules]]
kind = "drift"
column = "temp"
severity = "info"
cooldown = "30m"

[[alerts.rules]]
kind = "drift"
min_features = 3
severity = "critical"

[[alerts.rules]]
kind = "quality"
metric = "missing_rate"
threshold = 0.05

[[alerts.rules]]
name = "acc-floor"
kind = "performance"
metric = "accuracy"
source = "estimated"
floor = 0.8

[[alerts.rules]]
kind = "multivariate"

[[alerts.rules]]
kind = "rollback"
lookback = "2d"

[[alerts.rules]]
kind = "error_rate"
above = 0.02

[[alerts.rules]]
kind = "latency"
above = 250

[[alerts.rules]]
kind = "metric"
calculator = "output_drift"
metric = "psi"
above = 0.3

[[alerts.notifiers]]
name = "ops"
kind = "webhook"
url = "https://hooks.example.test/x"
min_severity = "warning"

[[alerts.notifiers]]
kind = "slack"
url = "https://hooks.slack.test/services/T/B/C"

[[alerts.notifiers]]
kind = "log"
"""


def test_a_full_configuration() -> None:
    config = load_alerts_config(tomllib.loads(FULL))
    kinds = [type(r) for r in config.rules]
    assert kinds == [DriftRule, DriftRule, QualityRule, PerformanceRule, MultivariateRule,
                     RollbackRule, MetricRule, MetricRule, MetricRule]  # fmt: skip
    drift, many, quality, perf, _mv, rollback, errors, latency, psi = config.rules
    assert (drift.name, drift.severity, drift.cooldown) == (
        "drift.temp",
        "info",
        timedelta(minutes=30),
    )
    assert (
        isinstance(many, DriftRule)
        and many.min_features == 3
        and many.cooldown == timedelta(hours=2)
    )
    assert isinstance(quality, QualityRule) and quality.threshold == 0.05
    assert isinstance(perf, PerformanceRule) and (perf.name, perf.source, perf.floor) == (
        "acc-floor", "estimated", 0.8,
    )  # fmt: skip
    assert isinstance(rollback, RollbackRule) and rollback.lookback == timedelta(days=2)
    assert rollback.severity == "critical"
    assert isinstance(errors, MetricRule) and (errors.metric, errors.above) == ("error_rate", 0.02)
    assert isinstance(latency, MetricRule) and latency.metric == "latency_p99_ms"
    assert isinstance(psi, MetricRule) and psi.calculator == "output_drift"
    ops, slack, log = config.notifiers
    assert isinstance(ops, WebhookNotifier) and (ops.payload, ops.min_severity) == (
        "json",
        "warning",
    )
    assert isinstance(slack, WebhookNotifier) and slack.payload == "slack"
    assert isinstance(log, LogNotifier)
    assert (config.retry.max_attempts, config.retry.initial_delay) == (3, 0.1)


def test_defaults_without_alerts_table() -> None:
    config = load_alerts_config({})
    assert {r.name for r in config.rules} == {
        "drift", "quality", "accuracy", "mae", "multivariate", "rollback", "concept_drift",
    }  # fmt: skip
    assert [type(n) for n in config.notifiers] == [LogNotifier]
    assert config.retry.max_attempts == 4


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"rules": [{"kind": "telepathy"}]}, "rules.0"),
        ({"rules": [{"kind": "drift", "severity": "panic"}]}, "severity"),
        ({"rules": [{"kind": "drift", "min_features": 0}]}, "min_features"),
        ({"rules": [{"kind": "drift", "colum": "temp"}]}, "colum"),
        ({"rules": [{"kind": "drift", "cooldown": "forever"}]}, "not a duration"),
        ({"rules": [{"kind": "drift", "cooldown": "90d"}]}, "longer than 30 days"),
        ({"rules": [{"kind": "quality", "threshold": 1.5}]}, "threshold"),
        ({"rules": [{"kind": "quality", "threshold": float("nan")}]}, "threshold"),
        ({"rules": [{"kind": "quality", "metric": "vibes"}]}, "metric"),
        ({"rules": [{"kind": "performance", "floor": 0.8, "ceiling": 0.9}]}, "not both"),
        ({"rules": [{"kind": "metric", "metric": "error_rate"}]}, "above or below"),
        ({"rules": [{"kind": "latency"}]}, "above"),
        ({"rules": [{"kind": "drift", "name": "a b"}]}, "name"),
        ({"rules": [{"kind": "drift"}, {"kind": "drift"}]}, "unique"),
        ({"rules": "drift"}, "rules"),
        ({"notifiers": [{"kind": "webhook", "url": "file:///etc/passwd"}]}, "http"),
        ({"notifiers": [{"kind": "webhook"}]}, "url"),
        ({"notifiers": [{"kind": "pager", "url": "https://x.test/"}]}, "notifiers.0"),
        ({"notifiers": [{"kind": "log"}, {"kind": "log"}]}, "unique"),
        ({"retry": {"max_attempts": 0}}, "max_attempts"),
        ({"retry": {"max_attempts": "lots"}}, "max_attempts"),
        ({"cooldown": 5}, "cooldown"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_configuration_is_a_config_error(table: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_alerts_config({"alerts": table}, source="livemodel.toml")
    assert str(info.value).startswith("alerts settings in livemodel.toml")


def test_alerts_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="must be a TOML table"):
        load_alerts_config({"alerts": ["drift"]})
