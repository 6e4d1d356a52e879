"""Where the CPU went during a scenario: the server's tree, the load generator, everyone else.

The machine is shared, so a number is only worth as much as the CPU it got. A :class:`CpuWindow`
reads ``/proc/stat`` (all busy time), the server tree's ``utime + stime`` and our reaped
children's rusage (the load generators) at its start and end, and reports each as cores used.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from serving.procs import process_tree

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / _TICK


def _tree_s(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live process in the tree."""
    out = {}
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return out


def _children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuShare:
    """Average cores used over the window; ``per_process`` splits the server's share."""

    server: float
    load: float
    others: float
    per_process: tuple[float, ...] = ()

    def describe(self) -> str:
        text = f"cores: server {self.server:.2f}, load {self.load:.2f}, others {self.others:.2f}"
        busy = [c for c in self.per_process if c >= 0.01]
        if len(busy) > 1:
            text += " (server processes: " + ", ".join(f"{c:.2f}" for c in busy) + ")"
        return text


class CpuWindow:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start = (time.monotonic(), _machine_busy_s(), _tree_s(server_pid), _children_s())

    def close(self) -> CpuShare:
        wall0, busy0, tree0, kids0 = self._start
        wall = max(time.monotonic() - wall0, 1e-9)
        busy = _machine_busy_s() - busy0
        tree1 = _tree_s(self.server_pid)
        per_pid = {pid: (s - tree0.get(pid, 0.0)) / wall for pid, s in tree1.items()}
        tree = sum(per_pid.values()) * wall
        kids = _children_s() - kids0
        per_process = tuple(sorted(per_pid.values(), reverse=True))
        return CpuShare(tree / wall, kids / wall, max(0.0, busy - tree - kids) / wall, per_process)
