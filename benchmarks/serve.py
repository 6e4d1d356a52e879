"""Serving benchmark: livemodel against a raw-ASGI floor, MLflow, BentoML and MLServer, in one run.

    .venv/bin/python benchmarks/serve.py [--quick] [--only floor,mlserver] [--no-docs]

Builds two seeded models, installs each peer in its own venv under ``benchmarks/.venvs``, starts
every server as its own process on 127.0.0.1 (pinned to core 0 when ``taskset`` is there, load on
core 1), drives it with ``wrk`` (throughput, status counts) and a per-request-timing client
(latency percentiles), samples each process tree's memory from /proc, then prints rich tables and
writes them with the targets to ``docs/benchmarks.md`` between the serve markers. A server that
cannot be installed, started or queried is reported as failed and the others still run. See
``benchmarks/README.md`` for the method.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from serving.document import RunInfo, render_doc
from serving.models import build_models
from serving.runner import PLANS, Bench, Timing

from serving import procs, report

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
DATA = HERE / ".data" / "serve"
RESULTS = DATA / "results.json"
ALL_SERVERS = ("floor", "livemodel", "mlflow", "bentoml", "mlserver")


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops its server."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def rich_table(table: report.Table) -> RichTable:
    out = RichTable(title=table.title, title_justify="left")
    for column in table.header:
        out.add_column(column, overflow="fold")
    for row in table.rows:
        out.add_row(*row)
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short scenarios, for a smoke check")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(ALL_SERVERS)}"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=procs.default_nice(),
        help="niceness of servers and load generators (default -10 as root, else 0)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=f"run nothing: print and write the docs from {RESULTS.relative_to(HERE.parent)}",
    )
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.only.split(",") if s.strip()] or list(ALL_SERVERS)
    unknown = sorted(set(args.servers) - set(ALL_SERVERS))
    if unknown:
        parser.error(
            f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(ALL_SERVERS)}"
        )
    return args


def run_all(
    args: argparse.Namespace, console: Console
) -> tuple[RunInfo, list[report.ServerRun], bool]:
    """Run the selected plans with a progress bar; the bool says whether it was interrupted."""
    timing = Timing(0.5, 2.0) if args.quick else Timing(2.0, 10.0)
    started = report.machine_info()
    plans = [p for p in PLANS if p.server in args.servers]
    command = ".venv/bin/python benchmarks/serve.py" + (" --quick" if args.quick else "")
    command += f" --only {args.only}" if args.only else ""
    runs: list[report.ServerRun] = []
    costs: dict[str, dict[str, float]] | str = "not measured"
    interrupted = False
    with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        bench = Bench(
            build_models(workdir / "models"),
            workdir,
            timing,
            pin=procs.pinning_available(),
            nice=args.nice,
            logs=DATA / "logs",
        )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        )
        try:
            with progress:
                steps = 1 + sum(2 + len(p.scenarios) for p in plans)
                task = progress.add_task("in-process model cost", total=steps)
                costs = bench.inprocess_costs()
                progress.advance(task)

                def advance(text: str) -> None:
                    progress.update(task, description=text, advance=1)

                for plan in plans:
                    before = progress.tasks[0].completed
                    run = bench.run_plan(plan, advance, console.log)
                    progress.update(task, completed=before + 2 + len(plan.scenarios))
                    runs.append(run)
                    status = f"[red]failed: {run.failed}[/]" if run.failed else "[green]done[/]"
                    pinned = ", pinned" if run.pinned else ""
                    console.log(f"{plan.server} ({plan.variant}{pinned}): {status}")
        except KeyboardInterrupt:
            interrupted = True
            console.print("[yellow]interrupted: servers stopped, partial results below[/]")
        info = RunInfo.of(bench, command, started, costs)
    return info, runs, interrupted


def load_results() -> tuple[RunInfo, list[report.ServerRun]]:
    data = json.loads(RESULTS.read_text())
    runs = [
        report.ServerRun(
            **{**r, "measurements": [report.Measurement(**m) for m in r["measurements"]]}
        )
        for r in data["runs"]
    ]
    return RunInfo.from_dict(data["info"]), runs


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console()
    interrupted = False
    if args.render_only:
        info, runs = load_results()
    else:
        info, runs, interrupted = run_all(args, console)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        results = {"info": dataclasses.asdict(info), "runs": [dataclasses.asdict(r) for r in runs]}
        RESULTS.write_text(json.dumps(results, indent=2))
    console.print(rich_table(report.targets_table(runs)))
    for table in report.build_tables(runs):
        console.print(rich_table(table))
    if interrupted:
        console.print(f"{DOC} left as it was (interrupted run)")
        return 130
    if not args.no_docs:
        report.replace_section(DOC, render_doc(info, runs))
        console.print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
