"""The durable, group-committed writer: threads, asyncio, back-pressure, failures, SIGKILL."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from livemodel.errors import InvalidInputError, StoreError
from livemodel.store import logsegments
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact, list_segments
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

NO_COMPACT = LogOptions(compact=False)


def rec(model: str = "m", **features: object) -> PredictionRecord:
    return PredictionRecord(
        uuid.uuid4().hex, model, 1, features or {"x": 1.0}, {"label": "a"}, datetime.now(UTC)
    )


def logged_ids(root: Path, model: str = "m") -> list[str]:
    ids = LogReader(root).window(model, columns=["prediction_id"])["prediction_id"].to_pylist()
    return [str(i) for i in ids]


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold the writer thread inside its first ``write()`` until the event is set."""
    release = threading.Event()
    entered = threading.Event()
    real: Callable[[logsegments.OpenSegment, bytes], int] = logsegments.OpenSegment.write

    def held_write(self: logsegments.OpenSegment, data: bytes) -> int:
        if not entered.is_set():
            entered.set()
            release.wait(30)
        return real(self, data)

    monkeypatch.setattr(logsegments.OpenSegment, "write", held_write)
    release.entered = entered  # type: ignore[attr-defined]
    yield release
    release.set()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


# -- concurrency and group commit -------------------------------------------------------


def test_threads_lose_and_duplicate_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = logsegments.OpenSegment.write

    def slow_write(self: logsegments.OpenSegment, data: bytes) -> int:
        time.sleep(0.0005)  # a slower disk makes contention certain on 2 cores
        return real(self, data)

    monkeypatch.setattr(logsegments.OpenSegment, "write", slow_write)
    sent: list[list[str]] = [[] for _ in range(8)]

    def worker(k: int) -> None:
        for i in range(60):
            batch = [rec(i=i, k=k)] if i % 5 else [rec(i=i, k=k), rec(i=i, k=k)]
            log.append(batch)
            sent[k] += [r.prediction_id for r in batch]

    with PredictionLog(tmp_path, NO_COMPACT) as log:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = log.stats()
    ids = logged_ids(tmp_path)
    assert sorted(ids) == sorted(i for s in sent for i in s)
    assert len(set(ids)) == len(ids) == 8 * 72
    assert stats.appends == 8 * 60 and stats.records == 8 * 72
    assert stats.write_calls == stats.batches < stats.appends


def test_appends_waiting_behind_a_write_share_one_syscall(
    tmp_path: Path, gate: threading.Event
) -> None:
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        first = threading.Thread(target=log.append, args=([rec()],))
        first.start()
        assert gate.entered.wait(20)  # type: ignore[attr-defined]
        others = [threading.Thread(target=log.append, args=([rec()],)) for _ in range(7)]
        for t in others:
            t.start()
        wait_until(lambda: log._writer._batch is not None and log._writer._batch.appends == 7, "7")
        gate.set()
        for t in [first, *others]:
            t.join()
        stats = log.stats()
    assert (stats.appends, stats.batches, stats.write_calls) == (8, 2, 2)
    assert len(logged_ids(tmp_path)) == 8


def test_records_of_several_models_in_one_append(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        log.append([rec("a"), rec("b"), rec("a")])
    assert len(logged_ids(tmp_path, "a")) == 2 and len(logged_ids(tmp_path, "b")) == 1


def test_async_appends_do_not_block_the_loop(tmp_path: Path) -> None:
    async def main(log: PredictionLog) -> list[str]:
        records = [rec(i=i) for i in range(200)]
        await asyncio.gather(*(log.append_async([r]) for r in records))
        return [r.prediction_id for r in records]

    with PredictionLog(tmp_path, NO_COMPACT) as log:
        sent = asyncio.run(main(log))
        stats = log.stats()
    assert sorted(logged_ids(tmp_path)) == sorted(sent)
    assert stats.batches < stats.appends == 200


# -- back-pressure ----------------------------------------------------------------------


def test_saturated_callers_block_then_fail_and_acknowledged_records_survive(
    tmp_path: Path, gate: threading.Event
) -> None:
    options = LogOptions(max_pending_bytes=1, timeout_s=0.2, compact=False)
    first = rec()
    with PredictionLog(tmp_path, options) as log:
        holder = threading.Thread(target=log.append, args=([first],))
        holder.start()  # admitted into the empty queue, then held inside write()
        assert gate.entered.wait(20)  # type: ignore[attr-defined]
        refused = rec()
        with pytest.raises(StoreError, match="prediction log is saturated"):
            log.append([refused])

        async def refused_async() -> int:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            try:
                with pytest.raises(StoreError, match="saturated"):
                    await log.append_async([rec()])
            finally:
                task.cancel()
            return ticks

        assert asyncio.run(refused_async()) > 1  # the loop kept running while it waited
        gate.set()
        holder.join()
        log.append([rec()])  # room again
        assert log.stats().saturated == 2
    ids = logged_ids(tmp_path)
    assert first.prediction_id in ids and refused.prediction_id not in ids and len(ids) == 2


def test_a_batch_larger_than_the_cap_is_admitted_alone(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, LogOptions(max_pending_bytes=10, compact=False)) as log:
        log.append([rec() for _ in range(20)])
    assert len(logged_ids(tmp_path)) == 20


@pytest.mark.parametrize(
    "bad",
    [
        {"max_pending_bytes": 0},
        {"max_pending_bytes": 1.5},
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"max_segment_bytes": True},
        {"max_segment_age_s": -1},
    ],
)
def test_bad_options_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="LogOptions"):
        LogOptions(**bad)  # type: ignore[arg-type]


# -- segments, durability modes, failures -----------------------------------------------


