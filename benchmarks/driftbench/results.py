"""Aggregating runs into per-size rows, checking verdicts against the truth and targets."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from typing import Any

from driftbench.data import COLUMNS, SHIFTED
from driftbench.measure import RunResult

TOOLS = ("floor", "livemodel", "evidently", "nannyml")
TOOL_LABELS = {
    "floor": "numpy floor",
    "livemodel": "livemodel",
    "evidently": "Evidently",
    "nannyml": "NannyML",
}
# Targets (from the brief): at 1M rows livemodel <= 1.5x the floor of the same run and
# peak RSS < 600 MB; at 10M rows < 10x its own 1M time and peak RSS < 1 GB.
TIME_VS_FLOOR = 1.5
RSS_1M_MB = 600.0
SCALING_10M = 10.0
RSS_10M_MB = 1024.0


@dataclass
class ToolRow:
    """One tool at one size: its runs, summarised."""

    tool: str
    size: int
    runs: list[RunResult] = field(default_factory=list)
    skipped: str | None = None  # why it was not run at all

    @property
    def ok_runs(self) -> list[RunResult]:
        return [r for r in self.runs if r.ok]

    @property
    def finished(self) -> bool:
        return bool(self.ok_runs) and self.skipped is None

    @property
    def median_s(self) -> float | None:
        ok = self.ok_runs
        return statistics.median(r.wall_s for r in ok) if ok else None

    @property
    def median_cpu_s(self) -> float | None:
        cpu = [r.cpu_s for r in self.ok_runs if r.cpu_s is not None]
        return statistics.median(cpu) if cpu else None

    @property
    def peak_rss_mb(self) -> float | None:
        """The largest peak over the runs (killed runs included: memory is what killed
        them)."""
        return max((r.peak_rss_mb for r in self.runs), default=None)

    @property
    def error(self) -> str | None:
        if self.skipped:
            return self.skipped
        failed = [r.error for r in self.runs if r.error]
        return failed[0] if failed and not self.ok_runs else None

    @property
    def flagged(self) -> tuple[str, ...] | None:
        ok = self.ok_runs
        return tuple(ok[0].payload.get("flagged", ())) if ok else None

    @property
    def consistent(self) -> bool:
        """All finished runs flagged the same columns."""
        return len({tuple(r.payload.get("flagged", ())) for r in self.ok_runs}) <= 1

    @property
    def false_alarms(self) -> tuple[str, ...] | None:
        flagged = self.flagged
        return None if flagged is None else tuple(c for c in flagged if c not in SHIFTED)

    @property
    def misses(self) -> tuple[str, ...] | None:
        flagged = self.flagged
        return None if flagged is None else tuple(c for c in SHIFTED if c not in flagged)

    @property
    def payload(self) -> dict[str, Any]:
        ok = self.ok_runs
        return ok[0].payload if ok else {}

    def phases_median(self) -> dict[str, float]:
        ok = self.ok_runs
        if not ok:
            return {}
        names = ok[0].payload.get("phases", {}).keys()
        return {
            n: statistics.median(r.payload.get("phases", {}).get(n, 0.0) for r in ok) for n in names
        }


def ordered(columns: tuple[str, ...] | None) -> str:
    if columns is None:
        return "-"
    if not columns:
        return "none"
    return ", ".join(c for c in COLUMNS if c in columns)


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    passed: bool | None  # None: could not be evaluated


def targets(rows: dict[int, dict[str, ToolRow]]) -> list[Target]:
    out: list[Target] = []
    one, ten = rows.get(1_000_000), rows.get(10_000_000)
    for size, by_tool in sorted(rows.items()):
        lm = by_tool.get("livemodel")
        if lm is None:
            continue
        fine = lm.finished and not lm.false_alarms and not lm.misses and lm.consistent
        out.append(
            Target(
                f"{_size(size)}: livemodel flags exactly the 5 shifted columns",
                f"false alarms: {ordered(lm.false_alarms)}; misses: {ordered(lm.misses)}",
                fine if lm.finished else None,
            )
        )
    if one and "livemodel" in one:
        lm, floor = one["livemodel"], one.get("floor")
        if lm.median_s is not None and floor is not None and floor.median_s:
            ratio = lm.median_s / floor.median_s
            measured = f"{lm.median_s:.2f} s / {floor.median_s:.2f} s = {ratio:.2f}x"
            if lm.median_cpu_s and floor.median_cpu_s:
                cpu_ratio = lm.median_cpu_s / floor.median_cpu_s
                measured += (
                    f" (CPU time: {lm.median_cpu_s:.2f} s / {floor.median_cpu_s:.2f} s"
                    f" = {cpu_ratio:.2f}x)"
                )
            out.append(
                Target(f"1M: wall time <= {TIME_VS_FLOOR}x the floor", measured,
                       ratio <= TIME_VS_FLOOR)
            )  # fmt: skip
        if lm.peak_rss_mb is not None:
            out.append(
                Target(
                    f"1M: peak RSS < {RSS_1M_MB:.0f} MB",
                    f"{lm.peak_rss_mb:.0f} MB",
                    lm.peak_rss_mb < RSS_1M_MB and lm.finished,
                )
            )
    if ten and "livemodel" in ten:
        lm10 = ten["livemodel"]
        lm1 = one.get("livemodel") if one else None
        if lm10.median_s is not None and lm1 is not None and lm1.median_s:
            ratio = lm10.median_s / lm1.median_s
            measured = f"{lm10.median_s:.1f} s / {lm1.median_s:.2f} s = {ratio:.1f}x"
            if lm10.median_cpu_s and lm1.median_cpu_s:
                measured += (
                    f" (CPU time: {lm10.median_cpu_s:.1f} s / {lm1.median_cpu_s:.2f} s"
                    f" = {lm10.median_cpu_s / lm1.median_cpu_s:.1f}x)"
                )
            out.append(
                Target(f"10M: wall time < {SCALING_10M:.0f}x its own 1M time", measured,
                       ratio < SCALING_10M)
            )  # fmt: skip
        if lm10.peak_rss_mb is not None:
            out.append(
                Target(
                    f"10M: peak RSS < {RSS_10M_MB:.0f} MB",
                    f"{lm10.peak_rss_mb:.0f} MB",
                    lm10.peak_rss_mb < RSS_10M_MB and lm10.finished,
                )
            )
    return out


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100k, 1M)") from None
    if value < 1_000:
        raise argparse.ArgumentTypeError("sizes start at 1k rows")
    return value


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


size_label = _size
