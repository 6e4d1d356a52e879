"""The loop's state, read back from the audit log (the only place it is kept).

Each retrain is a *run* with an id; its events, in order::

    loop.retrain            triggered (details: run, at, trigger, parent); starts the cooldown
    loop.candidate          registered (details: run, version, snapshot)
    loop.gate.passed        or loop.gate.failed (details: run, candidate, champion, gate numbers)
    loop.rollout.started    (details: run, rollout id, plan)

or ``loop.retrain.failed`` / ``loop.rollout.failed`` with the error. A run without a final
event was interrupted (a crash, a restart): the controller resumes it. ``at`` is the
controller's clock when the run started (its ``now``), which may differ from the wall-clock
time the audit row carries when a controller runs over replayed traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livemodel.store.metadata import AuditEvent

__all__ = ["LoopRun", "last_retrain_at", "loop_runs"]

RETRAIN = "loop.retrain"
RETRAIN_FAILED = "loop.retrain.failed"
CANDIDATE = "loop.candidate"
GATE_PASSED = "loop.gate.passed"
GATE_FAILED = "loop.gate.failed"
ROLLOUT_STARTED = "loop.rollout.started"
ROLLOUT_FAILED = "loop.rollout.failed"
FINAL = frozenset({RETRAIN_FAILED, GATE_FAILED, ROLLOUT_STARTED, ROLLOUT_FAILED})


@dataclass(frozen=True)
class LoopRun:
    """One retrain and how far it got."""

    run: str
    at: datetime
    trigger: Mapping[str, Any]
    parent: int | None
    candidate: int | None = None
    gate: Mapping[str, Any] | None = None
    gate_passed: bool | None = None
    rollout: str | None = None
    error: str | None = None
    final: str | None = None
    events: tuple[AuditEvent, ...] = field(default_factory=tuple)

    @property
    def stage(self) -> str:
        """``training``, ``gate`` or ``rollout`` while unfinished; else ``rollout_started``,
        ``gate_failed``, ``retrain_failed`` or ``rollout_failed``."""
        if self.final is not None:
            return self.final.removeprefix("loop.").replace(".", "_")
        if self.candidate is None:
            return "training"
        if self.gate_passed is None:
            return "gate"
        return "rollout"

    @property
    def finished(self) -> bool:
        return self.final is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "at": self.at.isoformat(),
            "stage": self.stage,
            "trigger": dict(self.trigger),
            "parent": self.parent,
            "candidate": self.candidate,
            "gate_passed": self.gate_passed,
            "gate": None if self.gate is None else dict(self.gate),
            "rollout": self.rollout,
            "error": self.error,
        }


def event_time(event: AuditEvent) -> datetime:
    """The controller's ``now`` recorded in the event, else when the row was written."""
    raw = event.details.get("at") if isinstance(event.details, Mapping) else None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return event.at


def loop_runs(events: Iterable[AuditEvent]) -> list[LoopRun]:
    """Every run found in ``events`` (one model's audit log), oldest first."""
    runs: dict[str, dict[str, Any]] = {}
    for event in events:
        if not event.action.startswith("loop."):
            continue
        details = event.details if isinstance(event.details, Mapping) else {}
        run_id = details.get("run")
        if not isinstance(run_id, str):
            continue
        if event.action == RETRAIN:
            parent = details.get("parent")
            runs[run_id] = {
                "run": run_id,
                "at": event_time(event),
                "trigger": dict(details.get("trigger") or {}),
                "parent": parent if isinstance(parent, int) else None,
                "events": [event],
            }
            continue
        state = runs.get(run_id)
        if state is None:
            continue
        state["events"].append(event)
        if event.action == CANDIDATE and isinstance(details.get("version"), int):
            state["candidate"] = details["version"]
        elif event.action in (GATE_PASSED, GATE_FAILED):
            state["gate_passed"] = event.action == GATE_PASSED
            gate = details.get("gate")
            state["gate"] = dict(gate) if isinstance(gate, Mapping) else None
        elif event.action == ROLLOUT_STARTED:
            state["rollout"] = details.get("rollout")
        if event.action in FINAL:
            state["final"] = event.action
            error = details.get("error")
            if isinstance(error, str):
                state["error"] = error
    return [LoopRun(**{**state, "events": tuple(state["events"])}) for state in runs.values()]


def last_retrain_at(events: Iterable[AuditEvent]) -> datetime | None:
    """When the loop last started a retrain of this model (the cooldown's start)."""
    times = [event_time(e) for e in events if e.action == RETRAIN]
    return max(times, default=None)
