"""Shared fixtures: real databases (SQLite file and the machine's PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import uuid

# Two cores are shared by the test process and the servers it starts: OpenMP pools in
# scikit-learn and LightGBM would oversubscribe them and slow everything ten-fold.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Local Ray clusters of the tests (ray engine): no token file written to ~/.ray.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_BASE = os.environ.get("LIVEMODEL_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("LIVEMODEL_REQUIRE_POSTGRES") == "1"


def _pg_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {PG_BASE} is not reachable: {type(exc).__name__}"
    return None


_PG_DOWN = _pg_reason()


@contextlib.contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A URL on a new, empty PostgreSQL schema, dropped on exit (skips when unreachable)."""
    if _PG_DOWN:
        if REQUIRE_PG:
            pytest.fail(f"{_PG_DOWN} and LIVEMODEL_REQUIRE_POSTGRES=1")
        pytest.skip(_PG_DOWN)
    schema = f"lm_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test, dropped afterwards."""
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each contract test runs once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'livemodel.db'}"
    return str(request.getfixturevalue("pg_url"))
