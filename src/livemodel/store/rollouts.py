"""Rollout state and the controller lease, in the metadata database.

The state of a rollout is one JSON document with a revision number: a save names the
revision it read and fails with :class:`~livemodel.errors.ConflictError` if another process
saved in between (optimistic concurrency). At most one rollout per model is running (a
partial unique index would do on PostgreSQL; here the check runs under the model-wide
write lock of :meth:`create`). A lease row lets exactly one controller act at a time: it is
taken when free or expired, renewed by its owner, and released on shutdown.

Times (``created_at``, ``updated_at``, a lease's expiry) come from ``clock``, the real UTC
clock unless one is given: a test moves it instead of sleeping past a lease.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from livemodel.errors import ConflictError, NotFoundError
from livemodel.store.database import Database
from livemodel.store.tables import leases, rollouts


@dataclass(frozen=True)
class StoredRollout:
    id: str
    model: str
    status: str
    revision: int
    state: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


class RolloutStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self.clock = clock or _now

    def create(self, rollout_id: str, model: str, state: Mapping[str, Any]) -> StoredRollout:
        now = self.clock()
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":  # serialise creators per model
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": model})
            running = conn.execute(
                sa.select(rollouts.c.id).where(
                    rollouts.c.model == model, rollouts.c.status == "running"
                )
            ).scalar()
            if running is not None:
                raise ConflictError(f"model {model!r} already has a running rollout ({running})")
            conn.execute(
                rollouts.insert().values(
                    id=rollout_id,
                    model=model,
                    status=str(state["status"]),
                    revision=1,
                    state=dict(state),
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(rollout_id)

    def save(self, rollout_id: str, state: Mapping[str, Any], *, revision: int) -> StoredRollout:
        with self.db.write() as conn:
            done = conn.execute(
                rollouts.update()
                .where(rollouts.c.id == rollout_id, rollouts.c.revision == revision)
                .values(
                    state=dict(state),
                    status=str(state["status"]),
                    revision=revision + 1,
                    updated_at=self.clock(),
                )
            )
        if done.rowcount != 1:
            raise ConflictError(f"rollout {rollout_id} was changed by another process")
        return self.get(rollout_id)

    def get(self, rollout_id: str) -> StoredRollout:
        with self.db.read() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no rollout {rollout_id!r}")
        return _stored(row)

    def running(self, model: str | None = None) -> list[StoredRollout]:
        query = sa.select(rollouts).where(rollouts.c.status == "running")
        if model is not None:
            query = query.where(rollouts.c.model == model)
        with self.db.read() as conn:
            return [_stored(r) for r in conn.execute(query.order_by(rollouts.c.created_at))]

    def latest(self, model: str) -> StoredRollout:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(rollouts)
                .where(rollouts.c.model == model)
                .order_by(rollouts.c.created_at.desc())
                .limit(1)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"model {model!r} has no rollout")
        return _stored(row)

    # -- the controller lease ----------------------------------------------------------
    def acquire(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; False if another owner holds it."""
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        with self.db.write() as conn:
            conn.execute(
                insert(leases)
                .values(name=name, owner=owner, expires_at=until)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            taken = conn.execute(
                leases.update()
                .where(
                    leases.c.name == name,
                    sa.or_(leases.c.owner == owner, leases.c.expires_at < now),
                )
                .values(owner=owner, expires_at=until)
            )
        return taken.rowcount == 1

    def release(self, name: str, owner: str) -> None:
        with self.db.write() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == owner))


def _stored(row: Any) -> StoredRollout:
    return StoredRollout(
        id=row.id,
        model=row.model,
        status=row.status,
        revision=row.revision,
        state=row.state,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
