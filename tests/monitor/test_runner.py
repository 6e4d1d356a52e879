"""The monitor over a real prediction log: registered model, server-shaped records,
late labels, windows by time and count, segments, stored and re-run results."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.errors import InvalidInputError, NotFoundError
from livemodel.monitor.results import ALL, DATA_DRIFT, REALIZED
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.monitor.suite import MonitorSuite
from livemodel.monitor.summary import WindowSummary, log_chunk, merge_all
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.logreader import LogReader
from livemodel.store.metadata import MetadataStore

from .conftest import TARGET, register, write_log

DAY0 = datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def logged(
    model: Any, flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Day 0: 1,000 flights drawn from the training period (no drift); day 1: 1,500 July
    flights. Shared by the tests of this module, whose runs are idempotent."""
    root = tmp_path_factory.mktemp("monitor")
    db = open_database(f"sqlite:///{root / 'lm.db'}")
    registry = Registry(MetadataStore(db), ArtifactStore(str(root / "artifacts")), actor="t")
    register(registry, model, flights)
    jan = flights.iloc[:5000].sample(n=1000, random_state=1)
    jul = flights.iloc[8000:9500]
    frame = pd.concat([jan, jul], ignore_index=True)
    times = [DAY0 + timedelta(seconds=80 * i) for i in range(1000)]
    times += [DAY0 + timedelta(days=1, seconds=50 * i) for i in range(1500)]
    with threadpool_limits(1):
        write_log(root / "logs", registry, "flights", frame, times, labelled=0.6)
    store = ResultStore(db)
    # Window results only: concept drift has its own tests (tests/monitor/test_concept.py).
    monitor = Monitor(registry, LogReader(root / "logs"), store, concept=None)
    yield {"monitor": monitor, "store": store, "frame": frame, "root": root}
    db.close()


def test_daily_windows_through_the_log(logged: dict[str, Any]) -> None:
    monitor: Monitor = logged["monitor"]
    run = monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=2), window="1d")
    windows = {w.start: w for w in run.windows}
    assert set(windows) == {DAY0, DAY0 + timedelta(days=1)}
    jan, jul = windows[DAY0], windows[DAY0 + timedelta(days=1)]
    assert (jan.n_rows, jul.n_rows) == (1000, 1500)
    assert 0.5 < jan.n_labelled / 1000 < 0.7
    assert "temp" not in jan.drifted_columns
    assert "temp" in jul.drifted_columns  # summer weather against a January reference
    # realized accuracy is scikit-learn's on the labelled rows of the window
    frame = logged["frame"].iloc[1000:]
    acc = next(r for r in jul.results if r.calculator == REALIZED and r.metric == "accuracy")
    assert acc.n == jul.n_labelled
    assert 0.0 < acc.value < 1.0  # type: ignore[operator]
    estimated = [r for r in jul.results if r.calculator == "estimated_performance"]
    assert {r.metric for r in estimated} >= {"accuracy", "roc_auc"}
    assert all(r.value is not None and r.lower is not None for r in estimated)
    assert frame[TARGET].notna().all()
    stored = logged["store"].query("flights", window="1d", until=DAY0 + timedelta(days=2))
    assert len(stored) >= run.rows_saved > 0
    assert {r.calculator for r in stored} >= {
        "data_drift", "data_quality", "output_drift", "realized_performance",
        "estimated_performance", "multivariate_drift", "label_drift",
    }  # fmt: skip


def test_realized_accuracy_equals_sklearn_on_the_labelled_rows(logged: dict[str, Any]) -> None:
    monitor: Monitor = logged["monitor"]
    run = monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=1), window="1d")
    table = LogReader(logged["root"] / "logs").window(
        "flights", start=DAY0, end=DAY0 + timedelta(days=1), with_labels=True
    )
    labelled = table.to_pandas().dropna(subset=["label"])
    expected = skm.accuracy_score(labelled["label"].astype(int), labelled["o.label"].astype(int))
    auc = skm.roc_auc_score(labelled["label"].astype(int), labelled["o.proba.1"])
    (w,) = run.windows
    got = {r.metric: r.value for r in w.results if r.calculator == REALIZED}
    assert got["accuracy"] == pytest.approx(expected)
    assert got["roc_auc"] == pytest.approx(auc)


