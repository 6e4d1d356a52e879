"""Every alert raised, in the metadata database, with what happened to it.

A row records one alert of one check: ``sent`` (every notifier that wanted it took it),
``failed`` (one did not, after its retries: ``attempts`` and ``last_error`` say how), or
``suppressed`` (deduplicated; ``last_error`` holds why). Cooldowns count from the last
``sent`` row of a key, so an alert whose delivery failed is tried again at the next check.

:meth:`AlertStore.open` is what a dashboard or the loop asks: the alerts whose condition
was seen within its cooldown, newest row per key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from livemodel.alerts.notifiers import Delivery
from livemodel.alerts.rules import SEVERITIES, Alert
from livemodel.errors import InvalidInputError
from livemodel.monitor.results import json_safe
from livemodel.store.database import Database
from livemodel.store.tables import alerts

__all__ = ["STATES", "AlertStore", "StoredAlert"]

State = Literal["sent", "failed", "suppressed"]
STATES: tuple[State, ...] = ("sent", "failed", "suppressed")
_KEY_CHARS = 512
_T = alerts.c


@dataclass(frozen=True)
class StoredAlert:
    id: int
    at: datetime
    model: str
    version: int | None
    rule: str
    severity: str
    subject: str
    key: str
    state: str
    attempts: int
    last_error: str | None
    message: str
    value: float | None
    threshold: float | None
    observed_at: datetime
    cooldown: timedelta
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["at"] = self.at.isoformat()
        out["observed_at"] = self.observed_at.isoformat()
        out["cooldown"] = self.cooldown.total_seconds()
        out["details"] = dict(self.details)
        return out


class AlertStore:
    """Records alerts and answers what was sent when."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        alert: Alert,
        state: State,
        *,
        deliveries: Sequence[Delivery] = (),
        reason: str | None = None,
        at: datetime | None = None,
    ) -> StoredAlert:
        """Store one alert; ``reason`` is why it was suppressed."""
        if state not in STATES:
            raise InvalidInputError(f"alert state must be one of {STATES}, got {state!r}")
        errors = [f"{d.notifier}: {d.error}" for d in deliveries if d.error]
        row = {
            "at": _utc(at or datetime.now(UTC)),
            "model": alert.model,
            "version": alert.version,
            "rule": alert.rule,
            "severity": alert.severity,
            "subject": alert.subject,
            "key": store_key(alert.key),
            "state": state,
            "attempts": max((d.attempts for d in deliveries), default=0),
            "last_error": reason if state == "suppressed" else (errors[-1] if errors else None),
            "message": alert.message,
            "value": alert.value,
            "threshold": alert.threshold,
            "observed_at": _utc(alert.at),
            "cooldown_s": alert.cooldown.total_seconds(),
            "details": json_safe(
                {**alert.details, "deliveries": [d.to_dict() for d in deliveries]}
            ),
        }
        with self.db.write() as conn:
            new_id = conn.execute(alerts.insert().values(**row).returning(_T.id)).scalar_one()
        return _stored({"id": new_id, **row})

    def last_sent(self, keys: Iterable[str]) -> dict[str, datetime]:
        """The time of the last ``sent`` row of each key (keys never sent are absent)."""
        wanted = {store_key(k): k for k in keys}
        if not wanted:
            return {}
        query = (
            sa.select(_T.key, sa.func.max(_T.at))
            .where(_T.key.in_(list(wanted)), _T.state == "sent")
            .group_by(_T.key)
        )
        with self.db.read() as conn:
            return {wanted[k]: _aware(t) for k, t in conn.execute(query)}

    def query(
        self,
        model: str | None = None,
        *,
        since: datetime | None = None,
        state: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Recorded alerts, newest first."""
        if state is not None and state not in STATES:
            raise InvalidInputError(f"state must be one of {STATES}, got {state!r}")
        if severity is not None and severity not in SEVERITIES:
            raise InvalidInputError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidInputError(f"limit must be an int in 1..100000, got {limit!r}")
        conditions = []
        if model is not None:
            conditions.append(_T.model == model)
        if since is not None:
            conditions.append(_T.at >= _utc(since))
        if state is not None:
            conditions.append(_T.state == state)
        if severity is not None:
            conditions.append(_T.severity == severity)
        query = sa.select(alerts).where(*conditions).order_by(_T.at.desc(), _T.id.desc())
        with self.db.read() as conn:
            return [_stored(dict(r)) for r in conn.execute(query.limit(limit)).mappings()]

    def open(self, model: str | None = None, *, now: datetime | None = None) -> list[StoredAlert]:
        """Alerts still open: the newest row of each key recorded within its cooldown,
        most severe first, then newest."""
        now = _utc(now or datetime.now(UTC))
        # No cooldown is longer than this (the config caps it), so older rows cannot be open.
        rows = self.query(model, since=now - timedelta(days=31), limit=100_000)
        newest: dict[str, StoredAlert] = {}
        for r in rows:  # newest first: the first row of a key is its newest
            newest.setdefault(r.key, r)
        current = [r for r in newest.values() if r.at + r.cooldown > now]
        rank: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(current, key=lambda r: (-rank.get(r.severity, 0), -r.at.timestamp()))


def store_key(key: str) -> str:
    """The key as stored: long keys keep a prefix and a hash, so they stay unique."""
    if len(key) <= _KEY_CHARS:
        return key
    return f"{key[: _KEY_CHARS - 65]}#{hashlib.sha256(key.encode()).hexdigest()}"


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(f"times must be timezone-aware datetimes, got {value!r}")
    return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stored(row: Mapping[str, Any]) -> StoredAlert:
    return StoredAlert(
        id=int(row["id"]),
        at=_aware(row["at"]),
        model=row["model"],
        version=row["version"],
        rule=row["rule"],
        severity=row["severity"],
        subject=row["subject"],
        key=row["key"],
        state=row["state"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        message=row["message"],
        value=row["value"],
        threshold=row["threshold"],
        observed_at=_aware(row["observed_at"]),
        cooldown=timedelta(seconds=float(row["cooldown_s"])),
        details=dict(row["details"] or {}),
    )
