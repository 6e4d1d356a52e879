"""Window specs and cutting: aligned time windows, count windows, hostile input."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError
from livemodel.monitor.windows import (
    MAX_WINDOWS,
    count_windows,
    parse_duration,
    parse_window,
    time_windows,
)

T0 = datetime(2024, 5, 1, 13, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("15m", timedelta(minutes=15)),
        ("36h", timedelta(hours=36)),
        (" 2D ", timedelta(days=2)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_time_specs(text: str, size: timedelta) -> None:
    spec = parse_window(text)
    assert spec.size == size
    assert spec.rows is None


@pytest.mark.parametrize(("text", "rows"), [("10000rows", 10000), ("1row", 1), ("500ROWS", 500)])
def test_count_specs(text: str, rows: int) -> None:
    spec = parse_window(text)
    assert (spec.rows, spec.size, spec.label) == (rows, None, f"{rows}rows")


@pytest.mark.parametrize(
    "text", ["", "1", "d", "0d", "-1d", "1.5h", "1y", "0rows", "rows", "1d2h", "1e9d", "\x00"]
)
def test_bad_specs_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_window(text)


def test_non_text_spec_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        parse_window(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        parse_duration(None)  # type: ignore[arg-type]


def test_daily_windows_are_aligned_to_midnight_utc() -> None:
    windows = time_windows(T0, T0 + timedelta(days=2), timedelta(days=1))
    assert [w.start for w in windows] == [
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 2, tzinfo=UTC),
        datetime(2024, 5, 3, tzinfo=UTC),
    ]
    assert all(w.end - w.start == timedelta(days=1) for w in windows)


def test_weekly_windows_start_on_monday() -> None:
    windows = time_windows(T0, T0 + timedelta(days=1), timedelta(weeks=1))
    assert windows[0].start == datetime(2024, 4, 29, tzinfo=UTC)  # a Monday
    assert windows[0].start.weekday() == 0


@given(
    offset=st.integers(0, 10**7),
    length=st.integers(1, 500_000),  # at most 10,000 windows of a minute
    size=st.sampled_from([60, 900, 3600, 86400, 7 * 86400]),
)
def test_windows_cover_the_range_contiguously(offset: int, length: int, size: int) -> None:
    since = T0 + timedelta(seconds=offset)
    until = since + timedelta(seconds=length)
    windows = time_windows(since, until, timedelta(seconds=size))
    assert windows[0].start <= since < windows[0].end
    assert windows[-1].start < until <= windows[-1].end
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    # the same range cut again gives the same windows: re-runs replace, never shift
    assert windows == time_windows(since, until, timedelta(seconds=size))


def test_time_window_bad_ranges() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        time_windows(T0, T0, timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        time_windows(datetime(2024, 1, 1), T0, timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="more than"):
        time_windows(T0, T0 + timedelta(days=MAX_WINDOWS + 5), timedelta(days=1))


def test_count_windows_cut_every_n_rows() -> None:
    times = np.array(
        [np.datetime64("2024-05-01T00:00:00") + np.timedelta64(i, "s") for i in range(10)]
    )
    until = datetime(2024, 5, 2, tzinfo=UTC)
    windows = count_windows(times, 4, until)
    starts = [w.start for w in windows]
    assert starts == [T0.replace(hour=0, minute=0) + timedelta(seconds=s) for s in (0, 4, 8)]
    assert windows[-1].end == until
    assert [int(((times >= np.datetime64(w.start.replace(tzinfo=None)))
                 & (times < np.datetime64(w.end.replace(tzinfo=None)))).sum())
            for w in windows] == [4, 4, 2]  # fmt: skip


def test_count_windows_with_ties_and_no_rows() -> None:
    same = np.array([np.datetime64("2024-05-01T00:00:00")] * 5)
    windows = count_windows(same, 2, datetime(2024, 5, 2, tzinfo=UTC))
    assert len(windows) == 1  # all five share one microsecond: one window, never empty ones
    assert count_windows(np.array([], dtype="datetime64[us]"), 3, T0) == []
    with pytest.raises(InvalidInputError):
        count_windows(same, 0, T0)
