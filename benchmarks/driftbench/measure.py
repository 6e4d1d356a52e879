"""Run one child process under limits and measure its wall time and peak memory.

Wall time is taken by the parent around the whole child (interpreter start, imports,
reading, computing, writing its verdicts). Peak RSS is the larger of ``/usr/bin/time
-v``'s "Maximum resident set size" (the largest single process) and the peak of the
summed ``VmRSS`` of the child's process tree, polled every 50 ms (which would catch
worker processes). The same poll enforces the memory bound: a child whose tree
exceeds it is killed, as is one that runs past its time limit, and the run is recorded as
"did not finish" with the reason. Killing goes to the child's own process group only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_POLL_SECONDS = 0.05
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Limits:
    seconds: float
    rss_mb: float


@dataclass(frozen=True)
class RunResult:
    """One child run; ``error`` is set when it did not finish."""

    wall_s: float
    peak_rss_mb: float
    error: str | None = None
    cpu_s: float | None = None  # user + system time of the child, from /usr/bin/time
    payload: dict[str, Any] = field(default_factory=dict)
    # summed proportional set size of the tree (shared pages split between their users)
    peak_pss_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _session_rss(sid: int) -> dict[int, int]:
    """Resident set (kB) of every process in session ``sid`` (the child's tree), by pid."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_bytes()
            fields = raw.rsplit(b")", 1)[1].split()
            # after the command: state ppid pgrp session ... rss is field 24 (index 21)
            if int(fields[3]) == sid:
                found[int(entry.name)] = int(fields[21]) * _PAGE_KB
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def _session_rss_kb(sid: int) -> int:
    """Summed resident set of the child's tree."""
    return sum(_session_rss(sid).values())


def _session_pss_kb(sid: int) -> int:
    """Summed proportional set size of session ``sid``: shared memory (Ray's object
    store, libraries) counted once in all, not once per process."""
    total = 0
    for pid in _session_rss(sid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total


def _time_report(path: Path) -> tuple[int, float | None]:
    """``(max RSS kB, user + system s)`` from a ``/usr/bin/time -v`` report."""
    try:
        text = path.read_text()
    except OSError:
        return 0, None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    cpu = float(user.group(1)) + float(system.group(1)) if user and system else None
    return (int(rss.group(1)) if rss else 0), cpu


def run_child(
    python: Path,
    script: Path,
    args: list[str],
    limits: Limits,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> RunResult:
    """Run ``python script args --out <tmp>`` and return its measurements and JSON."""
    time_bin = shutil.which("time", path="/usr/bin")
    with tempfile.TemporaryDirectory(prefix="driftbench-") as tmp:
        out, timing = Path(tmp) / "result.json", Path(tmp) / "time.txt"
        command = [str(python), str(script), *args, "--out", str(out)]
        if time_bin:
            command = [time_bin, "-v", "-o", str(timing), *command]
        child_env = dict(os.environ)
        child_env.update(env or {})
        stderr_path = log or Path(tmp) / "stderr.txt"
        with stderr_path.open("wb") as stderr:
            start = time.perf_counter()
            proc = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=child_env,
                start_new_session=True,  # its own session and process group
            )
            peak_kb, peak_pss_kb, polls, error = 0, 0, 0, None
            while proc.poll() is None:
                rss = _session_rss_kb(proc.pid)
                peak_kb = max(peak_kb, rss)
                polls += 1
                if polls % 10 == 1:  # smaps_rollup costs more: every 0.5 s
                    peak_pss_kb = max(peak_pss_kb, _session_pss_kb(proc.pid))
                elapsed = time.perf_counter() - start
                if rss / 1024 > limits.rss_mb:
                    error = f"memory above {limits.rss_mb / 1024:.0f} GB after {elapsed:.0f} s"
                elif elapsed > limits.seconds:
                    error = f"still running after {limits.seconds:.0f} s"
                if error:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
                time.sleep(_POLL_SECONDS)
            wall = time.perf_counter() - start
        time_rss_kb, cpu = _time_report(timing)
        peak_mb = max(peak_kb, time_rss_kb) / 1024
        if error is None and proc.returncode != 0:
            error = f"exit code {proc.returncode}: {_last_line(stderr_path)}"
        if error is None and not out.exists():
            error = "no result written"
        payload = json.loads(out.read_text()) if error is None else {}
        pss = round(peak_pss_kb / 1024, 1) if peak_pss_kb else None
        return RunResult(round(wall, 3), round(peak_mb, 1), error, cpu, payload, pss)


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    # /usr/bin/time appends "Command exited with non-zero status"; show the error above it
    lines = [ln for ln in lines if not ln.startswith("Command exited")]
    return lines[-1][:200] if lines else ""
