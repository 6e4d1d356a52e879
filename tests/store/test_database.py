from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from livemodel.errors import ConfigError, StoreError
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore
from livemodel.store.tables import metadata


def test_migrations_create_exactly_the_declared_tables(db_url: str) -> None:
    db = open_database(db_url)
    with db.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.close()
    assert diff == []


def test_sqlite_uses_wal_so_readers_do_not_block(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.close()


def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    assert (tmp_path / "deep" / "er" / "x.db").exists()
    db.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL"),
        ("mysql+nosuchdriver://x/y", "invalid database URL|unsupported database"),
        ("oracle://u:secret@h/db", "unsupported database"),
        ("", "invalid database URL"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        open_database(url)
    assert "secret" not in str(info.value)


def test_unreachable_postgres_is_a_store_error_without_password() -> None:
    url = "postgresql+psycopg://user:hunter2@127.0.0.1:1/nodb?connect_timeout=2"
    with pytest.raises(StoreError, match="unreachable") as info:
        open_database(url)
    assert "hunter2" not in str(info.value)


def test_unwritable_sqlite_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the database folder"):
        open_database(f"sqlite:///{blocker / 'sub' / 'x.db'}")


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        MetadataStore(open_database(f"sqlite:///{path}")).list_models()
