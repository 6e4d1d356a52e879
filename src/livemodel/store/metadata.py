"""Model versions, aliases and the audit log in the metadata database.

Versions are numbered 1, 2, ... per model, under the model row's lock, so concurrent
registrations get distinct numbers. Every alias move happens in the same transaction as its
audit event, so the log always explains the current aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from livemodel.errors import ConflictError, NotFoundError
from livemodel.store.database import Database
from livemodel.store.tables import aliases, audit_events, model_versions, models


@dataclass(frozen=True)
class VersionRecord:
    """One stored model version, as plain data (the registry gives it meaning)."""

    name: str
    version: int
    created_at: datetime
    actor: str
    description: str | None
    artifact: Mapping[str, Any]
    signature: Mapping[str, Any]
    reference: Mapping[str, Any]
    lineage: Mapping[str, Any]
    metrics: Mapping[str, Any]
    tags: Mapping[str, Any]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSummary:
    name: str
    created_at: datetime
    latest_version: int | None
    n_versions: int
    aliases: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    model: str
    action: str
    actor: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str | None
    details: Mapping[str, Any]


class MetadataStore:
    """Registry metadata on a :class:`~livemodel.store.database.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- versions ---------------------------------------------------------------------
    def add_version(
        self,
        name: str,
        *,
        actor: str,
        description: str | None,
        artifact: Mapping[str, Any],
        signature: Mapping[str, Any],
        reference: Mapping[str, Any],
        lineage: Mapping[str, Any],
        metrics: Mapping[str, Any],
        tags: Mapping[str, Any],
    ) -> int:
        """Store a new version of ``name`` (creating the model) and return its number."""
        now = _now()
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name, create=True)
            version = (self._latest(conn, model_id) or 0) + 1
            conn.execute(
                model_versions.insert().values(
                    model_id=model_id,
                    version=version,
                    created_at=now,
                    actor=actor,
                    description=description,
                    artifact=dict(artifact),
                    signature=dict(signature),
                    reference=dict(reference),
                    lineage=dict(lineage),
                    metrics=dict(metrics),
                    tags=dict(tags),
                )
            )
            _event(conn, name, "version.registered", actor, to_version=version, at=now)
        return version

    def get_version(self, name: str, version: int) -> VersionRecord:
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            row = conn.execute(
                sa.select(model_versions).where(
                    model_versions.c.model_id == model_id, model_versions.c.version == version
                )
            ).one_or_none()
            if row is None:
                latest = self._latest(conn, model_id)
                raise NotFoundError(f"model {name!r} has no version {version} (latest is {latest})")
            names = tuple(
                conn.execute(
                    sa.select(aliases.c.alias)
                    .where(aliases.c.model_id == model_id, aliases.c.version == version)
                    .order_by(aliases.c.alias)
                ).scalars()
            )
        return _version_record(name, row, names)

    def latest_version(self, name: str) -> int:
        with self.db.read() as conn:
            latest = self._latest(conn, self._model_id(conn, name))
        if latest is None:
            raise NotFoundError(f"model {name!r} has no versions")
        return latest

    def list_versions(self, name: str) -> list[VersionRecord]:
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            rows = conn.execute(
                sa.select(model_versions)
                .where(model_versions.c.model_id == model_id)
                .order_by(model_versions.c.version)
            ).all()
            by_version: dict[int, list[str]] = {}
            for alias, version in conn.execute(
                sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
            ):
                by_version.setdefault(version, []).append(alias)
        return [
            _version_record(name, r, tuple(sorted(by_version.get(r.version, [])))) for r in rows
        ]

    def list_models(self) -> list[ModelSummary]:
        stats = (
            sa.select(
                model_versions.c.model_id,
                sa.func.max(model_versions.c.version).label("latest"),
                sa.func.count().label("n"),
            )
            .group_by(model_versions.c.model_id)
            .subquery()
        )
        query = (
            sa.select(models.c.id, models.c.name, models.c.created_at, stats.c.latest, stats.c.n)
            .outerjoin(stats, stats.c.model_id == models.c.id)
            .order_by(models.c.name)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            alias_rows = conn.execute(
                sa.select(aliases.c.model_id, aliases.c.alias, aliases.c.version)
            )
            by_model: dict[int, dict[str, int]] = {}
            for model_id, alias, version in alias_rows:
                by_model.setdefault(model_id, {})[alias] = version
        return [
            ModelSummary(
                name=r.name,
                created_at=_utc(r.created_at),
                latest_version=r.latest,
                n_versions=r.n or 0,
                aliases=dict(sorted(by_model.get(r.id, {}).items())),
            )
            for r in rows
        ]

    # -- aliases ----------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            rows = conn.execute(
                sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
            )
            return dict(sorted((a, v) for a, v in rows))

    def resolve_alias(self, name: str, alias: str) -> int:
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            version = _alias_version(conn, model_id, alias)
        if version is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        return int(version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name)
            self._require_version(conn, name, model_id, version)
            previous = self._move(conn, model_id, alias, version)
            _event(
                conn,
                name,
                "alias.set",
                actor,
                alias=alias,
                from_version=previous,
                to_version=version,
                reason=reason,
                details=details,
            )
        return previous

    def rollback_alias(
        self, name: str, alias: str, *, actor: str, reason: str | None = None
    ) -> tuple[int, int]:
        """Move ``alias`` back to the version it pointed at before; returns (from, to).

        The history is replayed from the audit log: every ``alias.set`` pushes the version it
        replaced, every rollback pops one, so repeated rollbacks walk further back.
        """
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name)
            current = _alias_version(conn, model_id, alias)
            if current is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r} to roll back")
            history: list[int] = []
            for action, before in conn.execute(
                sa.select(audit_events.c.action, audit_events.c.from_version)
                .where(audit_events.c.model == name, audit_events.c.alias == alias)
                .order_by(audit_events.c.id)
            ):
                if action == "alias.set" and before is not None:
                    history.append(before)
                elif action == "alias.rollback" and history:
                    history.pop()
            if not history:
                raise ConflictError(
                    f"alias {alias!r} of model {name!r} has no earlier version to roll back to"
                )
            target = history[-1]
            self._move(conn, model_id, alias, target)
            _event(
                conn,
                name,
                "alias.rollback",
                actor,
                alias=alias,
                from_version=current,
                to_version=target,
                reason=reason,
            )
        return int(current), target

    # -- audit ------------------------------------------------------------------------
    def audit(self, name: str | None = None, *, limit: int | None = None) -> list[AuditEvent]:
        query = sa.select(audit_events).order_by(audit_events.c.id)
        if name is not None:
            query = query.where(audit_events.c.model == name)
        with self.db.read() as conn:
            if name is not None:
                self._model_id(conn, name)
            rows = conn.execute(query).all()
        events = [
            AuditEvent(
                id=r.id,
                at=_utc(r.at),
                model=r.model,
                action=r.action,
                actor=r.actor,
                alias=r.alias,
                from_version=r.from_version,
                to_version=r.to_version,
                reason=r.reason,
                details=r.details or {},
            )
            for r in rows
        ]
        return events[-limit:] if limit else events

    def record_event(
        self,
        name: str,
        action: str,
        *,
        actor: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a free-form event (rollout steps, gate results, ...) to the audit log."""
        with self.db.write() as conn:
            self._model_id(conn, name)
            _event(conn, name, action, actor, reason=reason, details=details)

    # -- helpers ----------------------------------------------------------------------
    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if model_id is None:
            known = conn.execute(sa.select(models.c.name).order_by(models.c.name).limit(5))
            hint = ", ".join(repr(n) for n in known.scalars()) or "none registered yet"
            raise NotFoundError(f"unknown model {name!r} (known: {hint})")
        return int(model_id)

    def _lock_model(self, conn: Connection, name: str, *, create: bool = False) -> int:
        """The model's id, with its row locked until the transaction ends."""
        if create:
            insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
            conn.execute(
                insert(models)
                .values(name=name, created_at=_now())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        # SQLite: BEGIN IMMEDIATE already holds the database lock; FOR UPDATE is a no-op there.
        model_id = conn.execute(
            sa.select(models.c.id).where(models.c.name == name).with_for_update()
        ).scalar()
        if model_id is None:
            return self._model_id(conn, name)
        return int(model_id)

    def _require_version(self, conn: Connection, name: str, model_id: int, version: int) -> None:
        exists = conn.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.model_id == model_id, model_versions.c.version == version
            )
        ).scalar()
        if exists is None:
            latest = self._latest(conn, model_id)
            raise NotFoundError(f"model {name!r} has no version {version} (latest is {latest})")

    def _latest(self, conn: Connection, model_id: int) -> int | None:
        return conn.execute(
            sa.select(sa.func.max(model_versions.c.version)).where(
                model_versions.c.model_id == model_id
            )
        ).scalar()

    def _move(self, conn: Connection, model_id: int, alias: str, version: int) -> int | None:
        previous = _alias_version(conn, model_id, alias)
        if previous is None:
            conn.execute(
                aliases.insert().values(
                    model_id=model_id, alias=alias, version=version, updated_at=_now()
                )
            )
        else:
            conn.execute(
                aliases.update()
                .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
                .values(version=version, updated_at=_now())
            )
        return None if previous is None else int(previous)


def _alias_version(conn: Connection, model_id: int, alias: str) -> int | None:
    version = conn.execute(
        sa.select(aliases.c.version).where(aliases.c.model_id == model_id, aliases.c.alias == alias)
    ).scalar_one_or_none()
    return None if version is None else int(version)


def _event(
    conn: Connection,
    model: str,
    action: str,
    actor: str,
    *,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    conn.execute(
        audit_events.insert().values(
            at=at or _now(),
            model=model,
            action=action,
            actor=actor,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            reason=reason,
            details=dict(details or {}),
        )
    )


def _version_record(name: str, row: Any, alias_names: Sequence[str]) -> VersionRecord:
    return VersionRecord(
        name=name,
        version=row.version,
        created_at=_utc(row.created_at),
        actor=row.actor,
        description=row.description,
        artifact=row.artifact,
        signature=row.signature,
        reference=row.reference,
        lineage=row.lineage,
        metrics=row.metrics,
        tags=row.tags,
        aliases=tuple(alias_names),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything livemodel stores is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
