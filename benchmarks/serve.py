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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from serving.models import BenchModels, build_models

from serving import cpu, load, peers, procs, report, servers

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
DATA = HERE / ".data" / "serve"
ALL_SERVERS = ("floor", "livemodel", "mlflow", "bentoml", "mlserver")
# MLServer's adaptive batching for the forest: up to one batch per connection, 5 ms window.
MLSERVER_BATCHING = (32, 0.005)
SERVER_CPUS, LOAD_CPUS = "0", "1"


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str
    concurrency: int
    throughput: bool  # run wrk for req/s
    latency: bool  # run the timing client for p50/p99


SCENARIOS = {
    "lr_c32": Scenario("lr_c32", "bench_lr", 32, throughput=True, latency=True),
    "lr_c1": Scenario("lr_c1", "bench_lr", 1, throughput=False, latency=True),
    "rf_c32": Scenario("rf_c32", "bench_rf", 32, throughput=True, latency=True),
    "scaling": Scenario("scaling", "bench_lr", 32, throughput=True, latency=False),
}


@dataclass(frozen=True)
class Plan:
    """One server process to start and the scenarios to run against it."""

    server: str
    variant: str
    workers: int
    pinned: bool
    scenarios: tuple[str, ...]
    numpy: bool = False


PLANS = (
    Plan("floor", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("floor", "numpy input", 1, True, ("lr_c32",), numpy=True),
    Plan("livemodel", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("mlflow", "1 worker", 1, True, ("lr_c32", "lr_c1")),
    Plan("bentoml", "1 worker", 1, True, ("lr_c32", "lr_c1")),
    Plan("mlserver", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("floor", "1 worker", 1, False, ("scaling",)),
    Plan("floor", "2 workers", 2, False, ("scaling",)),
    Plan("livemodel", "1 worker", 1, False, ("scaling",)),
    Plan("livemodel", "2 workers", 2, False, ("scaling",)),
)


@dataclass(frozen=True)
class Timing:
    warmup: float
    seconds: float


class Bench:
    """Runs the plans; keeps what it needs across them (models, venvs, livemodel home)."""

    def __init__(
        self, models: BenchModels, workdir: Path, timing: Timing, pin: bool, nice: int
    ) -> None:
        self.models = models
        self.nice = nice
        self.workdir = workdir
        self.timing = timing
        self.pin = pin
        self.venvs: dict[str, Path | str] = {}  # a path, or the reason installing failed
        self.versions: dict[str, dict[str, str]] = {}
        self.livemodel_home: Path | str | None = None
        self.wrk = load.ensure_wrk()

    def peer_venv(self, name: str, log: Callable[[str], None]) -> Path:
        if name not in self.venvs:
            spec = peers.PEERS[name]
            try:
                venv = peers.ensure_peer(spec, HERE / ".venvs", log)
                self.versions[name] = peers.versions(spec, venv)
                self.venvs[name] = venv
            except (RuntimeError, OSError, ValueError) as exc:
                self.venvs[name] = str(exc)
        found = self.venvs[name]
        if isinstance(found, str):
            raise RuntimeError(found)
        return found

    def livemodel_ready_home(self) -> Path:
        if self.livemodel_home is None:
            home = self.workdir / "livemodel_home"
            try:
                servers.prepare_livemodel(self.models, home)
                self.livemodel_home = home
            except RuntimeError as exc:
                self.livemodel_home = str(exc)
        if isinstance(self.livemodel_home, str):
            raise RuntimeError(self.livemodel_home)
        return self.livemodel_home

    def spec_for(self, plan: Plan, log: Callable[[str], None]) -> servers.ServerSpec:
        port = procs.free_port()
        if plan.server == "floor":
            return servers.floor(self.models, port, plan.workers, numpy=plan.numpy)
        if plan.server == "livemodel":
            home = self.livemodel_ready_home()
            return servers.livemodel_server(self.models, home, port, plan.workers)
        venv = self.peer_venv(plan.server, log)
        if plan.server == "mlflow":
            model_dir = servers.prepare_mlflow(self.models, venv, self.workdir, "bench_lr")
            return servers.mlflow_server(self.models, venv, model_dir, "bench_lr", port)
        if plan.server == "bentoml":
            return servers.bentoml_server(self.models, venv, self.workdir, port)
        if plan.server == "mlserver":
            batching = {"bench_rf": MLSERVER_BATCHING}
            return servers.mlserver_server(self.models, venv, self.workdir, port, batching)
        raise ValueError(f"unknown server {plan.server!r}")

    def measure(
        self, spec: servers.ServerSpec, plan: Plan, scenario: Scenario, server_pid: int
    ) -> report.Measurement:
        """Probe once, then wrk (warm-up, measured run) and/or the timing client."""
        endpoint = spec.endpoints[scenario.model]
        url = spec.url(endpoint.path)
        load.probe(url, endpoint.body)
        cpus = LOAD_CPUS if (plan.pinned and self.pin) else None
        rps = p50 = p99 = None
        errors = requests = 0
        notes = []
        if plan.server == "mlserver" and scenario.model == "bench_rf":
            size, wait = MLSERVER_BATCHING
            notes.append(
                f"adaptive batching: max_batch_size {size}, max_batch_time {wait * 1e3:g} ms"
            )
        share = None
        if scenario.throughput:
            if self.wrk is None:
                raise RuntimeError("wrk is not installed (apt-get install wrk)")
            c = scenario.concurrency
            load.run_wrk(
                self.wrk,
                url,
                endpoint.body,
                concurrency=c,
                seconds=self.timing.warmup,
                cpus=cpus,
                nice=self.nice,
            )
            window = cpu.CpuWindow(server_pid)
            tp = load.run_wrk(
                self.wrk,
                url,
                endpoint.body,
                concurrency=c,
                seconds=self.timing.seconds,
                cpus=cpus,
                nice=self.nice,
            )
            share = window.close()
            rps, errors, requests = tp.rps, tp.errors, tp.requests
        if scenario.latency:
            window = cpu.CpuWindow(server_pid)
            lat = load.run_latency(
                url,
                endpoint.body,
                concurrency=scenario.concurrency,
                warmup=self.timing.warmup,
                seconds=self.timing.seconds,
                cpus=cpus,
                nice=self.nice,
            )
            share = share or window.close()
            p50, p99 = lat.p50_ms, lat.p99_ms
            if rps is None:
                rps = lat.rps
            else:
                notes.append(f"timing client {lat.rps:,.0f} req/s")
            errors += lat.errors
            requests += lat.requests
            if lat.errors:
                notes.append(lat.detail)
        if share is not None:
            notes.append(share.describe())
        return report.Measurement(
            plan.server,
            plan.variant,
            scenario.name,
            rps=rps,
            p50_ms=p50,
            p99_ms=p99,
            errors=errors,
            requests=requests,
            note="; ".join(notes),
        )

    def run_plan(
        self, plan: Plan, advance: Callable[[str], None], log: Callable[[str], None]
    ) -> report.ServerRun:
        run = report.ServerRun(plan.server, plan.variant, plan.workers, plan.pinned and self.pin)
        process: procs.ServerProcess | None = None
        try:
            advance(f"{plan.server} ({plan.variant}): preparing")
            spec = self.spec_for(plan, log)
            cpus = SERVER_CPUS if (plan.pinned and self.pin) else None
            name = f"{plan.server}-{plan.variant.replace(' ', '_')}-{'pinned' if cpus else 'free'}"
            process = procs.ServerProcess(
                name,
                procs.pinned(spec.cmd, cpus, self.nice),
                spec.env,
                DATA / "logs" / f"{name}.log",
            )
            advance(f"{plan.server} ({plan.variant}): starting")
            process.start(cwd=spec.cwd, nice=self.nice)
            process.wait_ready(spec.url(spec.ready_path), spec.startup_timeout)
            for scenario_name in plan.scenarios:
                advance(f"{plan.server} ({plan.variant}): {scenario_name}")
                scenario = SCENARIOS[scenario_name]
                try:
                    run.measurements.append(self.measure(spec, plan, scenario, process.pid))
                except RuntimeError as exc:
                    run.measurements.append(
                        report.Measurement(
                            plan.server, plan.variant, scenario_name, failed=_one_line(str(exc))
                        )
                    )
                if not process.alive():
                    raise RuntimeError(
                        f"server exited during {scenario_name}: {process.log_tail()}"
                    )
        except (RuntimeError, OSError, ValueError) as exc:
            reason = _one_line(str(exc))
            done = {m.scenario for m in run.measurements}
            run.measurements.extend(
                report.Measurement(plan.server, plan.variant, s, failed=reason)
                for s in plan.scenarios
                if s not in done
            )
            run = dataclasses.replace(run, failed=reason)
        finally:
            if process is not None:
                process.stop()
        if process is not None:
            memory = process.memory()
            run = dataclasses.replace(
                run,
                tree_peak_mb=memory.tree_peak_mb,
                process_peak_mb=memory.process_peak_mb,
                processes=memory.processes,
            )
        return run


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


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


def render_doc(
    bench: Bench, runs: list[report.ServerRun], args: argparse.Namespace, started: dict[str, str]
) -> str:
    from importlib.metadata import version

    import livemodel

    pinning = (
        "servers on core 0, load generators on core 1 (taskset)"
        if bench.pin
        else "none (taskset missing or a single core)"
    )
    lines = [
        f"Run with `.venv/bin/python benchmarks/serve.py{' --quick' if args.quick else ''}"
        f"{' --only ' + args.only if args.only else ''}` on {started['date']}; "
        "method and caveats in [benchmarks/README.md](../benchmarks/README.md).",
        "",
        f"- Machine: {started['cpu']}, {started['cores']} cores, {started['ram']} RAM, "
        f"Linux {started['kernel']}, Python {started['python']}; load average at start "
        f"{started['load average at start']} (a shared machine: other work ran beside it).",
        f"- Pinning: {pinning}; "
        "the scaling rows are not pinned (server and load share both cores). "
        f"Servers and load generators ran at nice {bench.nice} (and so did their sessions' "
        "autogroups); the notes give the cores "
        "each side used during the measured run, and how much went to other processes.",
        f"- Timing: {bench.timing.warmup:g} s warm-up, then {bench.timing.seconds:g} s of wrk "
        f"(throughput, status counts) and {bench.timing.seconds:g} s of the per-request timing "
        "client (p50/p99) per scenario.",
        f"- Versions: livemodel {livemodel.__version__}, scikit-learn {version('scikit-learn')}, "
        f"pandas {version('pandas')}, numpy {version('numpy')}, uvicorn {version('uvicorn')}"
        + "".join(
            f"; {', '.join(f'{k} {v}' for k, v in vs.items() if k != 'scikit-learn')}"
            for vs in bench.versions.values()
        )
        + f"; {_wrk_version(bench.wrk)}.",
        "- Request: one record of 10 float features; the floor and livemodel get "
        '`{"records": [{...}]}`, BentoML the same JSON, MLflow `{"dataframe_records": [...]}`, '
        "MLServer an Open Inference Protocol v2 body decoded as a DataFrame (`content_type: pd`); "
        "every server answers `predict_proba`.",
        "",
        "### Targets (livemodel)",
        "",
    ]
    target_table = report.Table(
        "Issue targets, judged on this run",
        ["target", "threshold", "measured", "verdict"],
        [[t.name, t.threshold, t.measured, t.verdict] for t in report.targets(runs)],
    )
    lines += [report.markdown_table(target_table), "", "### Results", ""]
    for table in report.build_tables(runs):
        lines += [report.markdown_table(table), ""]
    return "\n".join(lines)


def _wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "wrk missing"
    import subprocess

    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
    return out.split(" [")[0].strip() or "wrk"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(ALL_SERVERS)
    unknown = sorted(set(only) - set(ALL_SERVERS))
    if unknown:
        parser.error(
            f"unknown server(s) {', '.join(unknown)}; choose from {', '.join(ALL_SERVERS)}"
        )
    console = Console()
    timing = Timing(0.5, 2.0) if args.quick else Timing(2.0, 10.0)
    started = report.machine_info()
    plans = [p for p in PLANS if p.server in only]
    steps = sum(2 + len(p.scenarios) for p in plans)
    DATA.mkdir(parents=True, exist_ok=True)
    runs: list[report.ServerRun] = []
    with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir / "models")
        bench = Bench(models, workdir, timing, pin=procs.pinning_available(), nice=args.nice)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        )
        try:
            with progress:
                task = progress.add_task("starting", total=steps)

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
            console.print("[yellow]interrupted: servers stopped, partial results below[/]")
        doc = render_doc(bench, runs, args, started)
    for table in [
        report.Table(
            "Targets",
            ["target", "threshold", "measured", "verdict"],
            [[t.name, t.threshold, t.measured, t.verdict] for t in report.targets(runs)],
        ),
        *report.build_tables(runs),
    ]:
        console.print(rich_table(table))
    (DATA / "results.json").write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
    if not args.no_docs:
        report.replace_section(DOC, doc)
        console.print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
