"""Monitoring results in the metadata database, as a time series.

A window is keyed by ``(model, version, window spec, window start)``. :meth:`ResultStore.save`
replaces every stored result of the windows it is given (all their segments and
calculators) in one transaction, so re-running a window (a late label, a partial window
that filled up) never leaves duplicates or stale rows. Concurrent writers of the same
window are serialised: by SQLite's single writer, on PostgreSQL by an advisory lock per
window key.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from livemodel.errors import InvalidInputError
from livemodel.monitor.results import MetricResult, WindowResult, json_safe
from livemodel.store.database import Database
from livemodel.store.tables import monitor_results

__all__ = ["ResultStore", "StoredResult"]

_T = monitor_results.c


@dataclass(frozen=True)
class StoredResult:
    """One stored number; ``column`` is None when the metric is not about one column."""

    model: str
    version: int
    window: str
    start: datetime
    end: datetime
    segment: str
    calculator: str
    metric: str
    column: str | None
    value: float | None
    lower: float | None
    upper: float | None
    threshold: float | None
    alert: bool
    n: int
    reason: str | None
    details: Mapping[str, Any]
    computed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        for key in ("start", "end", "computed_at"):
            out[key] = out[key].isoformat()
        out["details"] = dict(self.details)
        return out


class ResultStore:
    """Saves and queries :class:`~livemodel.monitor.results.WindowResult` rows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, windows: Iterable[WindowResult]) -> int:
        """Replace the stored results of each window (all segments) with these; returns
        the number of rows written."""
        groups: dict[tuple[str, int, str, datetime], list[WindowResult]] = {}
        for w in windows:
            if not isinstance(w, WindowResult):
                raise InvalidInputError(f"save() takes WindowResult objects, not {type(w)}")
            groups.setdefault((w.model, w.version, w.window, _utc(w.start)), []).append(w)
        now = datetime.now(UTC)
        written = 0
        for key, parts in groups.items():
            rows = [_row(w, r, now) for w in parts for r in w.results]
            with self.db.write() as conn:
                if self.db.dialect == "postgresql":
                    lock = zlib.crc32(repr(key).encode())
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
                conn.execute(
                    monitor_results.delete().where(
                        _T.model == key[0],
                        _T.version == key[1],
                        _T.window == key[2],
                        _T.window_start == key[3],
                    )
                )
                if rows:
                    conn.execute(monitor_results.insert(), rows)
            written += len(rows)
        return written

    def query(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        window: str | None = None,
        calculator: str | None = None,
        segment: str | None = None,
        metric: str | None = None,
        column: str | None = None,
        alerts_only: bool = False,
    ) -> list[StoredResult]:
        """Stored results of ``model`` whose window starts in ``[since, until)``, ordered by
        window start, segment, calculator, column and metric. ``None`` filters nothing."""
        conditions = [_T.model == model]
        if since is not None:
            conditions.append(_T.window_start >= _utc(since))
        if until is not None:
            conditions.append(_T.window_start < _utc(until))
        equal = {"version": version, "window": window, "calculator": calculator,
                 "segment": segment, "metric": metric, "column_name": column}  # fmt: skip
        conditions += [_T[name] == value for name, value in equal.items() if value is not None]
        if alerts_only:
            conditions.append(_T.alert.is_(True))
        order = (_T.window_start, _T.segment, _T.calculator, _T.column_name, _T.metric)
        with self.db.read() as conn:
            rows = conn.execute(sa.select(monitor_results).where(*conditions).order_by(*order))
            return [_stored(row) for row in rows.mappings()]

    def delete(self, model: str) -> int:
        """Remove every stored result of ``model``; returns the number of rows removed."""
        with self.db.write() as conn:
            return int(conn.execute(monitor_results.delete().where(_T.model == model)).rowcount)


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(f"times must be timezone-aware datetimes, got {value!r}")
    return value.astimezone(UTC)


def _row(window: WindowResult, r: MetricResult, now: datetime) -> dict[str, Any]:
    return {
        "model": window.model,
        "version": window.version,
        "window": window.window,
        "window_start": _utc(window.start),
        "window_end": _utc(window.end),
        "segment": window.segment,
        "calculator": r.calculator,
        "metric": r.metric,
        "column_name": r.column or "",
        "value": r.value,
        "lower": r.lower,
        "upper": r.upper,
        "threshold": r.threshold,
        "alert": r.alert,
        "n": r.n,
        "reason": r.reason,
        "details": json_safe(dict(r.details)),
        "computed_at": now,
    }


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stored(row: sa.RowMapping) -> StoredResult:
    return StoredResult(
        model=row["model"],
        version=row["version"],
        window=row["window"],
        start=_aware(row["window_start"]),
        end=_aware(row["window_end"]),
        segment=row["segment"],
        calculator=row["calculator"],
        metric=row["metric"],
        column=row["column_name"] or None,
        value=row["value"],
        lower=row["lower"],
        upper=row["upper"],
        threshold=row["threshold"],
        alert=bool(row["alert"]),
        n=int(row["n"]),
        reason=row["reason"],
        details=dict(row["details"] or {}),
        computed_at=_aware(row["computed_at"]),
    )
