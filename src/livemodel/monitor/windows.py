"""Windows over the prediction log: by time (``1h``, ``1d``, ``1w``, ``15m``) or by count
(``10000rows``).

Time windows are aligned to the epoch (weeks to Mondays), so every run cuts the same
windows and re-running a window replaces its results instead of adding a shifted copy.
Count windows are cut at the time of every ``N``-th prediction of the range (ordered by
time then id): their boundaries are then times too, and a window read back holds about
``N`` rows (more only when many predictions share the boundary's microsecond). Finding
those boundaries reads the ``time`` column of the range once (8 bytes a row).

>>> spec = parse_window("6h")
>>> spec.label, spec.size
('6h', datetime.timedelta(seconds=21600))
>>> parse_window("10000rows").rows
10000
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from livemodel.errors import InvalidInputError

__all__ = [
    "Window",
    "WindowSpec",
    "count_windows",
    "parse_duration",
    "parse_window",
    "time_windows",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
_ROWS = re.compile(r"(\d{1,12})rows?")
MAX_WINDOWS = 10_000


@dataclass(frozen=True)
class WindowSpec:
    """How to cut windows: ``size`` (time) or ``rows`` (count); ``label`` names it."""

    label: str
    size: timedelta | None = None
    rows: int | None = None


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m`` (minutes), ``6h``, ``2d`` or ``1w`` as a positive timedelta."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise InvalidInputError(
            f"{text!r} is not a duration: use a positive number and s, m, h, d or w (e.g. 6h)"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_window(text: str) -> WindowSpec:
    """A window spec from ``Nh``/``Nd``/``Nw``/``Nm``/``Ns`` or ``Nrows``."""
    if not isinstance(text, str):
        raise InvalidInputError(f"a window is text like '1d' or '10000rows', got {text!r}")
    cleaned = text.strip().lower()
    rows = _ROWS.fullmatch(cleaned)
    if rows is not None:
        count = int(rows.group(1))
        if count < 1:
            raise InvalidInputError("a count window needs at least 1 row")
        return WindowSpec(label=f"{count}rows", rows=count)
    size = parse_duration(cleaned)
    return WindowSpec(label=cleaned, size=size)


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def time_windows(since: datetime, until: datetime, size: timedelta) -> list[Window]:
    """Aligned windows of ``size`` covering ``[since, until)``; the first starts at or
    before ``since``, the last may end after ``until`` (it is then still filling)."""
    since, until = _aware(since, "since"), _aware(until, "until")
    if size <= timedelta(0):
        raise InvalidInputError("a window size must be positive")
    if until <= since:
        raise InvalidInputError(f"the range is empty: until {until} is not after since {since}")
    origin = _MONDAY if size % timedelta(weeks=1) == timedelta(0) else _EPOCH
    start = origin + ((since - origin) // size) * size
    count = -(-(until - start) // size)
    if count > MAX_WINDOWS:
        raise InvalidInputError(
            f"{count} windows of {size} in this range: more than {MAX_WINDOWS}; use a larger window"
        )
    return [Window(start + i * size, start + (i + 1) * size) for i in range(count)]


def count_windows(times: npt.NDArray[np.datetime64], rows: int, until: datetime) -> list[Window]:
    """Windows holding ``rows`` predictions each, from sorted prediction ``times``.

    Each window starts at the time of its first row and ends where the next begins; the
    last, possibly partial, ends at ``until``.
    """
    if rows < 1:
        raise InvalidInputError("a count window needs at least 1 row")
    until = _aware(until, "until")
    if times.size == 0:
        return []
    if times.size // rows > MAX_WINDOWS:
        raise InvalidInputError(f"more than {MAX_WINDOWS} windows of {rows} rows in this range")
    micros = np.asarray(times, dtype="datetime64[us]").astype(np.int64)
    starts = micros[::rows].tolist()
    bounds = [_EPOCH + timedelta(microseconds=int(t)) for t in starts]
    last_end = max(until, bounds[-1] + timedelta(microseconds=1))
    ends = [*bounds[1:], last_end]
    return [Window(s, e) for s, e in zip(bounds, ends, strict=True) if e > s]