def test_fsync_mode_syncs_every_batch(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, LogOptions(fsync=True, compact=False)) as log:
        for _ in range(3):
            log.append([rec()])
        stats = log.stats()
    assert stats.fsyncs == stats.batches == 3
    assert len(logged_ids(tmp_path)) == 3


def test_segments_rotate_by_size_and_are_compacted_on_close(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, LogOptions(max_segment_bytes=600)) as log:
        for _ in range(12):
            log.append([rec()])
        assert log.stats().segments > 3
    segments = list_segments(tmp_path / "m" / "predictions")
    assert len(segments) > 3 and {s.state for s in segments} == {"parquet"}
    assert len(logged_ids(tmp_path)) == 12


def test_segments_rotate_by_age(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, LogOptions(max_segment_age_s=0.05, compact=False)) as log:
        log.append([rec()])
        wait_until(
            lambda: any(s.state == "closed" for s in list_segments(tmp_path / "m" / "predictions")),
            "rotation",
        )
        log.append([rec()])
    assert log.stats().segments == 2
    assert len(logged_ids(tmp_path)) == 2


def test_segment_names_carry_host_pid_and_start(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        log.append([rec()])
        (segment,) = list_segments(tmp_path / "m" / "predictions")
        assert segment.state == "open"
        _host, pid, start, _token, seq = segment.stem.split("_")
        assert pid == str(os.getpid()) and int(start) > 1_600_000_000_000_000 and seq == "000001"
    assert list_segments(tmp_path / "m" / "predictions")[0].state == "closed"


def test_a_failed_write_is_reported_and_the_segment_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = logsegments.OpenSegment.write
    calls = 0

    def failing_write(self: logsegments.OpenSegment, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # half a line reaches the disk, then the disk is full
            os.write(self.fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(logsegments.OpenSegment, "write", failing_write)
    ok1, lost, ok2 = rec(), rec(), rec()
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        log.append([ok1])
        with pytest.raises(StoreError, match="cannot write prediction log: .*No space"):
            log.append([lost])
        log.append([ok2])  # continues in a fresh segment
        stats = log.stats()
    assert (stats.failed_batches, stats.segments) == (1, 2)
    assert sorted(logged_ids(tmp_path)) == sorted([ok1.prediction_id, ok2.prediction_id])


def test_closed_log_refuses_appends(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.close()
    log.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        log.append([rec()])
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(log.append_async([rec()]))


def test_empty_append_is_a_no_op(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        log.append([])
        assert log.stats().appends == 0
    assert not (tmp_path / "m").exists()


# -- SIGKILL ----------------------------------------------------------------------------

CHILD = """
import sys, threading, uuid
from datetime import UTC, datetime
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

log = PredictionLog(sys.argv[1], LogOptions(compact=False))
lock = threading.Lock()

def work(k):
    i = 0
    while True:
        pid = uuid.uuid4().hex
        log.append([PredictionRecord(pid, "m", 1, {"k": k, "i": i, "pad": "x" * (i % 300)},
                                     {"label": "a"}, datetime.now(UTC))])
        with lock:  # printed only after append returned: an acknowledged record
            sys.stdout.write(pid + "\\n")
            sys.stdout.flush()
        i += 1

for k in range(4):
    threading.Thread(target=work, args=(k,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    root = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = b""
    deadline = time.monotonic() + 60
    try:
        while out.count(b"\n") < 2000 and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    out += proc.stdout.read()
    proc.stdout.close()
    acknowledged = out.decode().split("\n")[:-1]  # a last line without "\n" was cut short
    assert len(acknowledged) > 100, "the child did not get going"
    ids = set(logged_ids(root))
    missing = [a for a in acknowledged if a not in ids]
    assert not missing
    # The dead writer's segment is sealed and compacted; still nothing is lost.
    assert compact(root, "m")
    assert ids == set(logged_ids(root))


def test_close_wakes_callers_waiting_for_room(tmp_path: Path, gate: threading.Event) -> None:
    log = PredictionLog(tmp_path, LogOptions(max_pending_bytes=1, timeout_s=60, compact=False))
    first = rec()
    holder = threading.Thread(target=log.append, args=([first],))
    holder.start()
    assert gate.entered.wait(20)  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            log.append([rec()])
        except StoreError as exc:
            errors.append(exc)

    blocked = threading.Thread(target=waiter)
    blocked.start()
    wait_until(lambda: log._writer._room._waiters.__len__() == 1, "a caller waiting for room")  # type: ignore[attr-defined]
    closer = threading.Thread(target=log.close)
    closer.start()
    blocked.join(20)
    assert [str(e) for e in errors] == ["prediction log is closed"]
    gate.set()
    for t in (holder, closer):
        t.join(20)
    assert logged_ids(tmp_path) == [first.prediction_id]


def test_reading_while_writing_sees_only_whole_records(tmp_path: Path) -> None:
    stop = threading.Event()

    def writer() -> None:
        for _ in range(150):
            if stop.is_set():
                return
            log.append([rec(pad="x" * 5000)])

    with PredictionLog(tmp_path, NO_COMPACT) as log:
        threads = [threading.Thread(target=writer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            seen = [len(logged_ids(tmp_path)) for _ in range(5)]
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert seen == sorted(seen) and seen[-1] > 0
    assert len(logged_ids(tmp_path)) >= seen[-1]


def test_an_unwritable_root_is_a_store_error(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("not a directory")
    with PredictionLog(root, NO_COMPACT) as log:
        with pytest.raises(StoreError, match="cannot write prediction log"):
            log.append([rec()])
        assert log.stats().failed_batches == 1


def test_a_log_used_after_fork_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PredictionLog(tmp_path, NO_COMPACT) as log:
        monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
        with pytest.raises(StoreError, match="fork"):
            log.append([rec()])
        monkeypatch.undo()