def test_segments_and_rerun_idempotence(logged: dict[str, Any]) -> None:
    monitor: Monitor = logged["monitor"]
    store: ResultStore = logged["store"]
    kwargs = {"since": DAY0, "until": DAY0 + timedelta(days=2), "window": "1d"}
    first = monitor.run("flights", segments=["origin"], **kwargs)
    segments = {w.segment for w in first.windows}
    assert segments == {ALL, "origin=EWR", "origin=JFK", "origin=LGA"}
    per_day = {}
    for w in first.windows:
        per_day.setdefault(w.start, 0)
        if w.segment != ALL:
            per_day[w.start] += w.n_rows
    assert per_day == {DAY0: 1000, DAY0 + timedelta(days=1): 1500}
    assert {r.segment for r in store.query("flights", window="1d")} == segments
    plain = monitor.run("flights", **kwargs)  # without segments: the segment rows go
    assert {r.segment for r in store.query("flights", window="1d")} == {ALL}
    count = len(store.query("flights", window="1d"))
    again = monitor.run("flights", **kwargs)
    assert len(store.query("flights", window="1d")) == count == again.rows_saved
    assert plain.rows_saved == again.rows_saved


def test_count_windows(logged: dict[str, Any]) -> None:
    monitor: Monitor = logged["monitor"]
    run = monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=3), window="1000rows")
    sizes = [w.n_rows for w in run.windows]
    assert sizes == [1000, 1000, 500]
    assert run.windows[0].start == DAY0
    assert all(a.end == b.start for a, b in zip(run.windows, run.windows[1:], strict=False))


def test_empty_and_bad_ranges(logged: dict[str, Any]) -> None:
    monitor: Monitor = logged["monitor"]
    run = monitor.run("flights", since=DAY0 - timedelta(days=5), until=DAY0 - timedelta(days=4))
    (w,) = run.windows
    assert w.n_rows == 0
    assert all(r.value is None and r.reason for r in w.results if r.calculator != DATA_DRIFT)
    with pytest.raises(InvalidInputError):
        monitor.run("flights", since=DAY0, until=DAY0, window="1d")
    with pytest.raises(InvalidInputError):
        monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=1), window="bogus")
    with pytest.raises(NotFoundError):
        monitor.run("nobody", since=DAY0, until=DAY0 + timedelta(days=1))
    with pytest.raises(NotFoundError):
        monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=1), version=9)
    assert monitor.resolve_version("flights") == 1


def test_streamed_chunks_equal_one_read(logged: dict[str, Any]) -> None:
    """The per-chunk function on small streamed batches gives the one-shot summary."""
    monitor: Monitor = logged["monitor"]
    plan = monitor.fitted_suite("flights", 1).plan_
    reader = LogReader(logged["root"] / "logs")
    columns = plan.log_columns()
    whole = log_chunk(plan, reader.window("flights", columns=columns, with_labels=True))[ALL]
    parts: dict[str, WindowSummary] = {ALL: WindowSummary.empty(plan)}
    for batch in reader.iter_batches("flights", columns=columns, with_labels=True, batch_size=97):
        parts = merge_all(parts, log_chunk(plan, batch))
    merged = parts[ALL]
    assert (
        (merged.n_rows, merged.n_labelled)
        == (whole.n_rows, whole.n_labelled)
        == (2500, whole.n_labelled)
    )
    for name, col in whole.features.columns.items():
        other = merged.features.columns[name]
        assert (col.count, col.missing) == (other.count, other.missing)
        if hasattr(col, "histogram"):
            assert np.array_equal(col.histogram, other.histogram)  # type: ignore[union-attr]
    pd.testing.assert_frame_equal(whole.rows.frame, merged.rows.frame)


def test_the_whole_path_on_each_database(
    registry: Registry, model: Any, flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Register, log, label, monitor and store on SQLite and on PostgreSQL alike."""
    root = tmp_path_factory.mktemp("logs")
    register(registry, model, flights)
    frame = flights.iloc[8000:8400].reset_index(drop=True)
    times = [DAY0 + timedelta(minutes=3 * i) for i in range(len(frame))]
    write_log(root, registry, "flights", frame, times, labelled=0.5)
    store = ResultStore(registry.metadata.db)
    monitor = Monitor(
        registry, LogReader(root), store, suite=lambda: MonitorSuite(multivariate=False)
    )
    for _ in range(2):  # the second run replaces the first
        run = monitor.run("flights", since=DAY0, until=DAY0 + timedelta(days=1))
    (w,) = run.windows
    assert w.n_rows == 400 and "temp" in w.drifted_columns
    stored = store.query("flights", calculator="realized_performance", metric="accuracy")
    assert [(r.start, r.segment, r.n) for r in stored] == [(DAY0, ALL, w.n_labelled)]
    assert len(store.query("flights")) == run.rows_saved
