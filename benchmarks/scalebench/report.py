"""The scale section of ``docs/benchmarks.md``, rendered from one run's results."""

from __future__ import annotations

from typing import Any

RSS_LIMIT_MB = 1536


def _ok(row: dict[str, Any]) -> bool:
    return not row.get("error")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rate(rows: int, seconds: float | None) -> str:
    return "-" if not seconds else f"{rows / seconds:,.0f}"


def monitor_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| log rows | engine | daily windows | wall s | monitor phase s | rows/s (phase) "
        "| CPU s | peak RSS MB (tree) | peak PSS MB (tree) | flagged columns |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if not _ok(r):
            out.append(f"| {r['rows']:,} | {r['engine']} | - | did not finish: {r['error']} "
                       "| - | - | - | - | - | - |")  # fmt: skip
            continue
        p = r["payload"]
        phase = p["phases"]["monitor"]
        out.append(
            f"| {r['rows']:,} | {r['engine']} | {p['windows']} | {r['wall_s']:.1f} "
            f"| {phase:.1f} | {_rate(p['rows'], phase)} | {r['cpu_s'] or 0:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {_mb(r.get('peak_pss_mb'))} | {', '.join(p['flagged'])} |"
        )
    return "\n".join(out)


def score_table(rows: list[dict[str, Any]]) -> str:
    pandas = next((r for r in rows if r["mode"] == "pandas" and _ok(r)), None)
    base = pandas["payload"]["phases"]["score"] if pandas else None
    out = [
        "| scorer | rows | scored / flagged / rejected | wall s | scoring phase s "
        "| rows/s (phase) | vs pandas loop | peak RSS MB (tree) | peak PSS MB (tree) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        label = {"pandas": "pandas loop (no validation, no log)",
                 "local": "livemodel score --engine local",
                 "ray": "livemodel score --engine ray"}[r["mode"]]  # fmt: skip
        if not _ok(r):
            out.append(f"| {label} | {r['rows']:,} | did not finish: {r['error']} "
                       "| - | - | - | - | - | - |")  # fmt: skip
            continue
        p = r["payload"]
        phase = p["phases"]["score"]
        counts = f"{p['scored']:,} / {p.get('flagged', 0):,} / {p.get('rejected', 0):,}"
        ratio = "-" if not base else f"{base / phase:.2f}x"
        out.append(
            f"| {label} | {p['rows']:,} | {counts} | {r['wall_s']:.1f} | {phase:.1f} "
            f"| {_rate(p['rows'], phase)} | {ratio} | {r['peak_rss_mb']:.0f} "
            f"| {_mb(r.get('peak_pss_mb'))} |"
        )
    return "\n".join(out)


def targets(
    rows: list[dict[str, Any]], idle: dict[str, Any] | None = None
) -> tuple[str, dict[str, float]]:
    """The issue's two targets per engine: linear time, RSS under 1.5 GB at the largest
    (for Ray, with the footprint of an idle cluster beside it)."""
    out = ["| target | engine | measured | result |", "|---|---|---|---|"]
    facts: dict[str, float] = {}
    sizes = sorted({r["rows"] for r in rows})
    for engine in ("local", "ray"):
        done = {r["rows"]: r for r in rows if r["engine"] == engine and _ok(r)}
        if len(sizes) >= 2 and sizes[0] in done and sizes[-1] in done:
            small, big = done[sizes[0]], done[sizes[-1]]
            t_small = small["payload"]["phases"]["monitor"]
            t_big = big["payload"]["phases"]["monitor"]
            ratio = t_big / t_small
            expected = sizes[-1] / sizes[0]
            facts[f"{engine}_ratio"] = ratio
            verdict = "**pass**" if ratio <= 1.25 * expected else "**FAIL**"
            out.append(
                f"| time grows linearly ({sizes[-1] // sizes[0]}x rows) | {engine} "
                f"| {t_big:.0f} s / {t_small:.0f} s = {ratio:.1f}x | {verdict} |"
            )
        if sizes and sizes[-1] in done:
            rss = done[sizes[-1]]["peak_rss_mb"]
            pss = done[sizes[-1]].get("peak_pss_mb")
            facts[f"{engine}_rss"] = rss
            verdict = "**pass**" if rss < RSS_LIMIT_MB else "**FAIL**"
            base = ""
            if engine == "ray" and idle and _ok(idle):
                base = (
                    f"; an idle cluster with 2 warm workers alone: {idle['peak_rss_mb']:.0f} "
                    f"MB RSS, {_mb(idle.get('peak_pss_mb'))} MB PSS"
                )
            out.append(
                f"| peak RSS < 1.5 GB at {sizes[-1]:,} rows | {engine} | {rss:.0f} MB summed "
                f"RSS of the process tree ({_mb(pss)} MB PSS){base} | {verdict} |"
            )
    return "\n".join(out), facts


