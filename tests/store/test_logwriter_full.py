"""A write that fails leaves nothing readable of its batch, and no empty segment file.

The failure is the operating system's own: a child process lowers ``RLIMIT_FSIZE``, so a
``write()`` past the limit writes what fits and then fails with ``EFBIG``, as a disk that
fills mid-batch does (``ENOSPC``). The callers of the failed batch got an error (the
server answers 503), so none of its records may be exported afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from livemodel.store.logreader import LogReader

CHILD = """
import json, resource, signal, sys
from livemodel.errors import StoreError
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

root, limit = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed

def batch(tag, n):
    return [PredictionRecord(f"{tag}-{i}", "m", 1, {"x": float(i), "pad": "p" * 40},
                             {"label": i % 2}) for i in range(n)]

outcome = {}
with PredictionLog(root, LogOptions(compact=False)) as log:
    log.append(batch("ok", 5))  # about 600 bytes: fits
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    for tag, n in (("big", 40), ("again", 40), ("more", 40)):
        try:
            log.append(batch(tag, n))
            outcome[tag] = "written"
        except StoreError:
            outcome[tag] = "failed"
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    log.append(batch("after", 3))  # the disk has room again
print(json.dumps(outcome))
"""


def run_child(root: Path, limit: int) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(limit)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outcome: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def logged_ids(root: Path) -> list[str]:
    return sorted(LogReader(root).window("m").column("prediction_id").to_pylist())


def test_a_batch_cut_short_by_a_full_disk_leaves_none_of_its_rows(tmp_path: Path) -> None:
    outcome = run_child(tmp_path, limit=2_000)  # the 40-row batches need ~5 KB
    assert outcome == {"big": "failed", "again": "failed", "more": "failed"}
    ids = logged_ids(tmp_path)
    assert ids == sorted([f"ok-{i}" for i in range(5)] + [f"after-{i}" for i in range(3)])
    files = list((tmp_path / "m" / "predictions").iterdir())
    assert all(f.stat().st_size > 0 for f in files), files


def test_failed_writes_leave_no_empty_segment_files(tmp_path: Path) -> None:
    outcome = run_child(tmp_path, limit=0)  # not one byte more fits in any file
    assert set(outcome.values()) == {"failed"}
    files = sorted((tmp_path / "m" / "predictions").iterdir())
    assert [f.stat().st_size for f in files if f.stat().st_size == 0] == []
    assert len(files) == 2  # the first batch's segment and the one after the failures
    assert logged_ids(tmp_path) == sorted(
        [f"ok-{i}" for i in range(5)] + [f"after-{i}" for i in range(3)]
    )
