"""Alembic environment: livemodel always passes an open connection (see store/database.py)."""

from __future__ import annotations

from alembic import context

from livemodel.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("livemodel migrations run through livemodel.store.database.open_database")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
