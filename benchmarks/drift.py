"""livemodel's drift report against Evidently, NannyML and a numpy floor, in one run.

Generates a seeded data set once (``benchmarks/.data/``, Parquet: a 100k-row reference
and current files of every requested size, with a real shift in exactly 5 of 25
columns), creates the peers' virtual environments on first use (``benchmarks/.venvs/``),
then times each tool as a whole fresh process (interleaved runs, median wall time, peak
RSS of the process tree, a time and memory bound per run), compares each tool's flagged
columns with the truth, checks livemodel's targets, profiles livemodel with cProfile if
it misses one, and writes the results between the drift markers of
``docs/benchmarks.md``. Run::

    .venv/bin/python benchmarks/drift.py                    # 100k, 1M and 10M rows
    .venv/bin/python benchmarks/drift.py --sizes 1M,10M
    .venv/bin/python benchmarks/drift.py --quick            # smoke check, writes no docs

On the 2-core development machine the full run takes about 15 minutes, most of it
Evidently; ``--tools floor,livemodel`` leaves the peers out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from driftbench import analysis, components, data, markdown, persist, venvs  # noqa: E402
from driftbench.measure import Limits, RunResult, run_child  # noqa: E402
from driftbench.results import (  # noqa: E402
    TOOL_LABELS,
    TOOLS,
    ToolRow,
    ordered,
    parse_size,
    size_label,
    targets,
)

ROOT = HERE.parent
DATA_DIR = HERE / ".data"
VENV_DIR = HERE / ".venvs"
DOCS = ROOT / "docs" / "benchmarks.md"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
CHILD = {t: HERE / "driftbench" / f"child_{t}.py" for t in TOOLS}
PEER_ENV = {
    "NML_DISABLE_USAGE_LOGGING": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
BIG_SIZE = 5_000_000  # from here on, one run per tool

console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M,10M", help="current sizes, e.g. 1M,10M")
    parser.add_argument("--quick", action="store_true", help="20k and 50k rows, 1 run, no docs")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool below 5M rows")
    parser.add_argument("--big-runs", type=int, default=1, help="runs per tool from 5M rows")
    parser.add_argument("--tools", default=",".join(TOOLS), help="subset of " + ",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--max-rss-gb", type=float, default=8.0, help="memory bound per run")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument("--no-profile", action="store_true", help="skip cProfile on a miss")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the docs section from the last raw results, running nothing",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.runs, args.no_docs = "20k,50k", 1, True
    args.size_list = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    args.tool_list = [t for t in TOOLS if t in {x.strip() for x in args.tools.split(",")}]
    if not args.tool_list:
        parser.error(f"--tools must name some of {', '.join(TOOLS)}")
    return args


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kb / 1024**2:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        ram = "unknown"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at start (1/5/15 min)": "/".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _advancer(progress: Progress, task: TaskID) -> Callable[[int], None]:
    def advance(rows: int) -> None:
        progress.advance(task, rows)

    return advance


def prepare_data(sizes: list[int]) -> tuple[Path, dict[int, Path]]:
    wanted = [("reference", data.REFERENCE_ROWS)] + [("current", n) for n in sizes]
    missing = [(s, n) for s, n in wanted if not data.dataset_path(DATA_DIR, s, n).exists()]
    with Progress(
        TextColumn("[bold]data[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not missing,
    ) as progress:
        paths: dict[tuple[str, int], Path] = {}
        for stream, rows in wanted:
            task = progress.add_task(f"{stream} {size_label(rows)}", total=rows)
            path, made = data.ensure(DATA_DIR, stream, rows, _advancer(progress, task))
            progress.update(task, completed=rows, description=f"{stream} {size_label(rows)}"
                            + (" (generated)" if made else " (cached)"))  # fmt: skip
            paths[(stream, rows)] = path
    return paths[("reference", data.REFERENCE_ROWS)], {n: paths[("current", n)] for n in sizes}


def prepare_peers(tools: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    pythons: dict[str, Path] = {t: PROJECT_PYTHON for t in ("floor", "livemodel") if t in tools}
    failures: dict[str, str] = {}
    for tool in tools:
        if tool not in venvs.PEERS:
            continue
        with console.status(f"[bold]venv[/] {tool}: checking / installing"):
            try:
                pythons[tool] = venvs.ensure(VENV_DIR, venvs.PEERS[tool])
            except (RuntimeError, OSError) as exc:
                failures[tool] = f"environment not available: {exc}"
                console.print(f"[red]{tool}[/]: {exc}")
    return pythons, failures


def run_all(
    args: argparse.Namespace,
    reference: Path,
    currents: dict[int, Path],
    pythons: dict[str, Path],
    failures: dict[str, str],
) -> dict[int, dict[str, ToolRow]]:
    rows: dict[int, dict[str, ToolRow]] = {
        n: {t: ToolRow(t, n) for t in args.tool_list} for n in args.size_list
    }
    plan = []
    for size in args.size_list:
        runs = args.runs if size < BIG_SIZE else args.big_runs
        plan += [(size, r, tool) for r in range(runs) for tool in args.tool_list]
    limits = Limits(args.timeout, args.max_rss_gb * 1024)
    dnf: dict[str, str] = {}  # a tool that did not finish at a size is not tried above it
    with Progress(
        TextColumn("[bold]runs[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("", total=len(plan))
        for size, attempt, tool in plan:
            row = rows[size][tool]
            progress.update(task, description=f"{size_label(size)} {tool} #{attempt + 1}")
            reason = failures.get(tool) or (
                f"not run: did not finish at {dnf[tool]}" if tool in dnf else None
            )
            if reason or (row.runs and not row.runs[-1].ok):
                row.skipped = row.skipped or reason
                progress.advance(task)
                continue
            result = run_child(
                pythons[tool],
                CHILD[tool],
                ["--reference", str(reference), "--current", str(currents[size])],
                limits,
                env=PEER_ENV if tool in venvs.PEERS else None,
            )
            row.runs.append(result)
            if not result.ok:
                dnf.setdefault(tool, size_label(size))
                progress.console.print(f"[yellow]{tool} at {size_label(size)}[/]: {result.error}")
            progress.advance(task)
    return rows


def print_tables(rows: dict[int, dict[str, ToolRow]]) -> None:
    for size, by_tool in rows.items():
        table = Table(title=f"{size_label(size)} current rows vs {data.REFERENCE_ROWS:,} reference")
        for col in ("tool", "median s", "x floor", "CPU s", "peak RSS MB", "flagged",
                    "false alarms", "misses"):  # fmt: skip
            numeric = col in ("median s", "x floor", "CPU s", "peak RSS MB")
            table.add_column(col, justify="right" if numeric else "left")
        floor = by_tool.get("floor")
        floor_s = floor.median_s if floor else None
        for tool, row in by_tool.items():
            rss = "-" if row.peak_rss_mb is None else f"{row.peak_rss_mb:.0f}"
            if not row.finished:
                dnf = f"[red]DNF: {row.error}"
                table.add_row(TOOL_LABELS[tool], dnf, "-", "-", rss, "-", "-", "-")
                continue
            med = row.median_s or 0.0
            ratio = f"{med / floor_s:.1f}" if floor_s else "-"
            cpu = "-" if row.median_cpu_s is None else f"{row.median_cpu_s:.2f}"
            table.add_row(
                TOOL_LABELS[tool], f"{med:.2f}", ratio, cpu, rss,
                ordered(row.flagged) if tool != "floor" else "",
                ordered(row.false_alarms) if tool != "floor" else "",
                ordered(row.misses) if tool != "floor" else "",
            )  # fmt: skip
        console.print(table)


def profile_livemodel(reference: Path, current: Path, out: Path) -> RunResult:
    return run_child(
        PROJECT_PYTHON,
        CHILD["livemodel"],
        ["--reference", str(reference), "--current", str(current), "--cprofile", str(out)],
        Limits(900.0, 8 * 1024),
    )


def profile_section(reference: Path, current: Path, size: int) -> str | None:
    """Re-run the livemodel child under cProfile; its top entries and the timed C steps."""
    stats_path = DATA_DIR / f"livemodel-{size_label(size)}.pstats"
    with console.status(f"[bold]cProfile[/] livemodel at {size_label(size)}"):
        result = profile_livemodel(reference, current, stats_path)
    if not result.ok:
        console.print(f"[red]profiling failed[/]: {result.error}")
        return None
    console.print(f"full profile: {stats_path}")
    return render_profile(stats_path)


def render_profile(stats_path: Path) -> str:
    steps = components.numeric_update_steps()
    return "\n".join(
        [
            markdown.profile_table(stats_path),
            "",
            "Named steps (cumulative, same profiled run):",
            "",
            markdown.key_functions_table(stats_path),
            "",
            "The own time of `NumericColumnProfile.update` is numpy ufuncs and the KLL "
            "sketch's C++ `update`, which cProfile does not list; timed apart (CPU ms "
            "per 1M finite values, this machine):",
            "",
            "| step | CPU ms per 1M values |",
            "|---|---:|",
            *(f"| {k} | {v:.1f} |" for k, v in steps.items()),
        ]
    )


def write_docs(
    info: dict[str, str], rows: dict[int, dict[str, ToolRow]], extra: dict[str, object]
) -> None:
    text = markdown.section(
        rows=rows,
        found=targets(rows),
        machine=info,
        versions=markdown.collect_versions(rows),
        methods=markdown.collect_methods(rows),
        limits=str(extra.get("limits", "")),
        command=str(extra.get("command", "benchmarks/drift.py")),
        analysis=analysis.statements(rows),
        profile=extra.get("profile") or None,  # type: ignore[arg-type]
    )
    DOCS.parent.mkdir(exist_ok=True)
    markdown.splice(DOCS, text)  # re-reads the file: the serving section may have changed
    console.print(f"wrote the drift section of {DOCS}")


def limits_text(args: argparse.Namespace) -> str:
    return (
        f"{args.timeout:.0f} s and {args.max_rss_gb:.0f} GB of summed RSS per run; runs "
        f"per tool: {args.runs} below 5M rows, {args.big_runs} from 5M"
    )


def main() -> None:
    args = parse_args()
    # a smoke run keeps its own file, so --render-only still renders the last real run
    result_file = DATA_DIR / ("drift-results-quick.json" if args.quick else "drift-results.json")
    if args.render_only:
        info, rows, saved = persist.load(result_file)
        saved.setdefault(
            "command",
            "benchmarks/drift.py "
            + " ".join(f"--sizes {','.join(size_label(n) for n in sorted(rows))}".split()),
        )
        saved.setdefault("limits", limits_text(args))
        stats_path = DATA_DIR / "livemodel-1M.pstats"
        missed = any(t.passed is False for t in targets(rows))
        if saved.get("profile") is None and missed and stats_path.exists():
            saved["profile"] = render_profile(stats_path)
        print_tables(rows)
        write_docs(info, rows, saved)
        return
    console.rule("[bold]drift benchmark")
    info = machine()
    console.print(", ".join(f"{k}: {v}" for k, v in info.items()))
    reference, currents = prepare_data(args.size_list)
    pythons, failures = prepare_peers(args.tool_list)
    rows = run_all(args, reference, currents, pythons, failures)
    print_tables(rows)
    found = targets(rows)
    for t in found:
        mark = "[green]pass" if t.passed else ("[red]FAIL" if t.passed is False else "n/a")
        console.print(f"{mark}[/] {t.name}: {t.measured}")
    profile_md = None
    missed = any(t.passed is False for t in found)
    if missed and not args.no_profile and "livemodel" in args.tool_list:
        size = 1_000_000 if 1_000_000 in currents else max(currents)
        profile_md = profile_section(reference, currents[size], size)
        if profile_md:
            console.print(profile_md)
    extra: dict[str, object] = {
        "command": ("benchmarks/drift.py " + " ".join(sys.argv[1:])).strip(),
        "limits": limits_text(args),
        "profile": profile_md,
    }
    info["load average at end (1/5/15 min)"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    persist.save(result_file, info, rows, extra)
    console.print(f"raw results: {result_file}")
    if not args.no_docs:
        write_docs(info, rows, extra)


if __name__ == "__main__":
    main()
