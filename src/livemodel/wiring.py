"""Builds concrete backends from :class:`~livemodel.config.Settings`: the one wiring module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livemodel.config import Settings
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore
from livemodel.vocabulary import AliasOf

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from starlette.applications import Starlette

    from livemodel.loop.controller import LoopController
    from livemodel.rollout.controller import RolloutController
    from livemodel.serving.options import ServerOptions
    from livemodel.serving.state import ServingState
    from livemodel.store.logreader import LogReader
    from livemodel.store.logship import RemoteLog


def connect(settings: Settings | None = None) -> Registry:
    """A registry on the configured database and artifact store (environment by default)."""
    settings = settings or Settings.from_env()
    db = open_database(settings.db_url)
    artifacts = ArtifactStore(settings.artifact_url, settings.artifact_options)
    return Registry(MetadataStore(db), artifacts, actor=settings.actor)


def remote_log(settings: Settings) -> RemoteLog | None:
    """Where log segments are shipped (``LIVEMODEL_LOG_URL``), or None: local only."""
    from livemodel.store.logship import RemoteLog

    if settings.log_url is None:
        return None
    return RemoteLog(settings.log_url, settings.log_options)


def log_reader(settings: Settings | None = None) -> LogReader:
    """A reader of the log: the local folder, and the shipped segments if configured."""
    from livemodel.store.logreader import LogReader

    settings = settings or Settings.from_env()
    return LogReader(settings.log_dir, remote=remote_log(settings))


def serving_state(settings: Settings, options: ServerOptions) -> ServingState:
    """Everything one server process needs, built from settings and serving options."""
    from livemodel.serving.auth import Authenticator
    from livemodel.serving.metrics import ServerMetrics
    from livemodel.serving.state import ServingState
    from livemodel.store.labels import LabelLog
    from livemodel.store.logreader import LogReader
    from livemodel.store.logwriter import LogOptions, PredictionLog
    from livemodel.store.rollouts import RolloutStore
    from livemodel.store.tokens import TokenStore

    registry = connect(settings)
    log_options = LogOptions(fsync=options.fsync)
    remote = remote_log(settings)
    controller = controller_tick(settings) if settings.serve_controller else None
    return ServingState(
        registry=registry,
        options=options,
        log=PredictionLog(settings.log_dir, log_options, remote=remote),
        labels=LabelLog(settings.log_dir, log_options, remote=remote),
        reader=LogReader(settings.log_dir, remote=remote),
        auth=Authenticator(TokenStore(registry.metadata.db)),
        metrics=ServerMetrics(multiprocess=settings.metrics_dir is not None),
        rollouts=RolloutStore(registry.metadata.db),
        controller=controller,
    )


def serving_app() -> Starlette:
    """The app factory uvicorn workers call (``livemodel serve --workers N``)."""
    from livemodel.serving.app import build_app

    settings = Settings.from_env()
    from livemodel.serving.options import ServerOptions

    return build_app(serving_state(settings, ServerOptions.parse(settings.serving)))


def served_alias(settings: Settings | None = None) -> AliasOf:
    """The served alias of each model (``[serving.models.NAME] alias``, else ``[serving]
    alias``, else :data:`~livemodel.vocabulary.DEFAULT_ALIAS`): the one place it is read.

    Rollouts, the loop, the monitor, the report and the dashboard act on this alias.
    """
    from livemodel.serving.options import ServerOptions

    settings = settings or Settings.from_env()
    options = ServerOptions.parse(settings.serving)

    def alias_of(name: str) -> str:
        return options.for_model(name).alias

    return alias_of


def rollout_controller(
    settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None
) -> RolloutController:
    """The rollout controller; ``clock`` (default the real UTC clock) is its and its store's."""
    from livemodel.rollout.controller import RolloutController
    from livemodel.store.rollouts import RolloutStore

    settings = settings or Settings.from_env()
    registry = connect(settings)
    store = RolloutStore(registry.metadata.db, clock=clock)
    return RolloutController(
        registry, store, log_reader(settings), alias_of=served_alias(settings), clock=store.clock
    )


def loop_controller(settings: Settings | None = None) -> LoopController | None:
    """The loop controller of the ``[loop]`` policies in the project file (None: none).

    ``livemodel controller`` calls ``tick(now)`` on it each time it ticks the rollouts.
    """
    from livemodel.loop.controller import LoopController
    from livemodel.loop.policy import parse_loop
    from livemodel.monitor.resultstore import ResultStore
    from livemodel.monitor.runner import Monitor

    settings = settings or Settings.from_env()
    source = str(settings.config_file) if settings.config_file else None
    policies = parse_loop(settings.project.get("loop"), source=source)
    if not policies.models:
        return None
    rollouts = rollout_controller(settings)
    registry = rollouts.registry
    monitor = Monitor(
        registry, log_reader(settings), ResultStore(registry.metadata.db),
        alias_of=rollouts.alias_of,
    )  # fmt: skip
    return LoopController(registry, monitor, rollouts, policies)


class ControllerTick:
    """One tick of everything a controller follows: running rollouts, then loop policies."""

    def __init__(self, rollouts: RolloutController, loop: LoopController | None) -> None:
        self.rollouts = rollouts
        self.loop = loop

    def __call__(self) -> list[object]:
        from datetime import UTC, datetime

        events: list[object] = list(self.rollouts.tick())
        if self.loop is not None:
            events.extend(self.loop.tick(datetime.now(UTC)))
        return events

    def release(self) -> None:
        """Give up both leases, so a restarted controller does not wait for them to expire."""
        from livemodel.rollout.controller import LEASE

        self.rollouts.store.release(LEASE, self.rollouts.owner)
        if self.loop is not None:
            self.loop.release()


def controller_tick(settings: Settings | None = None) -> ControllerTick:
    settings = settings or Settings.from_env()
    return ControllerTick(rollout_controller(settings), loop_controller(settings))
