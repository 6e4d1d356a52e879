"""Builds concrete backends from :class:`~livemodel.config.Settings`: the one wiring module."""

from __future__ import annotations

from livemodel.config import Settings
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore


def connect(settings: Settings | None = None) -> Registry:
    """A registry on the configured database and artifact store (environment by default)."""
    settings = settings or Settings.from_env()
    db = open_database(settings.db_url)
    return Registry(MetadataStore(db), ArtifactStore(settings.artifact_url), actor=settings.actor)
