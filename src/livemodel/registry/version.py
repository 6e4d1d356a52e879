"""A registered model version, as the rest of livemodel sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from livemodel.schema.signature import Signature
from livemodel.store.artifacts import ArtifactRef
from livemodel.store.metadata import VersionRecord


@dataclass(frozen=True)
class ModelVersion:
    """Immutable facts about one version, plus the aliases pointing at it when it was read."""

    name: str
    version: int
    created_at: datetime
    actor: str
    description: str | None
    artifact: ArtifactRef
    signature: Signature
    reference: Mapping[str, Any]
    lineage: Mapping[str, Any]
    metrics: Mapping[str, Any]
    tags: Mapping[str, Any]
    aliases: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def from_record(cls, record: VersionRecord) -> ModelVersion:
        return cls(
            name=record.name,
            version=record.version,
            created_at=record.created_at,
            actor=record.actor,
            description=record.description,
            artifact=ArtifactRef.from_dict(dict(record.artifact)),
            signature=Signature.from_dict(dict(record.signature)),
            reference=record.reference,
            lineage=record.lineage,
            metrics=record.metrics,
            tags=record.tags,
            aliases=record.aliases,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe card of this version (what ``livemodel models show --json`` prints)."""
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "description": self.description,
            "aliases": list(self.aliases),
            "artifact": self.artifact.to_dict(),
            "signature": self.signature.to_dict(),
            "reference": dict(self.reference),
            "lineage": dict(self.lineage),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized estimator and the version it came from."""

    version: ModelVersion
    model: Any
