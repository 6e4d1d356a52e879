"""Scale benchmark: monitoring logs of 10M and 100M predictions, local engine vs Ray, and
batch scoring against a plain pandas loop.

    .venv/bin/python benchmarks/scale.py                  # 10M and 100M rows, both engines
    .venv/bin/python benchmarks/scale.py --sizes 2M,4M --no-docs    # a quick look

Generates (once, under ``benchmarks/.data/scale/``, ~2 GB per 10M rows) a registered model
and prediction logs in the compacted-log layout (see :mod:`scalebench.data`), then times
whole child processes: ``livemodel.monitor`` over every daily window of the log (10M
predictions a day: drift of 25 columns, data quality, output drift, multivariate drift,
CBPE-estimated performance) with ``--engine local`` and ``--engine ray`` (a local Ray
cluster of 2 CPUs, started inside the measured process), and ``livemodel.batch.score``
(local and Ray) against a pandas ``predict_proba`` loop over the same Parquet file.
Wall time, CPU time and the peak of the summed RSS of the child's process tree (Ray's
raylet, GCS and workers included; shared memory is counted once per process, so this
over-states Ray) come from :mod:`driftbench.measure`. Results go to
``benchmarks/.data/scale/results.json`` and, unless ``--no-docs``, to the section between
``<!-- scale:start -->`` and ``<!-- scale:end -->`` of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from driftbench import data as driftdata  # noqa: E402
from driftbench.measure import Limits, RunResult, run_child  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: E402
from scalebench import data  # noqa: E402
from scalebench.report import section  # noqa: E402

ROOT = HERE / ".data" / "scale"
DOCS = HERE.parent / "docs" / "benchmarks.md"
PYTHON = Path(sys.executable)
console = Console(stderr=True)


def rows_of(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10M,100M", help="log sizes (whole millions)")
    parser.add_argument("--engines", default="local,ray", help="local, ray or both")
    parser.add_argument("--score-rows", default="2M", help="rows of the scoring input")
    parser.add_argument("--skip-score", action="store_true", help="no scoring runs")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--max-rss-gb", type=float, default=12.0, help="memory bound per run")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    parser.add_argument(
        "--docs-only", action="store_true", help="rewrite the docs from the last results.json"
    )
    args = parser.parse_args()
    args.size_list = sorted(rows_of(s) for s in args.sizes.split(","))
    args.engine_list = [e for e in ("local", "ray") if e in args.engines.split(",")]
    return args


def prepare_logs(sizes: list[int]) -> None:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console) as bar:  # fmt: skip
        data.ensure_model(ROOT)
        for rows in sizes:
            task = bar.add_task(f"log of {rows:,} predictions (segments)",
                                total=rows // data.SEGMENT_ROWS)  # fmt: skip
            data.ensure_log(ROOT, rows, lambda done, t=task: bar.update(t, completed=done))


def child(script: str, args: list[str], limits: Limits) -> RunResult:
    env = {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return run_child(PYTHON, HERE / "scalebench" / script, args, limits, env=env)


def main() -> None:
    args = parse_args()
    if args.docs_only:
        splice(DOCS, section(json.loads((ROOT / "results.json").read_text())))
        return
    limits = Limits(seconds=args.timeout, rss_mb=args.max_rss_gb * 1024)
    info = machine_info()
    prepare_logs(args.size_list)
    results: dict[str, Any] = {"machine": info, "monitor": [], "score": []}
    if "ray" in args.engine_list:
        console.print("an idle Ray cluster (2 warm workers) ...")
        run = child("child_ray_idle.py", [], limits)
        results["ray_idle"] = as_dict(run)
        console.print(f"  {describe(run)}")
    for rows in args.size_list:
        for engine in args.engine_list:
            console.print(f"monitor {rows:,} rows, engine {engine} ...")
            run = child("child_monitor.py", ["--root", str(ROOT), "--rows", str(rows),
                        "--engine", engine], limits)  # fmt: skip
            results["monitor"].append({"rows": rows, "engine": engine, **as_dict(run)})
            console.print(f"  {describe(run)}")
    if not args.skip_score:
        score_rows = rows_of(args.score_rows)
        source, _ = driftdata.ensure(HERE / ".data", "current", score_rows)
        for mode in ("pandas", *args.engine_list):
            console.print(f"score {score_rows:,} rows, {mode} ...")
            run = child("child_score.py", ["--root", str(ROOT), "--input", str(source),
                        "--mode", mode], limits)  # fmt: skip
            results["score"].append({"rows": score_rows, "mode": mode, **as_dict(run)})
            console.print(f"  {describe(run)}")
    info["load average at end (1/5/15 min)"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    (ROOT / "results.json").write_text(json.dumps(results, indent=1))
    text = section(results)
    console.print(text)
    if not args.no_docs:
        splice(DOCS, text)


def as_dict(run: RunResult) -> dict[str, Any]:
    return {"wall_s": run.wall_s, "cpu_s": run.cpu_s, "peak_rss_mb": run.peak_rss_mb,
            "peak_pss_mb": run.peak_pss_mb, "error": run.error, "payload": run.payload}  # fmt: skip


def describe(run: RunResult) -> str:
    if run.error:
        return f"did not finish: {run.error}"
    return (f"{run.wall_s:.1f} s wall, {run.cpu_s or 0:.1f} s CPU, {run.peak_rss_mb:.0f} MB "
            f"peak RSS, {run.peak_pss_mb or 0:.0f} MB peak PSS")  # fmt: skip


def machine_info() -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    from drift import machine

    return machine()


START, END = "<!-- scale:start -->", "<!-- scale:end -->"


def splice(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{text.rstrip()}\n{END}"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + block + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(current)


if __name__ == "__main__":
    main()
