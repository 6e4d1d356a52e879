"""The rollout controller: reads the log, feeds the guards, acts on the machine's verdicts.

Run by ``livemodel controller`` (or inside ``livemodel serve --with-controller``). Only the
holder of the ``rollout-controller`` lease acts, so two controllers never both promote or
roll back; state is saved with its revision after every tick, so a restarted controller
resumes where the last one stopped.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from livemodel.errors import ConflictError, InvalidInputError, LivemodelError, NotFoundError
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.rollout.guards import GuardSpec, default_guards, update_guard
from livemodel.rollout.machine import Event, RolloutState, abort, advance
from livemodel.rollout.observations import Confidence, champion_p99, observe
from livemodel.rollout.plan import Plan
from livemodel.store.logreader import LogReader
from livemodel.store.rollouts import RolloutStore, StoredRollout
from livemodel.vocabulary import AliasOf, default_alias

LEASE = "rollout-controller"
#: records of a batch still being written are not read until they are this old
SETTLE = timedelta(seconds=2)
_log = logging.getLogger("livemodel.rollout")


class RolloutController:
    def __init__(
        self,
        registry: Registry,
        store: RolloutStore,
        reader: LogReader,
        *,
        owner: str | None = None,
        lease_seconds: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        alias_of: AliasOf = default_alias,
    ) -> None:
        self.registry = registry
        self.store = store
        self.reader = reader
        self.owner = owner or f"controller-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.clock = clock
        #: the alias each model is served under: its version is the champion, and a
        #: promotion moves it (:func:`livemodel.wiring.served_alias`)
        self.alias_of = alias_of
        self._confidence: dict[tuple[str, int], Confidence | None] = {}

    # -- commands ------------------------------------------------------------------------
    def start(
        self,
        model: str,
        candidate: int,
        plan: str,
        *,
        metric: str | None = None,
        routing_key: str | None = None,
        alpha: float = 0.05,
        min_step_samples: int = 200,
        gated: bool = False,
    ) -> RolloutState:
        """Start rolling ``candidate`` out under ``plan``; ``gated`` when it already beat
        the champion on labelled recent rows (see :func:`default_guards`)."""
        parsed = Plan.parse(plan)
        alias = self.alias_of(model)
        champion = self.registry.get(ModelRef(model, alias=alias)).version
        version = self.registry.get(ModelRef(model, version=candidate))
        if candidate == champion:
            raise InvalidInputError(f"version {candidate} is already {alias}")
        if not 0 < alpha < 0.5:
            raise InvalidInputError("alpha must be in (0, 0.5)")
        task = version.signature.task
        classifier = task is not None and task.kind != "regression"
        guards: dict[str, tuple[GuardSpec, ...]] = {
            phase: default_guards(
                shadow=phase == "shadow",
                classifier=classifier,
                has_estimator=classifier,
                gated=gated,
            )
            for phase in ("shadow", "canary")
        }
        if parsed.is_ab:
            if metric not in ("accuracy", "label"):
                raise InvalidInputError("an A/B plan needs --metric accuracy or --metric label")
            outcome = GuardSpec(
                "outcome",
                "proportion" if metric == "accuracy" else "mean",
                "higher_is_better",
                0.02,
                min_samples=min_step_samples,
            )
            guards["ab"] = (guards["canary"][0], outcome)
        now = self.clock()
        state = RolloutState(
            id=uuid.uuid4().hex[:12],
            model=model,
            champion=champion,
            candidate=candidate,
            plan=parsed,
            guards=guards,
            alpha=alpha,
            min_step_samples=min_step_samples,
            routing_key=routing_key,
            step_started=now,
            watermark=now,
        )
        # the alias is kept with the rollout: a promotion moves the alias it started from
        stored = self.store.create(
            state.id, model, {**state.to_dict(), "metric": metric, "alias": alias}
        )
        self.registry.set_alias(model, "candidate", candidate, reason=f"rollout {state.id}")
        self.registry.record_event(
            model,
            "rollout.started",
            reason=f"{parsed.to_text()} for version {candidate}",
            details={
                "rollout": stored.id,
                "champion": champion,
                "candidate": candidate,
                "alias": alias,
                "plan": parsed.to_dict(),
                "alpha": alpha,
                "gated": gated,
            },
        )
        return state

    def abort(self, model: str, reason: str | None = None) -> RolloutState:
        running = self.store.running(model)
        if not running:
            raise NotFoundError(f"model {model!r} has no running rollout")
        stored = running[0]
        state, event = abort(
            RolloutState.from_dict(stored.state), reason or "aborted", self.clock()
        )
        self.store.save(stored.id, {**stored.state, **state.to_dict()}, revision=stored.revision)
        self._record(state, event, "rollout.aborted")
        return state

    def status(self, model: str) -> tuple[RolloutState, StoredRollout]:
        stored = self.store.latest(model)
        return RolloutState.from_dict(stored.state), stored

    # -- following -----------------------------------------------------------------------
    def tick(self) -> list[Event]:
        """One pass over every running rollout, if this controller holds the lease."""
        if not self.store.acquire(LEASE, self.owner, self.lease_seconds):
            return []
        events: list[Event] = []
        for stored in self.store.running():
            try:
                events.extend(self._follow(stored))
            except ConflictError:
                _log.warning("rollout %s changed under us; next tick", stored.id)
            except LivemodelError as exc:
                _log.error("rollout %s: %s", stored.id, exc)
        return events

    def run(self, every: float = 5.0, *, max_ticks: int | None = None) -> None:
        ticks = 0
        try:
            while max_ticks is None or ticks < max_ticks:
                self.tick()
                ticks += 1
                time.sleep(every)
        finally:
            self.store.release(LEASE, self.owner)

    def _follow(self, stored: StoredRollout) -> list[Event]:
        state = RolloutState.from_dict(stored.state)
        now = self.clock()
        end = now - SETTLE
        start = state.watermark or state.step_started
        if start is None or end <= start:
            return []
        window = self.reader.window(state.model, start=start, end=end)
        proba_columns = self._proba_columns(state)
        obs = observe(
            window,
            shadow=state.shadow,
            proba_columns=proba_columns,
            confidence=self._confidences(state),
            latency_threshold_ms=_slow(champion_p99(window)),
        )
        values = dict(obs.values)
        if any(g.name in ("accuracy", "outcome") for g in state.phase_guards()):
            values.update(self._labelled(state, stored, end, proba_columns))
        empty = np.zeros(0)
        readings = []
        for spec in state.phase_guards():
            cand, champ = values.get(_source(spec, stored.state.get("metric")), (empty, empty))
            # Label-based guards are recomputed over the whole rollout each tick, since
            # labels of old requests keep arriving; the others fold in the new window.
            relabelled = spec.name in ("accuracy", "outcome")
            prior = None if relabelled else state.guard_states.get(state.state_key(spec.name))
            readings.append(update_guard(spec, prior, cand, champ, alpha=state.alpha))
        new_state, events = advance(state, readings, obs.candidate_rows, now, end)
        self.store.save(
            stored.id, {**stored.state, **new_state.to_dict()}, revision=stored.revision
        )
        for event in events:
            if event.action == "hold" and obs.candidate_rows == 0:
                continue
            self._record(new_state, event, f"rollout.{event.action}")
            if event.action == "promote":
                self.registry.set_alias(
                    state.model,
                    str(stored.state.get("alias") or self.alias_of(state.model)),
                    state.candidate,
                    reason=f"rollout {state.id}: {event.reason}",
                )
        return events

    def _labelled(
        self,
        state: RolloutState,
        stored: StoredRollout,
        end: datetime,
        proba_columns: tuple[str, ...],
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Label-based values over the whole rollout so far (labels arrive late)."""
        window = self.reader.window(state.model, start=stored.created_at, end=end, with_labels=True)
        obs = observe(
            window, shadow=False, proba_columns=(), confidence={}, latency_threshold_ms=None
        )
        out = {}
        if "accuracy" in obs.values:
            out["accuracy"] = obs.values["accuracy"]
        rows = window.to_pydict()
        if "label" in rows:
            arms = np.asarray(rows.get("arm", []), dtype=object)
            labels = np.asarray(
                [np.nan if x is None or isinstance(x, str) else float(x) for x in rows["label"]]
            )
            known = ~np.isnan(labels)
            out["label"] = (
                labels[(arms == "candidate") & known],
                labels[(arms == "champion") & known],
            )
        return out

    def _proba_columns(self, state: RolloutState) -> tuple[str, ...]:
        task = self.registry.get(f"{state.model}@{state.champion}").signature.task
        if task is None or task.kind == "regression" or not task.classes:
            return ()
        return tuple(f"o.proba.{c}" for c in task.classes)

    def _confidences(self, state: RolloutState) -> dict[str, Confidence]:
        arms = {"champion": state.champion, "candidate": state.candidate, "shadow": state.candidate}
        out = {}
        for arm, version in arms.items():
            fn = self._confidence_of(state.model, version)
            if fn is not None:
                out[arm] = fn
        return out

    def _confidence_of(self, model: str, version: int) -> Confidence | None:
        """CBPE calibrated on the version's reference: P(prediction is right) per row."""
        # keyed by model too: one controller follows every model's rollouts, whose version
        # numbers repeat (a binary model's v1 must not calibrate a multiclass model's v1)
        if (model, version) not in self._confidence:
            self._confidence[model, version] = _fit_confidence(self.registry, model, version)
        return self._confidence[model, version]

    def _record(self, state: RolloutState, event: Event, action: str) -> None:
        details: dict[str, Any] = {
            "rollout": state.id,
            "status": state.status,
            **dict(event.details),
        }
        self.registry.record_event(state.model, action, reason=event.reason, details=details)


