"""Connecting to the metadata database and keeping its schema current.

SQLite (the embedded default) and PostgreSQL behave alike for the callers:

- :meth:`Database.write` opens a transaction that serialises writers: ``BEGIN IMMEDIATE`` on
  SQLite (the whole file is the lock; WAL lets readers go on), and on PostgreSQL the callers
  lock the rows they change with ``SELECT ... FOR UPDATE``.
- :meth:`Database.read` opens a plain transaction.
- :func:`open_database` runs the Alembic migrations up to head under a lock, so many
  processes starting at once on a fresh database migrate it exactly once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from livemodel.errors import ConfigError, StoreError

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any 64-bit number, fixed: all livemodel processes agree on it.
_PG_MIGRATION_LOCK = 0x6C6976656D6F64


class Database:
    """An engine plus the two kinds of transaction livemodel uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with _translated(self.engine.url), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with (
            _translated(self.engine.url),
            self.engine.connect().execution_options(livemodel_immediate=True) as conn,
            conn.begin(),
        ):
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Connect to ``url`` and bring its schema to the newest migration."""
    engine = _create_engine(url)
    db = Database(engine)
    if migrate:
        _migrate(db)
    return db


def _create_engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        if parsed.get_backend_name() == "postgresql":
            return sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10}
            )
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"invalid database URL {_safe(url)}: {exc}") from exc
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r} in {_safe(url)}: "
        "use sqlite:///PATH or postgresql+psycopg://..."
    )


def _sqlite_engine(url: sa.URL) -> Engine:
    if url.database and url.database != ":memory:":
        folder = Path(url.database).expanduser().absolute().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the database folder {str(folder)!r}: {exc}") from exc
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, say when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can deadlock with another writer;
        # IMMEDIATE takes the write lock up front and waits (busy_timeout) instead.
        immediate = conn.get_execution_options().get("livemodel_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _migrate(db: Database) -> None:
    cfg = _alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with db.read() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with db.write() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _safe(url: str | sa.URL) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return repr(sa.make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return "(unparsable URL)"


@contextlib.contextmanager
def _translated(url: sa.URL) -> Iterator[None]:
    """Turn driver errors into livemodel errors with one clear line."""
    try:
        yield
    except OperationalError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        raise StoreError(f"database {_safe(url)} is unreachable or failed: {first}") from exc
    except SQLAlchemyError as exc:
        if isinstance(exc, sa.exc.IntegrityError):
            raise
        raise StoreError(f"database error on {_safe(url)}: {type(exc).__name__}") from exc