def extrapolation(rows: list[dict[str, Any]], idle: dict[str, Any] | None = None) -> str:
    """How the largest run's numbers carry to a cluster (a paragraph, from the numbers)."""
    done = {(r["engine"], r["rows"]): r for r in rows if _ok(r)}
    size = max((n for _, n in done), default=0)
    local, ray = done.get(("local", size)), done.get(("ray", size))
    if not local or not ray:
        return ""
    small = min(n for _, n in done)
    small_pss = done.get(("ray", small), {}).get("peak_pss_mb")
    t_local = local["payload"]["phases"]["monitor"]
    t_ray = ray["payload"]["phases"]["monitor"]
    per_core = size / (t_ray * 2)
    speedup = t_local / t_ray
    day = 1_000_000_000
    return (
        "**How it extrapolates.** The monitoring work is one task per daily window and group "
        "of log segments; tasks share nothing and their summaries are small, so the "
        "summarising phase divides by the number of cores until the driver's per-window "
        f"calculations (drift tests, PCA and domain-classifier drift on a 100k-row sample, "
        f"CBPE) dominate. Here Ray on 2 cores ran {size:,} rows at {per_core:,.0f} rows/s "
        f"per core, {speedup:.2f}x the local engine, not 2x: the local engine already uses "
        "more than one core (DuckDB reads with its own threads), and on 2 cores the "
        "driver's per-window calculations and Ray's own processes take turns with the "
        "tasks. At that per-core rate a billion predictions a day would take about "
        f"{day / per_core / 3600:.1f} core-hours: about {day / per_core / 64 / 60:.1f} "
        "minutes on a 64-core Ray cluster, plus the "
        "per-window calculation on the driver, which grows with the number of windows and "
        "segments monitored, not with rows. The cluster must read the same log (a shared "
        "filesystem, or segments shipped to object storage with `LIVEMODEL_LOG_URL`). "
        "Memory per task is bounded by the chunk size and the row samples (the local "
        f"engine's whole process peaked at {local['peak_rss_mb']:,.0f} MB at {size:,} rows); "
        "a Ray cluster adds its own processes (GCS, raylet, agents, Ray Data's actors, a "
        "worker per core with the scientific stack, each task reading with one DuckDB "
        "thread and at most 256 MB of DuckDB memory): "
        f"{_mb(ray.get('peak_pss_mb'))} MB PSS in all at {size:,} rows here, "
        f"{_mb(small_pss)} MB at {small:,}, so it does not grow with the log but it does not "
        f"fit the 1.5 GB target either{_idle_clause(idle)}. Batch scoring partitions by "
        "Parquet row groups and scales the same way; its per-row cost is the model's "
        "`predict_proba` plus validation and logging."
    )


def _idle_clause(idle: dict[str, Any] | None) -> str:
    if not idle or not _ok(idle):
        return ""
    return (
        f": the same cluster with nothing to read peaks at {_mb(idle.get('peak_pss_mb'))} MB "
        "PSS (its two workers having imported the monitoring code)"
    )


def section(results: dict[str, Any]) -> str:
    info = results["machine"]
    machine = ", ".join(f"{k} {v}" for k, v in info.items())
    idle = results.get("ray_idle")
    table, _ = targets(results["monitor"], idle)
    parts = [
        "## Scale: monitoring 10M and 100M logged predictions, batch scoring",
        "Generated by `benchmarks/scale.py` (method in its docstring and in "
        "`benchmarks/scalebench/`); do not edit by hand between the scale markers.",
        "",
        "**Data**: a registered logistic-regression pipeline over the drift benchmark's 25 "
        "columns (20 numeric with NaNs, 5 categorical); its prediction log in the compacted "
        "layout, 1M predictions per Parquet segment, 10M predictions a day, features from "
        "the drift benchmark's *current* stream (5 shifted columns: n01, n04, n08, c1, c3). "
        "The monitor runs every daily window: drift and quality of 25 features, output "
        "drift, PCA-reconstruction and domain-classifier drift, CBPE-estimated accuracy "
        "and AUC. Each run is a fresh process; the Ray runs start a local cluster of 2 "
        "CPUs inside it (start-up excluded from the phase column, included in wall).",
        "",
        f"**Machine**: {machine}",
        "",
        "### Monitoring a log",
        monitor_table(results["monitor"]),
        "",
        table,
    ]
    if results.get("score"):
        parts += ["", "### Batch scoring", score_table(results["score"])]
    paragraph = extrapolation(results["monitor"], idle)
    if paragraph:
        parts += ["", paragraph]
    return "\n".join(parts) + "\n"
