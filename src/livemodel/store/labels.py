"""The label log: ground truth arriving late, in any order, in batches, maybe twice.

Labels are appended with the same durability and group commit as predictions (see
:mod:`livemodel.store.logwriter`) under ``<root>/<model>/labels/``. Nothing is ever
overwritten: on read the last written label of a prediction wins, and every earlier one
stays readable for audit (``history``), with who sent it (``label_by``: the server records
the token, ``token:<id>:<name>``, or ``anonymous`` where feedback is open). Whether a
prediction id exists is not checked on write (a label may even arrive before its
prediction is flushed); the server reports unknown ids with :meth:`LabelLog.known_ids`.

>>> import tempfile, datetime as dt
>>> root = tempfile.mkdtemp()
>>> with LabelLog(root) as labels:
...     now = dt.datetime.now(dt.UTC)
...     labels.append("churn", [("p1", 0, now, "crm"), ("p1", 1, now, "crm-fix")])
...     labels.latest("churn")["label"].to_pylist()
[1]
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Self

import numpy as np
import pyarrow as pa

from livemodel.errors import InvalidInputError
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import local_root
from livemodel.store.logship import RemoteLog
from livemodel.store.logwriter import GroupCommitWriter, LogOptions, WriterStats
from livemodel.store.predlog import LABELS, check_id, check_model_name, dumps_line, to_micros


class LabelRecord(NamedTuple):
    """One label: the true outcome of a prediction, observed at ``time`` from ``source``,
    sent by ``by`` (who wrote it: recorded by the server, never taken from the client)."""

    prediction_id: str
    label: object
    time: datetime
    source: str
    by: str | None = None


class LabelLog:
    """Durable, append-only label log; plain tuples work wherever a LabelRecord does."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        options: LogOptions | None = None,
        *,
        remote: RemoteLog | None = None,
    ) -> None:
        self.root = local_root(root)
        self.options = options if options is not None else LogOptions()
        self.remote = remote  # shipped segments: written there, and read from there too
        self._writer = GroupCommitWriter(self.root, LABELS, self.options, "label log", remote)
        self._clock_lock = threading.Lock()
        self._last_us = 0

    def append(self, model: str, labels: Sequence[LabelRecord | tuple[object, ...]]) -> None:
        """Write labels of ``model``; return once they are handed to the OS."""
        data, n = self._encode(model, labels)
        if n:
            self._writer.submit({model: data}, n)

    async def append_async(
        self, model: str, labels: Sequence[LabelRecord | tuple[object, ...]]
    ) -> None:
        """Like :meth:`append`, awaiting without blocking the event loop."""
        data, n = self._encode(model, labels)
        if n:
            await self._writer.submit_async({model: data}, n)

    def latest(self, model: str) -> pa.Table:
        """The last written label per prediction id (``prediction_id``, ``label``, ...)."""
        return LogReader(self.root, remote=self.remote).labels(model)

    def history(self, model: str) -> pa.Table:
        """Every label ever written for ``model``, by prediction id then write time."""
        return LogReader(self.root, remote=self.remote).labels(model, history=True)

    def known_ids(self, model: str, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that are logged predictions of ``model``."""
        return LogReader(self.root, remote=self.remote).known_ids(model, ids)

    def stats(self) -> WriterStats:
        return self._writer.stats()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _encode(
        self, model: str, labels: Sequence[LabelRecord | tuple[object, ...]]
    ) -> tuple[bytes, int]:
        check_model_name(model)
        if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
            raise InvalidInputError("labels must be a sequence of (id, label, time, source)")
        rows = [_label_fields(item) for item in labels]
        lines = []
        for (pid, label, ts, source, by), written in zip(
            rows, self._stamps(len(rows)), strict=True
        ):
            line = {"id": pid, "label": label, "ts": ts, "source": source, "written": written}
            if by is not None:
                line["by"] = by
            lines.append(dumps_line(line, f"label of {pid}"))
        return b"".join(lines), len(lines)

    def _stamps(self, n: int) -> range:
        """``n`` write times in µs, strictly increasing across calls (last write wins)."""
        with self._clock_lock:
            first = max(time.time_ns() // 1000, self._last_us + 1)
            self._last_us = first + n - 1
        return range(first, first + n)


def _label_fields(item: object) -> tuple[str, object, int, str, str | None]:
    if not isinstance(item, tuple) or len(item) not in (4, len(LabelRecord._fields)):
        raise InvalidInputError(
            f"a label is a (prediction_id, label, time, source[, by]): {item!r:.200}"
        )
    pid = check_id(item[0])
    source = item[3]
    if not isinstance(source, str) or not source or len(source) > 256:
        raise InvalidInputError(f"label of {pid}: source must be a non-empty string <= 256")
    by = item[4] if len(item) > 4 else None
    if by is not None and (not isinstance(by, str) or not by or len(by) > 256):
        raise InvalidInputError(f"label of {pid}: by must be a non-empty string <= 256")
    time_us = to_micros(item[2], f"label of {pid}: time")
    return pid, _label_value(item[1], pid), time_us, source, by


def _label_value(value: object, pid: str) -> object:
    if isinstance(value, np.bool_ | np.integer | np.floating):
        value = value.item()
    if isinstance(value, str) and value:
        return value
    if isinstance(value, bool | int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    raise InvalidInputError(
        f"label of {pid}: must be a non-empty str, bool, 64-bit int or finite float: {value!r}"
    )
