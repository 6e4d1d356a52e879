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


def _tree_s(root: int) -> float:
    total = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def _children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuShare:
    """Average cores used over the window."""

    server: float
    load: float
    others: float

    def describe(self) -> str:
        return f"cores: server {self.server:.2f}, load {self.load:.2f}, others {self.others:.2f}"


class CpuWindow:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start = (time.monotonic(), _machine_busy_s(), _tree_s(server_pid), _children_s())

    def close(self) -> CpuShare:
        wall0, busy0, tree0, kids0 = self._start
        wall = max(time.monotonic() - wall0, 1e-9)
        busy = _machine_busy_s() - busy0
        tree = _tree_s(self.server_pid) - tree0
        kids = _children_s() - kids0
        return CpuShare(tree / wall, kids / wall, max(0.0, busy - tree - kids) / wall)
