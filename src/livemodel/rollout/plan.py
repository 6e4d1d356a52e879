"""Rollout plans: ``shadow,canary:5,25,50,100`` or ``ab:50``.

A plan is a list of steps. ``shadow`` mirrors live traffic to the candidate off the response
path; ``canary:P`` sends P% of routing keys to the candidate; a canary step at 100 followed
by success promotes. ``ab:P`` is a fixed split held until the outcome metric's sequential
test gives a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from livemodel.errors import InvalidInputError

StepKind = Literal["shadow", "canary", "ab"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    percent: float  # share of traffic answered by the candidate (0 for shadow)

    def label(self) -> str:
        return "shadow" if self.kind == "shadow" else f"{self.kind} {self.percent:g}%"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    @property
    def is_ab(self) -> bool:
        return self.steps[0].kind == "ab"

    def to_text(self) -> str:
        parts: list[str] = []
        canary = [s for s in self.steps if s.kind == "canary"]
        if any(s.kind == "shadow" for s in self.steps):
            parts.append("shadow")
        if canary:
            parts.append("canary:" + ",".join(f"{s.percent:g}" for s in canary))
        if self.is_ab:
            parts.append(f"ab:{self.steps[0].percent:g}")
        return ",".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"kind": s.kind, "percent": s.percent} for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        try:
            return cls(tuple(Step(s["kind"], float(s["percent"])) for s in data["steps"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed stored plan {data!r}") from exc

    @classmethod
    def parse(cls, text: str) -> Plan:
        """Parse the CLI form; every mistake is one clear InvalidInputError."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("a plan is e.g. 'shadow,canary:5,25,50,100' or 'ab:50'")
        steps: list[Step] = []
        mode: str | None = None
        for part in (p.strip() for p in text.split(",")):
            if not part:
                raise InvalidInputError(f"empty step in plan {text!r}")
            head, sep, number = part.partition(":")
            if head in ("shadow", "canary", "ab"):
                mode = head
                if head == "shadow":
                    if sep:
                        raise InvalidInputError("'shadow' takes no percentage")
                    if steps:
                        raise InvalidInputError("'shadow' must come first in a plan")
                    steps.append(Step("shadow", 0.0))
                    continue
                if not sep:
                    raise InvalidInputError(f"'{head}' needs a percentage, e.g. {head}:5")
                part = number  # noqa: PLW2901 - the rest of "canary:5" is its first number
            elif mode != "canary":
                raise InvalidInputError(f"unknown plan step {part!r}")
            percent = _percent(part, text)
            if mode == "ab":
                if steps:
                    raise InvalidInputError("an A/B plan is a single 'ab:P' step")
                if not 0 < percent < 100:
                    raise InvalidInputError("an A/B split must be strictly between 0 and 100")
                steps.append(Step("ab", percent))
            else:
                previous = [s.percent for s in steps if s.kind == "canary"]
                if previous and percent <= previous[-1]:
                    raise InvalidInputError(
                        f"canary steps must increase: {previous[-1]:g} then {percent:g}"
                    )
                steps.append(Step("canary", percent))
        if not steps:
            raise InvalidInputError(f"plan {text!r} has no steps")
        if steps[0].kind == "ab" and len(steps) > 1:
            raise InvalidInputError("an A/B plan is a single 'ab:P' step")
        return cls(tuple(steps))


def _percent(raw: str, text: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{raw!r} in plan {text!r} is not a percentage") from exc
    if not 0 < value <= 100:
        raise InvalidInputError(f"percentage {raw} in plan {text!r} is outside (0, 100]")
    return value
