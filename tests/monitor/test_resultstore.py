"""Stored results on SQLite and PostgreSQL: time series, filters, idempotent re-runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from livemodel.errors import InvalidInputError
from livemodel.monitor.results import ALL, MetricResult, WindowResult
from livemodel.monitor.resultstore import ResultStore
from livemodel.store.database import open_database

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[ResultStore]:
    db = open_database(db_url)
    yield ResultStore(db)
    db.close()


def window(day: int, value: float, *, segment: str = ALL, model: str = "m") -> WindowResult:
    results = (
        MetricResult("data_drift", "psi", "x", value, upper=0.1, threshold=0.1,
                     alert=value > 0.1, n=100, details={"p": None, "arr": [1, 2]}),
        MetricResult("realized_performance", "accuracy", None, 0.9, 0.85, 0.95, 0.91, n=50),
        MetricResult("estimated_performance", "accuracy", None, None, n=0, reason="empty"),
    )  # fmt: skip
    start = T0 + timedelta(days=day)
    return WindowResult(model, 1, "1d", start, start + timedelta(days=1), segment, 100, 50, results)


def test_save_and_query_a_time_series(store: ResultStore) -> None:
    written = store.save([window(0, 0.05), window(1, 0.2), window(1, 0.3, segment="c=a")])
    assert written == 9
    rows = store.query("m")
    assert len(rows) == 9
    assert [r.start for r in rows] == sorted(r.start for r in rows)
    psi = store.query("m", calculator="data_drift", segment=ALL)
    assert [(r.start, r.value, r.alert) for r in psi] == [
        (T0, 0.05, False),
        (T0 + timedelta(days=1), 0.2, True),
    ]
    first = psi[0]
    assert (first.column, first.upper, first.threshold, first.n) == ("x", 0.1, 0.1, 100)
    assert first.details == {"p": None, "arr": [1, 2]}
    assert first.end == T0 + timedelta(days=1)
    assert first.start.tzinfo is not None
    undefined = store.query("m", calculator="estimated_performance")
    assert all(r.value is None and r.reason == "empty" and r.column is None for r in undefined)


def test_filters(store: ResultStore) -> None:
    store.save([window(d, 0.05 * d) for d in range(5)] + [window(0, 0.5, model="other")])
    assert len(store.query("m", since=T0 + timedelta(days=3))) == 6
    assert len(store.query("m", until=T0 + timedelta(days=1))) == 3
    assert len(store.query("m", metric="accuracy", calculator="realized_performance")) == 5
    assert len(store.query("m", column="x")) == 5
    assert [r.start for r in store.query("m", alerts_only=True)] == [
        T0 + timedelta(days=3),
        T0 + timedelta(days=4),
    ]
    assert store.query("m", version=2) == []
    assert len(store.query("other")) == 3
    assert store.query("nobody") == []


def test_rerunning_a_window_replaces_it(store: ResultStore) -> None:
    store.save([window(0, 0.05), window(0, 0.07, segment="c=a"), window(1, 0.2)])
    store.save([window(0, 0.5)])  # the same window again, now without the segment
    rows = store.query("m", since=T0, until=T0 + timedelta(days=1))
    assert len(rows) == 3
    assert {r.segment for r in rows} == {ALL}
    assert next(r.value for r in rows if r.metric == "psi") == 0.5
    assert len(store.query("m", since=T0 + timedelta(days=1))) == 3  # other windows kept
    store.save([window(0, 0.5)])
    assert len(store.query("m")) == 6  # idempotent: no duplicates


def test_delete_and_bad_input(store: ResultStore) -> None:
    store.save([window(0, 0.1)])
    assert store.delete("m") == 3
    assert store.query("m") == []
    with pytest.raises(InvalidInputError):
        store.save([{"not": "a window"}])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        store.query("m", since=datetime(2024, 1, 1))  # naive


def test_nan_never_reaches_the_database(store: ResultStore) -> None:
    nan = float("nan")
    result = MetricResult("data_drift", "psi", "x", nan, lower=float("inf"), n=3,
                          details={"bad": nan, "nested": [float("-inf")]})  # fmt: skip
    assert result.value is None and result.lower is None
    w = WindowResult("m", 1, "1d", T0, T0 + timedelta(days=1), ALL, 3, 0, (result,))
    store.save([w])
    (row,) = store.query("m")
    assert row.value is None and row.details == {"bad": None, "nested": [None]}
