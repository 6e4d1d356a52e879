"""What the loop controller reports: per model and tick, and a model's loop status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livemodel.loop.gate import GateResult
from livemodel.loop.history import LoopRun
from livemodel.loop.triggers import Decision

__all__ = ["LoopStatus", "TickOutcome"]


@dataclass(frozen=True)
class TickOutcome:
    """What the controller did for one model in one tick."""

    model: str
    action: str
    message: str
    decision: Decision | None = None
    run: LoopRun | None = None
    gate: GateResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "action": self.action,
            "message": self.message,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "run": None if self.run is None else self.run.to_dict(),
        }


@dataclass(frozen=True)
class LoopStatus:
    model: str
    policy: Mapping[str, Any]
    runs: tuple[LoopRun, ...]
    cooldown_until: datetime | None
    running_rollout: str | None
    aliases: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "policy": dict(self.policy),
            "aliases": dict(self.aliases),
            "cooldown_until": None
            if self.cooldown_until is None
            else self.cooldown_until.isoformat(),
            "running_rollout": self.running_rollout,
            "runs": [r.to_dict() for r in self.runs],
        }
