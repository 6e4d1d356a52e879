"""Guards: the metrics a rollout is decided on, each an always-valid sequential test.

Every guard turns logged traffic into one number per request and arm, and keeps an
:class:`~livemodel.stats.sequential.MSPRT` of candidate minus champion over the whole
rollout, so it may be read after every batch without inflating its error rates:

==================  ===========  ========================================================
guard               per request  meaning
==================  ===========  ========================================================
``errors``          0/1          the model raised, timed out or returned NaN (per row;
                                 an input both versions fail is in neither arm)
``latency``         0/1          slower than the champion's p99 (a p99 test as a rate)
``flags``           0/1          the request violated the signature
``divergence``      0/1          shadow: candidate's label differs from the champion's
``estimated``       [0, 1]       CBPE: calibrated probability that the prediction is right
``accuracy``        0/1          the prediction matched the label that arrived later
``outcome``         number       A/B: the label as a business metric (e.g. conversion)
==================  ===========  ========================================================

A guard votes ``rollback`` as soon as the candidate is significantly worse, ``promote``
once a harm of its minimum detectable effect is excluded, else ``continue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from livemodel.errors import InvalidInputError
from livemodel.stats.sequential import MSPRT, Decision, decide

Direction = Literal["lower_is_better", "higher_is_better"]
GuardName = Literal["errors", "latency", "flags", "divergence", "estimated", "accuracy", "outcome"]


@dataclass(frozen=True)
class GuardSpec:
    name: GuardName
    kind: Literal["proportion", "mean"]
    direction: Direction
    min_detectable_effect: float
    min_samples: int = 100
    #: guards whose "promote" a step waits for; the others can only roll back
    required: bool = True
    #: for one-sample guards (divergence) the tolerated level
    null_delta: float = 0.0

    def new_test(self, alpha: float) -> MSPRT:
        return MSPRT(
            alpha=alpha,
            tau=self.min_detectable_effect,
            null_delta=self.null_delta,
            kind=self.kind,
        )


def default_guards(
    *, shadow: bool, classifier: bool, has_estimator: bool, gated: bool = False
) -> tuple[GuardSpec, ...]:
    """The guards livemodel applies unless told otherwise.

    ``gated``: the candidate already beat the champion on labelled recent rows (the
    loop's gate), which outranks a label-free estimate; its ``estimated`` guard then only
    catches a collapse (see below)."""
    # ``null_delta`` is the difference tolerated before a guard may roll back: with enough
    # traffic any difference is significant, and a 1% latency wobble is not a regression.
    guards = [GuardSpec("errors", "proportion", "lower_is_better", 0.02)]
    if shadow:
        # Shadow copies queue behind each other off the response path, so their latency says
        # nothing about what users would see, and the same inputs give the same flag rate.
        if classifier:
            guards.append(
                GuardSpec("divergence", "proportion", "lower_is_better", 0.05, null_delta=0.2)
            )
        return tuple(guards)
    for name in ("latency", "flags"):  # vote only to roll back, past a 2-point tolerance
        guards.append(
            GuardSpec(name, "proportion", "lower_is_better", 0.05, required=False, null_delta=0.02)
        )
    if has_estimator and not gated:
        # Label-free estimates are biased when P(y|x) drifts (CBPE's assumption; see
        # docs/monitoring.md), and a retrained candidate is judged against a champion whose
        # estimate is then too kind: roll back only past 3 points. Labels take over below.
        guards.append(GuardSpec("estimated", "mean", "higher_is_better", 0.03, null_delta=-0.03))
    elif has_estimator:
        # The drift that made the loop retrain is what makes the champion's estimate too
        # kind (measured in the demo: 3-6 points against a candidate that won the gate by
        # 0.054 log loss), so the estimate may only roll back a collapse of 10 points.
        guards.append(
            GuardSpec(
                "estimated", "mean", "higher_is_better", 0.03, required=False, null_delta=-0.1
            )
        )
    guards.append(
        GuardSpec(
            "accuracy", "proportion", "higher_is_better", 0.03, required=False, null_delta=-0.02
        )
    )
    return tuple(guards)


@dataclass(frozen=True)
class GuardReading:
    """A guard's state after the latest observations, with the numbers behind its vote."""

    name: str
    decision: Decision
    state: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "guard": self.name,
            "verdict": d.verdict,
            "reason": d.reason,
            "p_value": d.p_value,
            "ci": [_finite(d.ci[0]), _finite(d.ci[1])],
            "effect": d.effect,
            "n_candidate": d.n_candidate,
            "n_champion": d.n_champion,
        }


def update_guard(
    spec: GuardSpec,
    state: Mapping[str, Any] | None,
    candidate: np.ndarray,
    champion: np.ndarray,
    *,
    alpha: float,
) -> GuardReading:
    """Fold new observations of both arms into the guard's test and read its vote."""
    test = MSPRT.from_dict(dict(state)) if state else spec.new_test(alpha)
    if candidate.size or champion.size:
        if spec.name == "divergence":  # one-sample: disagreement rate against null_delta
            champion = np.zeros_like(candidate, dtype=np.float64)
        test.update(np.asarray(candidate, np.float64), np.asarray(champion, np.float64))
    decision = decide(
        test,
        min_detectable_effect=spec.min_detectable_effect,
        direction=spec.direction,
        min_samples=spec.min_samples,
    )
    return GuardReading(spec.name, decision, test.to_dict())


def guard_specs_from_dicts(items: list[dict[str, Any]]) -> tuple[GuardSpec, ...]:
    try:
        return tuple(GuardSpec(**item) for item in items)
    except TypeError as exc:
        raise InvalidInputError(f"malformed guard specification: {exc}") from exc


def guard_spec_to_dict(spec: GuardSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "direction": spec.direction,
        "min_detectable_effect": spec.min_detectable_effect,
        "min_samples": spec.min_samples,
        "required": spec.required,
        "null_delta": spec.null_delta,
    }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
