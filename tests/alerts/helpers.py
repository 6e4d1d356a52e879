"""Builders of stored results and audit events for the alert tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from livemodel.monitor.resultstore import StoredResult
from livemodel.store.metadata import AuditEvent

T0 = datetime(2024, 7, 2, tzinfo=UTC)


def result(
    calculator: str,
    metric: str,
    column: str | None,
    value: float | None,
    *,
    alert: bool = False,
    start: datetime = T0,
    window: str = "1d",
    segment: str = "*",
    lower: float | None = None,
    upper: float | None = None,
    threshold: float | None = None,
    model: str = "flights",
) -> StoredResult:
    return StoredResult(
        model=model, version=1, window=window, start=start, end=start + timedelta(days=1),
        segment=segment, calculator=calculator, metric=metric, column=column, value=value,
        lower=lower, upper=upper, threshold=threshold, alert=alert, n=500, reason=None,
        details={}, computed_at=start + timedelta(days=1),
    )  # fmt: skip


def event(
    action: str, *, id: int = 1, at: datetime = T0, details: dict[str, Any] | None = None,
    reason: str | None = "guard errors: candidate worse", model: str = "flights",
    from_version: int | None = None, to_version: int | None = None,
) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        id=id, at=at, model=model, action=action, actor="t", alias=None,
        from_version=from_version, to_version=to_version, reason=reason, details=details or {},
    )  # fmt: skip
