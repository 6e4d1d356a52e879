"""Settings: the one place that reads the environment.

=====================  ==============================================  =======================
variable               meaning                                         default
=====================  ==============================================  =======================
``LIVEMODEL_HOME``     folder for the embedded backends                ``./.livemodel``
``LIVEMODEL_DB_URL``   SQLAlchemy URL of the metadata database         ``sqlite:///$HOME/livemodel.db``
``LIVEMODEL_ARTIFACTS`` fsspec URL of the artifact store               ``$HOME/artifacts``
``LIVEMODEL_LOGS``     folder of the prediction and label log          ``$HOME/logs``
``LIVEMODEL_ACTOR``    who is recorded in the audit log                ``user@host``
=====================  ==============================================  =======================

Everything below this module receives its backends as arguments; :func:`livemodel.connect`
builds them from a :class:`Settings`.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from livemodel.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """Where livemodel keeps its state."""

    home: Path
    db_url: str
    artifact_url: str
    log_dir: Path
    actor: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("LIVEMODEL_HOME") or ".livemodel").expanduser()
        return cls.at(
            home,
            db_url=env.get("LIVEMODEL_DB_URL") or None,
            artifact_url=env.get("LIVEMODEL_ARTIFACTS") or None,
            log_dir=env.get("LIVEMODEL_LOGS") or None,
            actor=env.get("LIVEMODEL_ACTOR") or None,
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
    ) -> Settings:
        """Settings rooted at ``home``, each backend overridable."""
        home = Path(home).expanduser().absolute()
        if home.exists() and not home.is_dir():
            raise ConfigError(f"LIVEMODEL_HOME {str(home)!r} exists and is not a folder")
        return cls(
            home=home,
            db_url=db_url or f"sqlite:///{home / 'livemodel.db'}",
            artifact_url=artifact_url or str(home / "artifacts"),
            log_dir=Path(log_dir) if log_dir else home / "logs",
            actor=actor or _default_actor(),
        )


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
