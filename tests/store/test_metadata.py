"""Contract tests of the metadata store: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from typing import Any

import pytest

from livemodel.errors import ConflictError, NotFoundError
from livemodel.store.database import open_database
from livemodel.store.metadata import MetadataStore

FIELDS: dict[str, Any] = dict(
    actor="tester",
    description=None,
    artifact={"key": "k"},
    signature={"columns": []},
    reference={},
    lineage={"seed": 1},
    metrics={},
    tags={"team": "risk"},
)


@pytest.fixture
def store(db_url: str) -> Iterator[MetadataStore]:
    db = open_database(db_url)
    yield MetadataStore(db)
    db.close()


def test_versions_are_numbered_per_model(store: MetadataStore) -> None:
    assert [store.add_version("a", **FIELDS) for _ in range(3)] == [1, 2, 3]
    assert store.add_version("b", **FIELDS) == 1
    record = store.get_version("a", 2)
    assert (record.name, record.version, record.tags, record.lineage) == (
        "a",
        2,
        {"team": "risk"},
        {"seed": 1},
    )
    assert record.created_at.tzinfo is not None
    assert [v.version for v in store.list_versions("a")] == [1, 2, 3]
    assert store.latest_version("a") == 3
    summaries = {s.name: s for s in store.list_models()}
    assert (summaries["a"].latest_version, summaries["a"].n_versions) == (3, 3)


def test_unknown_model_version_alias_are_not_found(store: MetadataStore) -> None:
    store.add_version("a", **FIELDS)
    with pytest.raises(NotFoundError, match="unknown model 'zzz'.*'a'"):
        store.get_version("zzz", 1)
    with pytest.raises(NotFoundError, match="no version 7 .latest is 1"):
        store.get_version("a", 7)
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        store.resolve_alias("a", "production")
    with pytest.raises(NotFoundError, match="no version 9"):
        store.set_alias("a", "production", 9, actor="x")
    with pytest.raises(NotFoundError):
        store.set_alias("nope", "production", 1, actor="x")
    # A failed move writes no audit event.
    assert [e.action for e in store.audit("a")] == ["version.registered"]


def test_alias_moves_and_rollbacks_are_audited(store: MetadataStore) -> None:
    for _ in range(3):
        store.add_version("m", **FIELDS)
    assert store.set_alias("m", "production", 1, actor="ann", reason="first") is None
    assert store.set_alias("m", "production", 2, actor="bob") == 1
    assert store.set_alias("m", "production", 3, actor="bob") == 2
    assert store.set_alias("m", "candidate", 3, actor="bob") is None
    assert store.aliases("m") == {"candidate": 3, "production": 3}
    assert store.get_version("m", 3).aliases == ("candidate", "production")

    assert store.rollback_alias("m", "production", actor="ops", reason="bad") == (3, 2)
    assert store.rollback_alias("m", "production", actor="ops") == (2, 1)
    with pytest.raises(ConflictError, match="no earlier version"):
        store.rollback_alias("m", "production", actor="ops")
    assert store.resolve_alias("m", "production") == 1

    moves = [(e.action, e.alias, e.from_version, e.to_version, e.actor) for e in store.audit("m")][
        3:
    ]
    assert moves == [
        ("alias.set", "production", None, 1, "ann"),
        ("alias.set", "production", 1, 2, "bob"),
        ("alias.set", "production", 2, 3, "bob"),
        ("alias.set", "candidate", None, 3, "bob"),
        ("alias.rollback", "production", 3, 2, "ops"),
        ("alias.rollback", "production", 2, 1, "ops"),
    ]
    assert store.audit("m")[3].reason == "first"
    assert len(store.audit("m", limit=2)) == 2


def test_rollback_after_a_new_move_returns_to_the_replaced_version(store: MetadataStore) -> None:
    for _ in range(3):
        store.add_version("m", **FIELDS)
    store.set_alias("m", "production", 1, actor="a")
    store.set_alias("m", "production", 2, actor="a")
    store.rollback_alias("m", "production", actor="a")  # 2 -> 1
    store.set_alias("m", "production", 3, actor="a")  # 1 -> 3
    assert store.rollback_alias("m", "production", actor="a") == (3, 1)


def test_free_form_events_are_kept_with_details(store: MetadataStore) -> None:
    store.add_version("m", **FIELDS)
    store.record_event("m", "gate.failed", actor="ctl", reason="worse", details={"auc": 0.61})
    event = store.audit("m")[-1]
    assert (event.action, event.reason, dict(event.details)) == (
        "gate.failed",
        "worse",
        {"auc": 0.61},
    )
    with pytest.raises(NotFoundError):
        store.record_event("ghost", "x", actor="a")


def test_migrations_run_once_and_reopen_cleanly(db_url: str) -> None:
    first = open_database(db_url)
    MetadataStore(first).add_version("m", **FIELDS)
    first.close()
    again = open_database(db_url)
    assert MetadataStore(again).latest_version("m") == 1
    again.close()


# -- many processes at once ----------------------------------------------------------------
def _register_many(url: str, n: int, queue: Any) -> None:
    db = open_database(url)
    queue.put([MetadataStore(db).add_version("shared", **FIELDS) for _ in range(n)])
    db.close()


def _move_many(url: str, versions: list[int], queue: Any) -> None:
    db = open_database(url)
    for v in versions:
        MetadataStore(db).set_alias("shared", "production", v, actor=f"p{v}")
    db.close()
    queue.put(len(versions))


def _run(target: Any, args_list: list[tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue)) for args in args_list]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_concurrent_registrations_get_distinct_numbers(store: MetadataStore, db_url: str) -> None:
    results = _run(_register_many, [(db_url, 10)] * 4)
    numbers = sorted(n for batch in results for n in batch)
    assert numbers == list(range(1, 41))
    assert [v.version for v in store.list_versions("shared")] == list(range(1, 41))
    assert sum(e.action == "version.registered" for e in store.audit("shared")) == 40


def test_concurrent_first_use_migrates_once(db_url: str) -> None:
    results = _run(_register_many, [(db_url, 3)] * 4)
    assert sorted(n for batch in results for n in batch) == list(range(1, 13))


def test_concurrent_alias_moves_leave_a_consistent_log(store: MetadataStore, db_url: str) -> None:
    for _ in range(8):
        store.add_version("shared", **FIELDS)
    _run(_move_many, [(db_url, [1, 2, 3, 4, 5, 6, 7, 8] * 3)] * 2 + [(db_url, [8, 7, 6, 5] * 5)])
    moves = [e for e in store.audit("shared") if e.action == "alias.set"]
    assert len(moves) == 24 * 2 + 20
    previous = None
    for event in moves:
        assert event.from_version == previous  # each move saw the one before it
        previous = event.to_version
    assert store.resolve_alias("shared", "production") == previous
