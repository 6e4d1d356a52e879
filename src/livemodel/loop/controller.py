"""The loop controller: monitor → triggers → retrain → gate → rollout, for every policy.

:meth:`LoopController.tick` does one pass at the time ``now`` it is given. Only the holder
of the ``loop-controller`` lease acts (the lease table of
:class:`~livemodel.store.rollouts.RolloutStore`), so two controllers never both retrain;
the lease is renewed between the slow steps, so ``[loop] lease_seconds`` must exceed the
longest training. Every step is recorded in the audit log before the next begins
(:mod:`livemodel.loop.history`), which is all the state there is: a restarted controller
finishes an interrupted run where it stopped. A started rollout is then followed by the
rollout controller's own ticks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from livemodel.errors import ConfigError, ConflictError, LivemodelError, NotFoundError
from livemodel.loop import history
from livemodel.loop.data import load_pinned, pin, read_labelled, select_rows, utc
from livemodel.loop.gate import GateResult, run_gate
from livemodel.loop.history import LoopRun, last_retrain_at, loop_runs
from livemodel.loop.outcomes import LoopStatus, TickOutcome
from livemodel.loop.policy import LoopSettings, ModelPolicy
from livemodel.loop.retrain import call_train, register_candidate, resolve_entry_point
from livemodel.loop.triggers import Decision, evaluate, latest_window
from livemodel.monitor.concept import concept_rows
from livemodel.monitor.runner import Monitor
from livemodel.monitor.windows import parse_window
from livemodel.registry.refs import ModelRef
from livemodel.registry.registry import Registry
from livemodel.rollout.controller import RolloutController

__all__ = ["LEASE", "LoopController", "LoopStatus", "TickOutcome"]

LEASE = "loop-controller"
_log = logging.getLogger("livemodel.loop")


class _LostLeaseError(Exception):
    """Another controller took the lease: stop acting at once (not an error to record)."""


class LoopController:
    """Runs the loop policies of :class:`~livemodel.loop.policy.LoopSettings`."""

    def __init__(
        self,
        registry: Registry,
        monitor: Monitor,
        rollouts: RolloutController,
        settings: LoopSettings,
        *,
        owner: str | None = None,
    ) -> None:
        self.registry = registry
        self.monitor = monitor
        self.rollouts = rollouts
        self.settings = settings
        self.owner = owner or f"loop-{uuid.uuid4().hex[:8]}"

    # -- the lease -----------------------------------------------------------------------
    def acquire(self) -> bool:
        return self.rollouts.store.acquire(LEASE, self.owner, self.settings.lease_seconds)

    def release(self) -> None:
        self.rollouts.store.release(LEASE, self.owner)

    def _renew(self) -> None:
        if not self.acquire():
            raise _LostLeaseError("another loop controller took the lease")

    # -- one pass ------------------------------------------------------------------------
    def tick(self, now: datetime) -> list[TickOutcome]:
        """One pass over every policy at ``now``, if this controller holds the lease."""
        now = utc(now)
        if not self.acquire():
            return []
        outcomes = []
        for name, policy in self.settings.models.items():
            try:
                outcomes.append(self._tick_model(name, policy, now))
            except _LostLeaseError as exc:
                outcomes.append(TickOutcome(name, "lost_lease", str(exc)))
                break
            except LivemodelError as exc:
                _log.error("loop of %s: %s", name, exc)
                outcomes.append(TickOutcome(name, "error", exc.message))
        return outcomes

    def retrain(self, name: str, now: datetime, *, reason: str | None = None) -> TickOutcome:
        """Retrain ``name`` now (a manual trigger: no cooldown), then gate and roll out."""
        now = utc(now)
        policy = self.policy(name)
        if not self.acquire():
            raise ConflictError("another loop controller holds the lease; try again later")
        unfinished = self._unfinished(name)
        if unfinished is not None:
            raise ConflictError(
                f"run {unfinished.run} of {name} is unfinished ({unfinished.stage}); "
                "the controller resumes it on its next tick"
            )
        running = self.rollouts.store.running(name)
        if running:
            raise ConflictError(f"{name} has a running rollout ({running[0].id}); abort it first")
        parent = self.registry.get(self._served(name))
        trigger = {
            "kinds": ["manual"],
            "hits": [{"kind": "manual", "message": reason or "manual retrain", "details": {}}],
        }
        try:
            return self._start(
                name,
                policy,
                now,
                trigger,
                parent=parent.version,
                message=reason or "manual retrain",
            )
        except _LostLeaseError as exc:
            raise ConflictError(f"{exc} during the retrain; it resumes the run") from exc

    def policy(self, name: str) -> ModelPolicy:
        if name not in self.settings.models:
            raise ConfigError(f"no loop policy for {name!r}: add a [loop.models.{name}] table")
        return self.settings.models[name]

    def status(self, name: str, now: datetime) -> LoopStatus:
        policy = self.policy(name)
        events = self.registry.audit(name)
        last = last_retrain_at(events)
        until = None if last is None else last + policy.cooldown
        running = self.rollouts.store.running(name)
        return LoopStatus(
            model=name,
            policy=policy.model_dump(mode="json"),
            runs=tuple(loop_runs(events)),
            cooldown_until=until if until is not None and until > utc(now) else None,
            running_rollout=running[0].id if running else None,
            aliases=self.registry.aliases(name),
        )

    # -- steps ---------------------------------------------------------------------------
    def _unfinished(self, name: str) -> LoopRun | None:
        runs = loop_runs(self.registry.audit(name))
        return runs[-1] if runs and not runs[-1].finished else None

    def _tick_model(self, name: str, policy: ModelPolicy, now: datetime) -> TickOutcome:
        try:
            events = self.registry.audit(name)
        except NotFoundError:
            return TickOutcome(name, "not_registered", f"{name} is not registered")
        runs = loop_runs(events)
        if runs and not runs[-1].finished:
            return self._advance(name, policy, runs[-1])
        aliases, alias = self.registry.aliases(name), self.rollouts.alias_of(name)
        if alias not in aliases:
            return TickOutcome(name, "no_production", f"{name} has no {alias} version")
        running = self.rollouts.store.running(name)
        if running:
            return TickOutcome(name, "rollout_running", f"rollout {running[0].id} is running")
        decision = self._decide(name, policy, now, events, aliases[alias])
        if not decision.retrain:
            action = "cooldown" if decision.blocked else "idle"
            text = decision.blocked or "no trigger fired"
            return TickOutcome(name, action, text, decision)
        summary = decision.to_dict()
        trigger = {
            "kinds": list(decision.kinds),
            "hits": summary["hits"],
            "window": summary["window"],
        }
        message = "; ".join(h.message for h in decision.hits)
        return self._start(
            name, policy, now, trigger,
            parent=aliases[alias], message=message, decision=decision,
        )  # fmt: skip

    def _decide(
        self,
        name: str,
        policy: ModelPolicy,
        now: datetime,
        events: list[Any],
        served: int,
    ) -> Decision:
        spec = parse_window(policy.monitor.window)
        result = self.monitor.run(
            name,
            since=now - policy.monitor.lookback,
            until=now,
            window=spec,
            segments=policy.monitor.segments,
            version=served,
        )
        window = latest_window(
            result.windows, now, min_rows=policy.monitor.min_rows, rows_per_window=spec.rows
        )
        baseline = self.registry.get(ModelRef(name, version=served)).created_at
        return evaluate(
            policy.triggers,
            window,
            now=now,
            last_retrain=last_retrain_at(events),
            baseline=baseline,
            cooldown=policy.cooldown,
            concept=[] if result.concept is None else concept_rows(result.concept),
        )

    def _start(
        self,
        name: str,
        policy: ModelPolicy,
        now: datetime,
        trigger: Mapping[str, Any],
        *,
        parent: int,
        message: str,
        decision: Decision | None = None,
    ) -> TickOutcome:
        run_id = uuid.uuid4().hex[:12]
        self.registry.record_event(
            name,
            history.RETRAIN,
            reason=message[:2000],
            details=_json({"run": run_id, "at": now.isoformat(), "trigger": dict(trigger),
                           "parent": parent, "train": policy.train}),
        )  # fmt: skip
        run = LoopRun(run=run_id, at=now, trigger=trigger, parent=parent)
        outcome = self._advance(name, policy, run)
        return TickOutcome(
            name, outcome.action, outcome.message, decision, outcome.run, outcome.gate
        )

    def _advance(self, name: str, policy: ModelPolicy, run: LoopRun) -> TickOutcome:
        """Carry ``run`` through its remaining steps; each is audited before the next."""
        candidate = run.candidate
        if candidate is None:
            try:
                candidate = self._train(name, policy, run)
            except LivemodelError as exc:
                self._event(name, history.RETRAIN_FAILED, run, exc.message, error=exc.message)
                return self._outcome(name, run.run, "retrain_failed", exc.message)
        gate: GateResult | None = None
        if run.gate_passed is None:
            champion = run.parent or self.registry.get(self._served(name)).version
            try:
                gate = self._gate(name, policy, champion, candidate)
            except LivemodelError as exc:
                self._event(name, history.GATE_FAILED, run, exc.message, candidate=candidate,
                            champion=champion, error=exc.message)  # fmt: skip
                return self._outcome(name, run.run, "gate_failed", exc.message)
            action = history.GATE_PASSED if gate.passed else history.GATE_FAILED
            text = "; ".join(gate.reasons) or gate.notes[0]
            self._event(name, action, run, text, candidate=candidate, champion=champion,
                        gate=gate.to_dict())  # fmt: skip
            if not gate.passed:
                return self._outcome(name, run.run, "gate_failed", text, gate)
        return self._rollout(name, policy, run, candidate, gate)

    def _train(self, name: str, policy: ModelPolicy, run: LoopRun) -> int:
        self._renew()
        parent = self.registry.get(
            ModelRef(name, version=run.parent) if run.parent else self._served(name)
        )
        # an entry point that cannot be imported fails before any data is read
        fn = resolve_entry_point(policy.train, key=f"loop.models.{name}.train")
        since = None if policy.data.history is None else run.at - policy.data.history
        task = parent.signature.task
        if task is None:
            raise ConfigError(f"{parent.ref} has no target: the loop cannot retrain it")
        labelled, counts = read_labelled(
            self.monitor.reader, name, parent.signature, now=run.at, since=since
        )
        selection = select_rows(labelled, policy.data, now=run.at)
        selection = type(selection)(
            selection.train, selection.holdout, {**selection.query, "left_out": counts}
        )
        snapshot = pin(selection, self.registry.artifacts)
        model = call_train(fn, snapshot.train, seed=policy.data.seed, name=policy.train)
        self._renew()
        version = register_candidate(
            self.registry, name, model, snapshot,
            parent=parent, entry_point=policy.train, seed=policy.data.seed,
            run_id=run.run, trigger=run.trigger,
        )  # fmt: skip
        fingerprints = {part: snapshot.info[part]["fingerprint"] for part in ("train", "holdout")}
        self._event(name, history.CANDIDATE, run, f"registered v{version.version}",
                    version=version.version, snapshot=fingerprints)  # fmt: skip
        return version.version

    def _gate(self, name: str, policy: ModelPolicy, champion: int, candidate: int) -> GateResult:
        self._renew()
        cand = self.registry.load(ModelRef(name, version=candidate))
        champ = self.registry.load(ModelRef(name, version=champion))
        lineage = cand.version.tags.get("loop")
        if not isinstance(lineage, Mapping) or not isinstance(lineage.get("snapshot"), Mapping):
            raise NotFoundError(f"{cand.version.ref} has no pinned snapshot to gate on")
        snapshot = load_pinned(lineage["snapshot"], self.registry.artifacts)
        task = champ.version.signature.task
        if task is None:
            raise ConfigError(f"{champ.version.ref} has no target: nothing to gate on")
        features = list(champ.version.signature.names)
        return run_gate(
            champ.model, cand.model, snapshot.holdout,
            features=features, target=task.target, kind=task.kind,
            classes=None if task.classes is None else list(task.classes),
            settings=policy.gate,
        )  # fmt: skip

    def _rollout(
        self,
        name: str,
        policy: ModelPolicy,
        run: LoopRun,
        candidate: int,
        gate: GateResult | None,
    ) -> TickOutcome:
        spec = policy.rollout
        try:
            state_id = self.rollouts.start(
                name, candidate, spec.plan,
                routing_key=spec.routing_key, alpha=spec.alpha,
                min_step_samples=spec.min_step_samples, gated=True,
            ).id  # fmt: skip
        except ConflictError as exc:
            running = self.rollouts.store.running(name)
            ours = [r for r in running if r.state.get("candidate") == candidate]
            if not ours:  # another rollout holds the model: this candidate waits for nobody
                self._event(name, history.ROLLOUT_FAILED, run, exc.message,
                            candidate=candidate, error=exc.message)  # fmt: skip
                return self._outcome(name, run.run, "rollout_failed", exc.message, gate)
            state_id = ours[0].id  # started before a crash, not yet recorded
        except LivemodelError as exc:
            self._event(name, history.ROLLOUT_FAILED, run, exc.message,
                        candidate=candidate, error=exc.message)  # fmt: skip
            return self._outcome(name, run.run, "rollout_failed", exc.message, gate)
        text = f"rollout {state_id} of v{candidate} started ({spec.plan})"
        self._event(name, history.ROLLOUT_STARTED, run, text, candidate=candidate,
                    rollout=state_id, plan=spec.plan)  # fmt: skip
        return self._outcome(name, run.run, "rollout_started", text, gate)

    def _served(self, name: str) -> ModelRef:
        """The version the model is served under: its alias moves on promotion."""
        return ModelRef(name, alias=self.rollouts.alias_of(name))

    # -- audit ---------------------------------------------------------------------------
    def _event(self, name: str, action: str, run: LoopRun, reason: str, **details: Any) -> None:
        payload = {"run": run.run, **details}
        self.registry.record_event(name, action, reason=reason[:2000], details=_json(payload))

    def _outcome(
        self, name: str, run_id: str, action: str, message: str, gate: GateResult | None = None
    ) -> TickOutcome:
        runs = [r for r in loop_runs(self.registry.audit(name)) if r.run == run_id]
        return TickOutcome(name, action, message, run=runs[-1] if runs else None, gate=gate)


def _json(value: Any) -> Any:
    from livemodel.monitor.results import json_safe

    return json_safe(value)
