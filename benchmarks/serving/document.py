"""The Markdown of the serving section of ``docs/benchmarks.md``."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from serving import report
from serving.runner import MLSERVER_BATCHING, Bench


@dataclass(frozen=True)
class RunInfo:
    """Everything the section says besides the results; saved with them for ``--render-only``."""

    command: str
    started: dict[str, str]
    pin: bool
    nice: int
    warmup: float
    seconds: float
    versions: str
    costs: dict[str, dict[str, float]] | str

    @classmethod
    def of(
        cls,
        bench: Bench,
        command: str,
        started: dict[str, str],
        costs: dict[str, dict[str, float]] | str,
    ) -> RunInfo:
        return cls(
            command=command,
            started=started,
            pin=bench.pin,
            nice=bench.nice,
            warmup=bench.timing.warmup,
            seconds=bench.timing.seconds,
            versions=_versions(bench),
            costs=costs,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        return cls(**data)


_REQUESTS = (
    "- Request: one record of 10 float features (the model was fitted on a DataFrame with named "
    'columns). The floor, livemodel and BentoML get `{"records": [{...}]}`, MLflow '
    '`{"dataframe_records": [{...}]}`, MLServer an Open Inference Protocol v2 body with one '
    "input per column decoded into a DataFrame (`content_type: pd`); every server calls "
    "`predict_proba`. Two reference rows skip the DataFrame: *floor (numpy input)* predicts on a "
    "float array, *mlserver (numpy tensor)* gets one `[1, 10]` FP64 tensor."
)


def _versions(bench: Bench) -> str:
    import livemodel

    parts = [
        f"livemodel {livemodel.__version__}",
        f"scikit-learn {version('scikit-learn')} (pinned in every peer venv)",
        f"pandas {version('pandas')}",
        f"numpy {version('numpy')}",
        f"uvicorn {version('uvicorn')}",
    ]
    for versions in bench.versions.values():
        parts += [f"{k} {v}" for k, v in versions.items() if k != "scikit-learn"]
    parts.append(_wrk_version(bench.wrk))
    return ", ".join(parts)


def _inprocess_table(costs: dict[str, dict[str, float]] | str) -> list[str]:
    if isinstance(costs, str):
        return [f"In-process model cost: {costs}", ""]
    rows = [
        [
            name,
            report.fmt(c["frame_from_record_us"]),
            report.fmt(c["frame_predict_us"]),
            report.fmt(c["array_predict_us"]),
        ]
        for name, c in costs.items()
    ]
    table = report.Table(
        "One prediction inside a Python process, no server (median µs, pinned like the servers)",
        ["model", "DataFrame from record", "DataFrame + predict_proba", "array + predict_proba"],
        rows,
    )
    return [report.markdown_table(table), ""]


def render_doc(info: RunInfo, runs: list[report.ServerRun]) -> str:
    started = info.started
    pinning = (
        "servers on core 0, load generators on core 1 (`taskset`)"
        if info.pin
        else "none (`taskset` missing or a single core)"
    )
    size, wait = MLSERVER_BATCHING
    lines = [
        f"Run with `{info.command}` on {started['date']}; method and caveats in "
        "[benchmarks/README.md](../benchmarks/README.md).",
        "",
        f"- Machine: {started['cpu']}, {started['cores']} cores, {started['ram']} RAM, "
        f"Linux {started['kernel']}, Python {started['python']}. Load average at start "
        f"{started['load average at start']}: a shared machine, other work ran beside the "
        "benchmark; each row's notes give the cores the server, the load generator and "
        "everyone else used during its measured run.",
        f"- Pinning: {pinning}; the scaling rows are not pinned (server and load share both "
        f"cores). Servers and load generators ran at nice {info.nice}, their sessions' "
        "autogroups too.",
        f"- Timing per scenario: {info.warmup:g} s warm-up, {info.seconds:g} s "
        f"of `wrk` (req/s, status of every response), then {info.warmup:g} s + "
        f"{info.seconds:g} s of the per-request timing client (p50/p99, status of "
        "every response). Errors count non-200 answers and socket errors of both runs.",
        f"- 1 worker each. MLServer: default `parallel_workers` (1 inference process beside the "
        f"HTTP process); adaptive batching on the forest only (`max_batch_size` {size}, "
        f"`max_batch_time` {wait * 1e3:g} ms). livemodel: its defaults (batching on).",
        f"- Versions: {info.versions}.",
        _REQUESTS,
        "",
        "### Targets (livemodel)",
        "",
    ]
    target_table = report.targets_table(runs)
    lines += [report.markdown_table(target_table), "", "### Results", ""]
    for table in report.build_tables(runs):
        lines += [report.markdown_table(table), ""]
    lines += _inprocess_table(info.costs)
    return "\n".join(lines)


def _wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "wrk missing"
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
    return out.split(" [")[0].strip() or "wrk"
