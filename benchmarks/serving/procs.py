"""Server processes: start in their own session, wait for readiness, sample memory, stop cleanly.

Each server runs in a new session (its own process group), so stopping it reaches every worker
it forked; descendants that left the group are found through ``/proc`` and killed too. Memory is
the resident set of the whole process tree, summed over processes and sampled in a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinning_available() -> bool:
    """``taskset`` exists and this process may use at least two CPUs."""
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(cmd: Sequence[str], cpus: str | None, nice: int = 0) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` and ``nice -n nice`` (children inherit both)."""
    out = ["taskset", "-c", cpus, *cmd] if cpus else list(cmd)
    return ["nice", "-n", str(nice), *out] if nice else out


def boost(pid: int, nice: int) -> None:
    """Give ``pid``'s session the scheduling weight of ``nice`` (best effort).

    With autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) every session is a
    group that competes with the others as a whole, and a process's own niceness only counts
    inside its group; so a new session's weight is set through ``/proc/<pid>/autogroup``.
    """
    if nice:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def run_boosted(cmd: Sequence[str], nice: int, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion in its own boosted session; killed on timeout or interrupt."""
    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    boost(proc.pid, nice)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def default_nice() -> int:
    """-10 as root, so other work on a shared machine perturbs the numbers less; else 0."""
    return -10 if os.geteuid() == 0 and shutil.which("nice") else 0


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class Memory:
    """Peak resident memory seen: of the whole tree (sum), and of its largest process (VmHWM)."""

    tree_peak_mb: float
    process_peak_mb: float
    processes: int


class ServerProcess:
    """A server command run in its own session, with a log file and a memory sampler."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.env = env
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._tree_peak_kb = 0
        self._process_peak_kb = 0
        self._max_processes = 0
        self._nice = 0

    def start(self, cwd: Path | None = None, nice: int = 0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                self.cmd,
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._nice = nice
        boost(self._proc.pid, nice)
        self._sampler = threading.Thread(target=self._sample, name=f"rss-{self.name}", daemon=True)
        self._sampler.start()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def _sample(self) -> None:
        boosted: set[int] = set()
        while not self._stop.is_set() and self.alive():
            pids = process_tree(self.pid)
            total = 0
            for pid in pids:
                if pid not in boosted:
                    # Workers that start their own session (setsid) get their own autogroup.
                    boost(pid, self._nice)
                    boosted.add(pid)
                total += _status_kb(pid, "VmRSS")
                self._process_peak_kb = max(self._process_peak_kb, _status_kb(pid, "VmHWM"))
            self._tree_peak_kb = max(self._tree_peak_kb, total)
            self._max_processes = max(self._max_processes, len(pids))
            self._stop.wait(0.2)

    def memory(self) -> Memory:
        return Memory(self._tree_peak_kb / 1024, self._process_peak_kb / 1024, self._max_processes)

    def wait_ready(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200; raise ``RuntimeError`` on exit or timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                code = self._proc.returncode if self._proc else None
                raise RuntimeError(f"exited with {code} before ready: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"status {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"status {exc.code}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise RuntimeError(f"not ready after {timeout:.0f} s ({last}): {self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever of the tree is left."""
        self._stop.set()
        if self._proc is None:
            return
        tree = process_tree(self._proc.pid) if self.alive() else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=5)
        # Children that outlived their parent or left its group.
        deadline = time.monotonic() + 3
        for pid in tree[1:]:
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._sampler is not None:
            self._sampler.join(timeout=2)
