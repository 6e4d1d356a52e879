"""The benchmark plan (which server runs which scenarios) and the runner that carries it out."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving import cpu, load, peers, procs, report, servers
from serving.models import BenchModels

HERE = Path(__file__).resolve().parents[1]
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
    numpy: bool = False  # floor: predict on an array; mlserver: send a numpy tensor


PLANS = (
    Plan("floor", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("floor", "numpy input", 1, True, ("lr_c32",), numpy=True),
    Plan("livemodel", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("mlflow", "1 worker", 1, True, ("lr_c32", "lr_c1")),
    Plan("bentoml", "1 worker", 1, True, ("lr_c32", "lr_c1")),
    Plan("mlserver", "1 worker", 1, True, ("lr_c32", "lr_c1", "rf_c32")),
    Plan("mlserver", "numpy tensor", 1, True, ("lr_c32",), numpy=True),
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
        self,
        models: BenchModels,
        workdir: Path,
        timing: Timing,
        *,
        pin: bool,
        nice: int,
        logs: Path,
    ) -> None:
        self.models = models
        self.logs = logs
        self.nice = nice
        self.workdir = workdir
        self.timing = timing
        self.pin = pin
        self.venvs: dict[str, Path | str] = {}  # a path, or the reason installing failed
        self.versions: dict[str, dict[str, str]] = {}
        self.livemodel_home: Path | str | None = None
        self.wrk = load.ensure_wrk()

    def inprocess_costs(self) -> dict[str, dict[str, float]] | str:
        """Per-call model costs without a server (``inprocess.py``), or why they are missing."""
        script = Path(__file__).with_name("inprocess.py")
        cmd = [sys.executable, str(script), "--models", str(self.models.directory)]
        cmd += ["--record", json.dumps(self.models.record)]
        try:
            result = procs.run_boosted(
                procs.pinned(cmd, SERVER_CPUS if self.pin else None, self.nice),
                self.nice,
                timeout=300,
            )
            if result.returncode != 0:
                return f"failed: {result.stderr.strip()[-300:]}"
            parsed: dict[str, dict[str, float]] = json.loads(result.stdout)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return f"failed: {exc}"
        return parsed

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
            return servers.mlserver_server(
                self.models, venv, self.workdir, port, batching=batching, tensor=plan.numpy
            )
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
                self.logs / f"{name}.log",
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
