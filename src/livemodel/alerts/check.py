"""One alert check: evaluate the rules on a model's latest results, deduplicate, notify, record.

:func:`notify` is the I/O half for alerts already evaluated (the loop can hand it its
own); :func:`check_model` reads the latest stored window results and recent audit events
of a model first. Every alert ends up as one row of the alerts table, whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from livemodel.alerts.config import AlertsConfig
from livemodel.alerts.notifiers import Delivery, Notifier, RetryPolicy, deliver, wants
from livemodel.alerts.rules import Alert, decide, evaluate, latest_windows
from livemodel.alerts.store import AlertStore, StoredAlert
from livemodel.monitor.resultstore import ResultStore
from livemodel.registry.registry import Registry

__all__ = ["CheckOutcome", "check_model", "notify"]

#: How far back a check looks for the latest window results.
RESULTS_HORIZON = timedelta(days=35)
EVENTS_LIMIT = 500


@dataclass(frozen=True)
class CheckOutcome:
    """What became of one alert."""

    alert: Alert
    stored: StoredAlert
    deliveries: tuple[Delivery, ...]

    @property
    def state(self) -> str:
        return self.stored.state


def notify(
    alerts: Sequence[Alert],
    *,
    store: AlertStore,
    notifiers: Sequence[Notifier],
    retry: RetryPolicy | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckOutcome]:
    """Deduplicate ``alerts`` against what was sent, deliver the rest, record them all.

    An alert that no notifier wants (below every ``min_severity``) is recorded as sent
    with zero attempts, so its cooldown applies as for the others.
    """
    now = now or datetime.now(UTC)
    decisions = decide(alerts, store.last_sent(a.key for a in alerts), now)
    out = []
    for d in decisions:
        if d.suppressed:
            stored = store.record(d.alert, "suppressed", reason=d.reason, at=now)
            out.append(CheckOutcome(d.alert, stored, ()))
            continue
        deliveries = tuple(
            deliver(n, d.alert, retry, sleep=sleep) for n in notifiers if wants(n, d.alert)
        )
        failed = any(x.state == "failed" for x in deliveries)
        stored = store.record(
            d.alert, "failed" if failed else "sent", deliveries=deliveries, at=now
        )
        out.append(CheckOutcome(d.alert, stored, deliveries))
    return out


def check_model(
    name: str,
    *,
    registry: Registry,
    results: ResultStore,
    store: AlertStore,
    config: AlertsConfig,
    now: datetime | None = None,
    horizon: timedelta = RESULTS_HORIZON,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckOutcome]:
    """Evaluate ``config``'s rules on the latest window of each window spec of ``name``
    stored within ``horizon`` (35 days) and its recent audit events, then :func:`notify`."""
    now = now or datetime.now(UTC)
    rows = results.query(name, since=now - horizon)
    events = registry.audit(name, limit=EVENTS_LIMIT)
    alerts = evaluate(config.rules, name, latest_windows(rows), events, now=now)
    return notify(
        alerts,
        store=store,
        notifiers=config.notifiers,
        retry=config.retry,
        now=now,
        sleep=sleep,
    )
