"""Settings: the one place that reads the environment.

- ``LIVEMODEL_HOME``: folder for the embedded backends (default ``./.livemodel``)
- ``LIVEMODEL_DB_URL``: SQLAlchemy URL of the metadata database
  (default ``sqlite:///$LIVEMODEL_HOME/livemodel.db``)
- ``LIVEMODEL_ARTIFACTS``: fsspec URL of the artifact store (``$LIVEMODEL_HOME/artifacts``),
  e.g. ``s3://bucket/prefix`` (needs the ``s3`` extra)
- ``LIVEMODEL_ARTIFACTS_OPTIONS``: a JSON object of fsspec storage options for that URL,
  e.g. ``{"endpoint_url": "http://minio:9000"}`` (credentials are better left to the
  backend's own environment, such as ``AWS_ACCESS_KEY_ID``)
- ``LIVEMODEL_LOGS``: folder of the prediction and label log (``$LIVEMODEL_HOME/logs``);
  with ``LIVEMODEL_LOG_URL`` it is this replica's local spool
- ``LIVEMODEL_LOG_URL``: fsspec URL that compacted log segments are shipped to and read
  from, shared by every replica, e.g. ``s3://bucket/logs`` (unset: the log stays local)
- ``LIVEMODEL_LOG_OPTIONS``: a JSON object of fsspec storage options for that URL
- ``LIVEMODEL_ACTOR``: who the audit log records (``user@host``)
- ``LIVEMODEL_CONFIG``: the project file with serving, monitoring and loop settings
  (``./livemodel.toml`` when it exists)

``LIVEMODEL_SERVE_CONTROLLER=1`` (set by ``livemodel serve --with-controller``) runs the
controller inside the server. ``PROMETHEUS_MULTIPROC_DIR`` (set by ``livemodel serve
--workers N``) makes metrics aggregate over worker processes.

Everything below this module receives its backends as arguments; :func:`livemodel.connect`
builds them from a :class:`Settings`.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from livemodel.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """Where livemodel keeps its state."""

    home: Path
    db_url: str
    artifact_url: str
    log_dir: Path
    actor: str
    config_file: Path | None = None
    project: Mapping[str, Any] = field(default_factory=dict)
    metrics_dir: str | None = None
    #: run the rollout (and loop) controller inside each server process
    serve_controller: bool = False
    #: fsspec storage options of ``artifact_url`` (kept out of repr: may hold secrets)
    artifact_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: fsspec URL log segments are shipped to (None: the log stays in ``log_dir``)
    log_url: str | None = None
    #: fsspec storage options of ``log_url`` (kept out of repr: may hold secrets)
    log_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def serving(self) -> Mapping[str, Any]:
        """The ``[serving]`` table of the project file."""
        table = self.project.get("serving", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"[serving] in {self.config_file} must be a table")
        return table

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("LIVEMODEL_HOME") or ".livemodel").expanduser()
        config = env.get("LIVEMODEL_CONFIG") or None
        if config is None and Path("livemodel.toml").is_file():
            config = "livemodel.toml"
        settings = cls.at(
            home,
            db_url=env.get("LIVEMODEL_DB_URL") or None,
            artifact_url=env.get("LIVEMODEL_ARTIFACTS") or None,
            log_dir=env.get("LIVEMODEL_LOGS") or None,
            actor=env.get("LIVEMODEL_ACTOR") or None,
            artifact_options=parse_storage_options(env.get("LIVEMODEL_ARTIFACTS_OPTIONS")),
            log_url=env.get("LIVEMODEL_LOG_URL") or None,
            log_options=parse_storage_options(
                env.get("LIVEMODEL_LOG_OPTIONS"), "LIVEMODEL_LOG_OPTIONS"
            ),
        )
        return replace(
            settings,
            config_file=Path(config).absolute() if config else None,
            project=read_project_file(Path(config)) if config else {},
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            serve_controller=env.get("LIVEMODEL_SERVE_CONTROLLER") == "1",
        )

    @classmethod
    def at(
        cls,
        home: str | Path,
        *,
        db_url: str | None = None,
        artifact_url: str | None = None,
        log_dir: str | Path | None = None,
        actor: str | None = None,
        artifact_options: Mapping[str, Any] | None = None,
        log_url: str | None = None,
        log_options: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings rooted at ``home``, each backend overridable."""
        home = Path(home).expanduser().absolute()
        if home.exists() and not home.is_dir():
            raise ConfigError(f"LIVEMODEL_HOME {str(home)!r} exists and is not a folder")
        if log_options and not log_url:
            raise ConfigError("LIVEMODEL_LOG_OPTIONS is set but LIVEMODEL_LOG_URL is not")
        return cls(
            home=home,
            db_url=db_url or f"sqlite:///{home / 'livemodel.db'}",
            artifact_url=artifact_url or str(home / "artifacts"),
            log_dir=Path(log_dir) if log_dir else home / "logs",
            actor=actor or _default_actor(),
            artifact_options=dict(artifact_options or {}),
            log_url=log_url or None,
            log_options=dict(log_options or {}),
        )


def parse_storage_options(
    text: str | None, name: str = "LIVEMODEL_ARTIFACTS_OPTIONS"
) -> dict[str, Any]:
    """Storage options from the variable ``name``: a JSON object (empty or unset: none)."""
    if text is None or not text.strip():
        return {}
    try:
        options = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ConfigError(
            f"{name} must be a JSON object of storage options, got {type(options).__name__}"
        )
    return options


def read_project_file(path: Path) -> dict[str, Any]:
    """Parse ``livemodel.toml``; a missing or malformed file is a one-line ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