def _slow(p99: float | None) -> float | None:
    """A candidate request counts as slow past 1.5x the champion's p99: a canary's arm gets
    smaller batches than the champion's, so small latency differences are the canary's own,
    while a model that is really slower (2x, 10x) still shows."""
    return None if p99 is None else 1.5 * p99


def _source(spec: GuardSpec, metric: str | None) -> str:
    """Which observed values feed a guard (A/B outcomes: correctness or the label itself)."""
    if spec.name == "outcome":
        return "accuracy" if metric == "accuracy" else "label"
    return spec.name


def _fit_confidence(registry: Registry, model: str, version: int) -> Confidence | None:
    from livemodel.stats.cbpe import CBPE

    v = registry.get(f"{model}@{version}")
    task = v.signature.task
    if task is None or task.kind == "regression" or not task.classes:
        return None
    sample = registry.reference(f"{model}@{version}").sample
    columns = [f"proba_{c}" for c in task.classes]
    if task.target not in sample or any(c not in sample for c in columns):
        return None
    try:
        cbpe = CBPE("binary" if len(columns) == 2 else "multiclass").fit(
            sample[task.target].to_numpy(), sample[columns].to_numpy(), classes=list(task.classes)
        )
    except LivemodelError as exc:
        _log.warning("no estimated-performance guard for %s@%s: %s", model, version, exc)
        return None

    index = {str(c): i for i, c in enumerate(task.classes)}

    def confidence(proba: np.ndarray, decided: np.ndarray) -> np.ndarray:
        # the calibrated probability of the label the model decided (its own threshold),
        # not of the most likely class; a label outside the classes gives NaN (dropped)
        calibrated = cbpe.calibrate(proba)
        column = np.array([index.get(str(label), -1) for label in decided], dtype=np.intp)
        right = calibrated[np.arange(len(column)), np.maximum(column, 0)]
        return np.asarray(np.where(column >= 0, right, np.nan), dtype=float)

    return confidence
