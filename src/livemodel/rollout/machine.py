"""The rollout state machine: pure, so every decision can be replayed from its numbers.

``advance(state, readings, new_candidate_rows, now)`` returns the next state and the events
to record. A guard voting ``rollback`` ends the rollout at once. A step is passed when every
required guard of the phase votes ``promote`` and the step has seen ``min_step_samples``
candidate requests; passing the last step promotes the candidate. An A/B plan instead
holds its split until the ``outcome`` test finds a winner (its always-valid interval
excludes 0), promoting the candidate only if it is better.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from livemodel.errors import InvalidInputError
from livemodel.rollout.guards import (
    GuardReading,
    GuardSpec,
    guard_spec_to_dict,
    guard_specs_from_dicts,
)
from livemodel.rollout.plan import Plan, Step

Status = Literal["running", "promoted", "rolled_back", "aborted"]
ACTIVE: tuple[Status, ...] = ("running",)


@dataclass(frozen=True)
class RolloutState:
    id: str
    model: str
    champion: int
    candidate: int
    plan: Plan
    guards: Mapping[str, tuple[GuardSpec, ...]]  # per phase: "shadow", "canary", "ab"
    alpha: float = 0.05
    min_step_samples: int = 200
    routing_key: str | None = None
    status: Status = "running"
    step: int = 0
    step_started: datetime | None = None
    step_rows: int = 0
    watermark: datetime | None = None
    guard_states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    last_readings: tuple[Mapping[str, Any], ...] = ()
    reason: str | None = None

    @property
    def current(self) -> Step:
        return self.plan.steps[min(self.step, len(self.plan.steps) - 1)]

    @property
    def phase(self) -> str:
        return self.current.kind

    @property
    def candidate_percent(self) -> float:
        return self.current.percent if self.status == "running" else 0.0

    @property
    def shadow(self) -> bool:
        return self.status == "running" and self.current.kind == "shadow"

    def phase_guards(self) -> tuple[GuardSpec, ...]:
        return tuple(self.guards.get(self.phase, ()))

    def state_key(self, guard: str) -> str:
        return f"{self.phase}:{guard}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "champion": self.champion,
            "candidate": self.candidate,
            "plan": self.plan.to_dict(),
            "guards": {k: [guard_spec_to_dict(g) for g in v] for k, v in self.guards.items()},
            "alpha": self.alpha,
            "min_step_samples": self.min_step_samples,
            "routing_key": self.routing_key,
            "status": self.status,
            "step": self.step,
            "step_started": _iso(self.step_started),
            "step_rows": self.step_rows,
            "watermark": _iso(self.watermark),
            "guard_states": {k: dict(v) for k, v in self.guard_states.items()},
            "last_readings": [dict(r) for r in self.last_readings],
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        try:
            return cls(
                id=str(data["id"]),
                model=str(data["model"]),
                champion=int(data["champion"]),
                candidate=int(data["candidate"]),
                plan=Plan.from_dict(data["plan"]),
                guards={k: guard_specs_from_dicts(v) for k, v in data["guards"].items()},
                alpha=float(data["alpha"]),
                min_step_samples=int(data["min_step_samples"]),
                routing_key=data.get("routing_key"),
                status=data["status"],
                step=int(data["step"]),
                step_started=_time(data.get("step_started")),
                step_rows=int(data["step_rows"]),
                watermark=_time(data.get("watermark")),
                guard_states=dict(data.get("guard_states", {})),
                last_readings=tuple(data.get("last_readings", ())),
                reason=data.get("reason"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed rollout state: {exc}") from exc


@dataclass(frozen=True)
class Event:
    """Something to record in the audit log (and act on, for promote/rollback)."""

    action: Literal["step", "promote", "rollback", "hold"]
    reason: str
    details: Mapping[str, Any]


def advance(
    state: RolloutState,
    readings: Sequence[GuardReading],
    new_candidate_rows: int,
    now: datetime,
    watermark: datetime,
) -> tuple[RolloutState, list[Event]]:
    if state.status != "running":
        return state, []
    guard_states = {**state.guard_states}
    for r in readings:
        guard_states[state.state_key(r.name)] = r.state
    summary = tuple(r.to_dict() for r in readings)
    details = {"step": state.current.label(), "readings": list(summary)}
    base = dataclasses.replace(
        state,
        guard_states=guard_states,
        last_readings=summary,
        watermark=watermark,
        step_rows=state.step_rows + new_candidate_rows,
    )
    failed = [r for r in readings if r.decision.verdict == "rollback"]
    if state.plan.is_ab:
        outcome = next((r for r in readings if r.name == "outcome"), None)
        if outcome is not None and not failed:
            lo, hi = outcome.decision.ci
            if hi < 0:
                failed = [outcome]
            elif lo > 0 and base.step_rows >= state.min_step_samples:
                reason = f"candidate wins the A/B test (effect CI {lo:.4g}..{hi:.4g})"
                return _finish(base, "promoted", reason, now), [Event("promote", reason, details)]
    if failed:
        reason = "; ".join(f"{r.name}: {r.decision.reason}" for r in failed)
        return _finish(base, "rolled_back", reason, now), [Event("rollback", reason, details)]
    if state.plan.is_ab:
        return base, [Event("hold", "A/B test inconclusive so far", details)]
    required = [g.name for g in state.phase_guards() if g.required]
    votes = {r.name: r.decision.verdict for r in readings}
    waiting = [g for g in required if votes.get(g) != "promote"]
    if waiting or base.step_rows < state.min_step_samples:
        why = (
            f"waiting for {', '.join(waiting)}"
            if waiting
            else f"{base.step_rows} of {state.min_step_samples} candidate requests in this step"
        )
        return base, [Event("hold", why, details)]
    if state.step + 1 >= len(state.plan.steps):
        reason = f"every guard passed through {state.current.label()}"
        return _finish(base, "promoted", reason, now), [Event("promote", reason, details)]
    following = state.plan.steps[state.step + 1]
    reason = f"{state.current.label()} passed; moving to {following.label()}"
    moved = dataclasses.replace(base, step=state.step + 1, step_rows=0, step_started=now)
    return moved, [Event("step", reason, details)]


def abort(state: RolloutState, reason: str, now: datetime) -> tuple[RolloutState, Event]:
    return _finish(state, "aborted", reason, now), Event("rollback", reason, {"aborted": True})


def _finish(state: RolloutState, status: Status, reason: str, now: datetime) -> RolloutState:
    return dataclasses.replace(state, status=status, reason=reason, step_started=now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
