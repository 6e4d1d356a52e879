"""What a server process holds: one endpoint per served model, kept on the live version.

A watcher polls the registry's aliases every ``poll_seconds``; when an alias moves it loads
the new version in a thread and swaps it in, so every replica follows within a poll
interval plus the load time, and no request fails during the swap.

A version that cannot be loaded (a missing or tampered artifact, say) is recorded in
``failures`` with a reason fit for clients (no paths): ``/readyz`` is not ready while a
model has no version served because of it, and the log says so once per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from livemodel.errors import IntegrityError, LivemodelError, NotFoundError, StoreError
from livemodel.registry.registry import Registry
from livemodel.rollout.machine import RolloutState
from livemodel.serving.auth import Authenticator
from livemodel.serving.engine import ActiveRollout, ModelEndpoint
from livemodel.serving.handles import ModelHandle, load_handle
from livemodel.serving.metrics import ServerMetrics
from livemodel.serving.options import ServerOptions
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import PredictionLog
from livemodel.store.rollouts import RolloutStore

_log = logging.getLogger("livemodel.serving")


@dataclass(frozen=True)
class LoadFailure:
    """A version the alias names that could not be loaded, and what is served instead."""

    version: int
    reason: str  # for clients: no paths, no exception text
    serving: int | None  # the version still served, or None: the model is absent

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "reason": self.reason, "serving": self.serving}


def load_reason(exc: LivemodelError) -> str:
    """Why a version could not be loaded, in words that carry no path or URL."""
    if isinstance(exc, IntegrityError):
        return "the artifact failed its integrity check (corrupt, tampered with or not loadable)"
    if isinstance(exc, NotFoundError):
        return "the artifact or the version is missing"
    if isinstance(exc, StoreError):
        return "the artifact store could not be read"
    return f"the version could not be loaded ({type(exc).__name__})"


@dataclass
class ServingState:
    registry: Registry
    options: ServerOptions
    log: PredictionLog
    labels: LabelLog
    reader: LogReader
    auth: Authenticator
    metrics: ServerMetrics
    rollouts: RolloutStore | None = None
    #: ``controller.tick`` run every ``poll_seconds`` (``livemodel serve --with-controller``)
    controller: Callable[[], object] | None = None
    endpoints: dict[str, ModelEndpoint] = field(default_factory=dict)
    _candidates: dict[tuple[str, int], ModelEndpoint] = field(default_factory=dict)
    ready: bool = False
    #: models whose aliased version failed to load (see :class:`LoadFailure`)
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    _watcher: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """Started, and every model with a serving alias has a version served."""
        return self.ready and all(f.serving is not None for f in self.failures.values())

    def endpoint(self, name: str) -> ModelEndpoint:
        found = self.endpoints.get(name)
        if found is None:
            served = ", ".join(sorted(self.endpoints)) or "none"
            raise NotFoundError(f"model {name!r} is not served here (served: {served})")
        return found

    async def start(self) -> None:
        await self.refresh()
        self.ready = True
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="alias-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for endpoint in [*self.endpoints.values(), *self._candidates.values()]:
            await endpoint.batcher.close()
        await asyncio.to_thread(self.log.close)
        await asyncio.to_thread(self.labels.close)

    async def refresh(self) -> None:
        """Load every model whose serving alias points at a version not yet served."""
        summaries = await asyncio.to_thread(self.registry.models)
        for summary in summaries:
            options = self.options.for_model(summary.name)
            version = summary.aliases.get(options.alias)
            current = self.endpoints.get(summary.name)
            if version is None or (current is not None and current.handle.number == version):
                self._loaded(summary.name, version)
                continue
            ref = f"{summary.name}@{version}"
            try:
                handle = await asyncio.to_thread(load_handle, self.registry, ref)
            except LivemodelError as exc:
                serving = current.handle.number if current is not None else None
                self._failed(summary.name, LoadFailure(version, load_reason(exc), serving), exc)
                continue
            self._loaded(summary.name, version)
            if current is None:
                self.endpoints[summary.name] = ModelEndpoint(
                    handle, options, self.log, self.metrics,
                    previous=await asyncio.to_thread(self._previous, summary.name, options.alias),
                )  # fmt: skip
            else:
                current.swap(handle)
                _log.info("now serving %s (was version %s)", ref, current.previous_number)
            self.metrics.served_version.labels(summary.name, options.alias).set(version)
        for gone in set(self.failures) - {s.name for s in summaries}:
            self._loaded(gone, None)
        await self._follow_rollouts()

    def _failed(self, name: str, failure: LoadFailure, exc: LivemodelError) -> None:
        """Record a failed load; log it only when it differs from the last one."""
        if self.failures.get(name) == failure:
            return
        self.failures[name] = failure
        ref = f"{name}@{failure.version}"
        if failure.serving is None:
            _log.error("cannot load %s and no version of it is served: %s", ref, exc.message)
        else:
            _log.error(
                "cannot load %s, still serving version %s: %s", ref, failure.serving, exc.message
            )

    def _loaded(self, name: str, version: int | None) -> None:
        if self.failures.pop(name, None) is not None:
            _log.warning("%s: no failed load any more (alias at version %s)", name, version)

    async def _follow_rollouts(self) -> None:
        """Point each endpoint at its running rollout (or none), loading candidates once."""
        if self.rollouts is None:
            return
        running = {r.model: r for r in await asyncio.to_thread(self.rollouts.running)}
        for name, endpoint in self.endpoints.items():
            stored = running.get(name)
            if stored is None:
                endpoint.rollout = None
                continue
            state = RolloutState.from_dict(stored.state)
            if state.champion != endpoint.handle.number:
                endpoint.rollout = None  # the alias moved under the rollout: champion only
                continue
            key = (name, state.candidate)
            if key not in self._candidates:
                try:
                    handle = await asyncio.to_thread(
                        load_handle, self.registry, f"{name}@{state.candidate}"
                    )
                except LivemodelError as exc:
                    _log.error("cannot load candidate %s@%s: %s", name, state.candidate, exc)
                    endpoint.rollout = None
                    continue
                options = endpoint.options.model_copy(
                    update={"fallback": "error", "review_threshold": None}
                )
                self._candidates[key] = ModelEndpoint(handle, options, self.log, self.metrics)
            endpoint.rollout = ActiveRollout(
                id=state.id,
                candidate_version=state.candidate,
                percent=state.candidate_percent,
                shadow=state.shadow,
                routing_key=state.routing_key,
                candidate=self._candidates[key],
            )

    def _previous(self, name: str, alias: str) -> ModelHandle | None:
        """The version the alias pointed at before, for the 'previous' fallback."""
        options = self.options.for_model(name)
        if options.fallback != "previous":
            return None
        moves = [e for e in self.registry.audit(name) if e.alias == alias and e.from_version]
        if not moves:
            return None
        try:
            return load_handle(self.registry, f"{name}@{moves[-1].from_version}")
        except LivemodelError as exc:
            _log.error("cannot load the fallback version of %s: %s", name, exc)
            return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_seconds)
            try:
                if self.controller is not None:
                    await asyncio.to_thread(self.controller)
                await self.refresh()
            except LivemodelError as exc:  # the database may be down for a moment
                _log.warning("alias refresh failed: %s", exc)
