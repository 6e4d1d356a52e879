"""Results as plain data, the targets they are judged against, and their rendering.

Tables are built once as :class:`Table` (title, header, rows of strings) and rendered twice:
as Markdown for ``docs/benchmarks.md`` (between the serve markers) and as rich tables on the
terminal.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_MARK = "<!-- serve:start -->"
END_MARK = "<!-- serve:end -->"


@dataclass(frozen=True)
class Measurement:
    """One scenario against one server run; ``failed`` holds the reason when it did not run."""

    server: str
    variant: str
    scenario: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    requests: int = 0
    failed: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ServerRun:
    """What one server process did: its measurements, memory, and failure if any."""

    server: str
    variant: str
    workers: int
    pinned: bool
    measurements: list[Measurement] = field(default_factory=list)
    tree_peak_mb: float | None = None
    process_peak_mb: float | None = None
    processes: int = 0
    failed: str | None = None


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    threshold: str
    measured: str
    verdict: str  # "pass", "FAIL" or "n/a: <why>"


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None or math.isnan(value):  # nothing measured
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def find(
    runs: list[ServerRun], server: str, scenario: str, variant: str | None = None
) -> Measurement | None:
    for run in runs:
        for m in run.measurements:
            same = m.server == server and m.scenario == scenario
            if same and (variant is None or m.variant == variant):
                return m
    return None


def ok(m: Measurement | None) -> bool:
    return m is not None and m.failed is None


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _verdict(ok_: bool) -> str:
    return "pass" if ok_ else "FAIL"


def _missing(*items: tuple[str, Measurement | None]) -> str | None:
    for name, m in items:
        if m is None:
            return f"n/a: {name} not run"
        if m.failed is not None:
            return f"n/a: {name} failed"
    return None


def targets(runs: list[ServerRun]) -> list[Target]:
    """The issue's targets for livemodel, each judged on this run's numbers."""
    out: list[Target] = []
    floor32, lm32 = find(runs, "floor", "lr_c32"), find(runs, "livemodel", "lr_c32")
    why = _missing(("floor", floor32), ("livemodel", lm32))
    if why is None and floor32 and lm32 and floor32.rps and lm32.rps:
        ratio = lm32.rps / floor32.rps
        out.append(
            Target(
                "LR c=32 throughput vs floor",
                ">= 75%",
                fmt(100 * ratio, 0, "%"),
                _verdict(ratio >= 0.75),
            )
        )
    else:
        out.append(Target("LR c=32 throughput vs floor", ">= 75%", "-", why or "n/a"))
    if lm32 is not None and lm32.failed is None and lm32.p99_ms is not None:
        out.append(
            Target(
                "LR c=32 p99", "<= 15 ms", fmt(lm32.p99_ms, 2, " ms"), _verdict(lm32.p99_ms <= 15)
            )
        )
    else:
        out.append(Target("LR c=32 p99", "<= 15 ms", "-", _missing(("livemodel", lm32)) or "n/a"))
    floor1, lm1 = find(runs, "floor", "lr_c1"), find(runs, "livemodel", "lr_c1")
    why = _missing(("floor", floor1), ("livemodel", lm1))
    if why is None and floor1 and lm1 and floor1.p50_ms is not None and lm1.p50_ms is not None:
        added = lm1.p50_ms - floor1.p50_ms
        out.append(
            Target(
                "LR c=1 p50 added over floor",
                "<= 0.5 ms",
                fmt(added, 3, " ms"),
                _verdict(added <= 0.5),
            )
        )
    else:
        out.append(Target("LR c=1 p50 added over floor", "<= 0.5 ms", "-", why or "n/a"))
    mls, lmrf = find(runs, "mlserver", "rf_c32"), find(runs, "livemodel", "rf_c32")
    why = _missing(("mlserver", mls), ("livemodel", lmrf))
    if why is None and mls and lmrf and mls.rps and lmrf.rps:
        ratio = lmrf.rps / mls.rps
        out.append(
            Target(
                "RF c=32 vs MLServer (batching)",
                ">= 1.5x",
                fmt(ratio, 2, "x"),
                _verdict(ratio >= 1.5),
            )
        )
    else:
        out.append(Target("RF c=32 vs MLServer (batching)", ">= 1.5x", "-", why or "n/a"))
    if lmrf is not None and lmrf.failed is None and lmrf.p99_ms is not None:
        out.append(
            Target(
                "RF c=32 p99", "<= 50 ms", fmt(lmrf.p99_ms, 1, " ms"), _verdict(lmrf.p99_ms <= 50)
            )
        )
    else:
        out.append(Target("RF c=32 p99", "<= 50 ms", "-", _missing(("livemodel", lmrf)) or "n/a"))
    w1 = find(runs, "livemodel", "scaling", "1 worker")
    w2 = find(runs, "livemodel", "scaling", "2 workers")
    why = _missing(("livemodel 1 worker", w1), ("livemodel 2 workers", w2))
    if why is None and w1 and w2 and w1.rps and w2.rps:
        ratio = w2.rps / w1.rps
        out.append(
            Target("2 workers vs 1 worker", ">= 1.7x", fmt(ratio, 2, "x"), _verdict(ratio >= 1.7))
        )
    else:
        out.append(Target("2 workers vs 1 worker", ">= 1.7x", "-", why or "n/a"))
    per_worker = [
        run.tree_peak_mb / run.workers
        for run in runs
        if run.server == "livemodel" and run.failed is None and run.tree_peak_mb
    ]
    if per_worker:
        worst = max(per_worker)
        largest = max(
            run.process_peak_mb or 0.0
            for run in runs
            if run.server == "livemodel" and run.failed is None
        )
        measured = f"{worst:,.0f} MB (tree / workers); largest process {largest:,.0f} MB"
        out.append(Target("peak RSS per worker", "< 250 MB", measured, _verdict(worst < 250)))
    else:
        out.append(Target("peak RSS per worker", "< 250 MB", "-", "n/a: livemodel did not run"))
    return out


def targets_table(runs: list[ServerRun]) -> Table:
    rows = [[t.name, t.threshold, t.measured, t.verdict] for t in targets(runs)]
    return Table(
        "Issue targets, judged on this run", ["target", "threshold", "measured", "verdict"], rows
    )


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{100 * value / base:.0f}%"


def _status(m: Measurement | None) -> str | None:
    if m is None:
        return None
    return f"failed: {m.failed}" if m.failed else None


def scenario_table(
    runs: list[ServerRun],
    scenario: str,
    title: str,
    columns: Sequence[tuple[str, Callable[[Measurement, Measurement | None], str]]],
    note: str = "",
) -> Table:
    """One row per server run that has ``scenario``; failed rows say why in the second column."""
    base = find(runs, "floor", scenario, "1 worker")
    rows = []
    for run in runs:
        for m in run.measurements:
            if m.scenario != scenario:
                continue
            label = m.server if m.variant == "1 worker" else f"{m.server} ({m.variant})"
            failure = _status(m)
            if failure:
                rows.append([label, failure[:160]] + ["-"] * (len(columns) - 1))
            else:
                rows.append([label] + [fn(m, base) for _, fn in columns])
    return Table(title, ["server"] + [name for name, _ in columns], rows, note)


def build_tables(runs: list[ServerRun]) -> list[Table]:
    def rps(m: Measurement, _: Measurement | None) -> str:
        return fmt(m.rps)

    def vs_floor(m: Measurement, base: Measurement | None) -> str:
        return _ratio(m.rps, base.rps if ok(base) and base else None)

    def p50(m: Measurement, _: Measurement | None) -> str:
        return fmt(m.p50_ms, 2)

    def p99(m: Measurement, _: Measurement | None) -> str:
        return fmt(m.p99_ms, 2)

    def errors(m: Measurement, _: Measurement | None) -> str:
        return f"{m.errors} / {m.requests:,}"

    def added(m: Measurement, base: Measurement | None) -> str:
        if not ok(base) or base is None or base.p50_ms is None or m.p50_ms is None:
            return "-"
        return f"{m.p50_ms - base.p50_ms:+.3f}"

    def note(m: Measurement, _: Measurement | None) -> str:
        return m.note or ""

    throughput = [
        ("req/s", rps),
        ("vs floor", vs_floor),
        ("p50 ms", p50),
        ("p99 ms", p99),
        ("errors / requests", errors),
        ("notes", note),
    ]
    tables = [
        scenario_table(runs, "lr_c32", "LogisticRegression, 32 connections, 1 worker", throughput),
        scenario_table(
            runs,
            "lr_c1",
            "LogisticRegression, 1 connection, 1 worker",
            [
                ("p50 ms", p50),
                ("p99 ms", p99),
                ("p50 added over floor, ms", added),
                ("req/s", rps),
                ("errors / requests", errors),
            ],
        ),
        scenario_table(
            runs, "rf_c32", "RandomForest (100 trees), 32 connections, 1 worker", throughput
        ),
        scenario_table(
            runs,
            "scaling",
            "LogisticRegression, 32 connections, 1 vs 2 workers (not pinned)",
            [("req/s", rps), ("errors / requests", errors), ("notes", note)],
            note=(
                "Not pinned: server, load generator and other processes share the two cores, so "
                "a second worker can only use what they leave; the floor's own ratio is the "
                "ceiling for this run. When 'others' is near one core there is no second core "
                "to scale onto."
            ),
        ),
    ]
    memory_rows = []
    for run in runs:
        label = f"{run.server} ({run.variant}{', pinned' if run.pinned else ''})"
        if run.failed:
            memory_rows.append([label, f"failed: {run.failed}"[:160], "-", "-", "-"])
            continue
        per_worker = run.tree_peak_mb / run.workers if run.tree_peak_mb else None
        memory_rows.append(
            [
                label,
                fmt(run.tree_peak_mb),
                str(run.processes),
                fmt(run.process_peak_mb),
                fmt(per_worker),
            ]
        )
    tables.append(
        Table(
            "Peak resident memory of each server's process tree (MB, sampled every 0.2 s)",
            [
                "server run",
                "tree peak RSS",
                "processes",
                "largest process (VmHWM)",
                "tree / workers",
            ],
            memory_rows,
        )
    )
    return tables


def markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join("---" for _ in table.header) + "|")
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows)
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines)


def replace_section(doc: Path, body: str) -> None:
    """Write ``body`` between the serve markers, creating the file or the section if missing."""
    block = f"{START_MARK}\n{body.strip()}\n{END_MARK}"
    if not doc.exists():
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(f"# Benchmarks\n\n## Serving\n\n{block}\n")
        return
    text = doc.read_text()
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(END_MARK) :]
    else:
        text = text.rstrip() + f"\n\n## Serving\n\n{block}\n"
    doc.write_text(text)
