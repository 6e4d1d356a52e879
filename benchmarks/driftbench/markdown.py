"""The drift section of ``docs/benchmarks.md``, rendered from one run's results.

Only the text between ``<!-- drift:start -->`` and ``<!-- drift:end -->`` is ours (the
serving benchmark owns the rest of the file): :func:`splice` re-reads the file right
before writing and replaces that span, or appends the markers when they are absent.
"""

from __future__ import annotations

import pstats
from io import StringIO
from pathlib import Path
from typing import Any

from driftbench.data import CARDINALITIES, REFERENCE_ROWS, SHIFTED
from driftbench.results import (
    RSS_1M_MB,
    RSS_10M_MB,
    SCALING_10M,
    TIME_VS_FLOOR,
    TOOL_LABELS,
    Target,
    ToolRow,
    ordered,
    size_label,
)

START, END = "<!-- drift:start -->", "<!-- drift:end -->"


def splice(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text and text.index(START) < text.index(END):
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def size_table(rows: dict[str, ToolRow], floor_s: float | None) -> str:
    lines = [
        "| tool | median wall s (runs) | x floor | CPU s | peak RSS MB | flagged columns "
        "| false alarms | misses |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for tool, row in rows.items():
        label = TOOL_LABELS[tool]
        rss = "-" if row.peak_rss_mb is None else f"{row.peak_rss_mb:.0f}"
        if not row.finished:
            lines.append(f"| {label} | did not finish ({row.error}) | - | - | {rss} | - | - | - |")
            continue
        median = row.median_s
        ratio = "-" if not (floor_s and median) else f"{median / floor_s:.1f}"
        runs = f"{_fmt_s(median)} ({len(row.ok_runs)})"
        cpu = _fmt_s(row.median_cpu_s)
        if tool == "floor":
            lines.append(f"| {label} | {runs} | 1.0 | {cpu} | {rss} | (no verdicts) | - | - |")
            continue
        note = "" if row.consistent else " (runs disagreed; first run shown)"
        lines.append(
            f"| {label} | {runs} | {ratio} | {cpu} | {rss} | {ordered(row.flagged)}{note} "
            f"| {ordered(row.false_alarms)} | {ordered(row.misses)} |"
        )
    return "\n".join(lines)


def targets_table(found: list[Target]) -> str:
    lines = ["| target | measured | result |", "|---|---|---|"]
    for t in found:
        verdict = "n/a" if t.passed is None else ("**pass**" if t.passed else "**FAIL**")
        lines.append(f"| {t.name} | {t.measured} | {verdict} |")
    return "\n".join(lines)


def phases_table(rows: dict[int, dict[str, ToolRow]], tool: str) -> str:
    sizes = [s for s in sorted(rows) if tool in rows[s] and rows[s][tool].finished]
    if not sizes:
        return ""
    names: list[str] = []
    for s in sizes:
        names += [n for n in rows[s][tool].phases_median() if n not in names]
    head = "| phase | " + " | ".join(size_label(s) for s in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = [f"{rows[s][tool].phases_median().get(name, 0.0):.2f}" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_table(stats_path: Path, limit: int = 12) -> str:
    """The top ``limit`` functions by own time, as a markdown table."""
    stats = pstats.Stats(str(stats_path), stream=StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}" if line else file
        entries.append((tt, ct, nc, f"{func} ({where})"))
    entries.sort(reverse=True)
    lines = [
        f"Profiled run: {total:.2f} s inside `run()` (imports included).",
        "",
        "| function | calls | own s | cumulative s |",
        "|---|---:|---:|---:|",
    ]
    for tt, ct, nc, name in entries[:limit]:
        lines.append(f"| `{name}` | {nc} | {tt:.3f} | {ct:.3f} |")
    return "\n".join(lines)


# (label, path fragment, function name) of the steps worth naming in the profile
KEY_FUNCTIONS = (
    ("import livemodel.stats.drift (scipy, pandas)", "livemodel/stats/drift.py", "<module>"),
    ("pyarrow.parquet.read_table (reference)", "pyarrow/parquet/core.py", "read_table"),
    ("ProfileSpec.from_reference", "livemodel/stats/profile.py", "from_reference"),
    ("Profile.update (all batches, both files)", "livemodel/stats/profile.py", "update"),
    ("NumericColumnProfile.update", "livemodel/stats/columns.py", "update"),
    ("bucket_counts (histograms)", "livemodel/stats/sketch.py", "bucket_counts"),
    ("factorize_categories", "livemodel/stats/columns.py", "factorize_categories"),
    ("RecordBatch.to_pandas", "pyarrow/pandas_compat.py", "table_to_dataframe"),
    ("compare_profiles", "livemodel/stats/drift.py", "compare_profiles"),
)  # fmt: skip


def key_functions_table(stats_path: Path) -> str:
    """Cumulative seconds of the steps in :data:`KEY_FUNCTIONS` (where several functions
    match, e.g. the two ``update`` methods of ``columns.py``, the largest is shown)."""
    stats = pstats.Stats(str(stats_path), stream=StringIO())
    table = stats.stats  # type: ignore[attr-defined]
    lines = ["| step | calls | cumulative s |", "|---|---:|---:|"]
    for label, fragment, func in KEY_FUNCTIONS:
        hits = [
            (ct, nc)
            for (file, _line, name), (_cc, nc, _tt, ct, _callers) in table.items()
            if name == func and file.endswith(fragment)
        ]
        if hits:
            ct, nc = max(hits)
            lines.append(f"| {label} | {nc} | {ct:.3f} |")
    return "\n".join(lines)


def section(
    *,
    rows: dict[int, dict[str, ToolRow]],
    found: list[Target],
    machine: dict[str, str],
    versions: dict[str, dict[str, str]],
    methods: dict[str, str],
    limits: str,
    command: str,
    analysis: list[str],
    profile: str | None,
) -> str:
    out: list[str] = [
        "## Drift report: livemodel against Evidently, NannyML and a numpy floor",
        "",
        f"Generated by `{command}` (`benchmarks/drift.py`); do not edit by hand between the "
        "drift markers.",
        "",
        "**Data** (seeded, `benchmarks/driftbench/data.py`): 20 numeric columns (normal, "
        "lognormal, uniform, exponential, Poisson counts) with about 5% NaN and 5 "
        f"categorical string columns of cardinality {', '.join(map(str, CARDINALITIES))} "
        f"with about 5% nulls. Reference: {REFERENCE_ROWS:,} rows. Current: the first 100k, "
        "1M or 10M rows of one stream that differs from the reference in exactly "
        f"{len(SHIFTED)} columns: `n01` mean +0.25 sd, `n08` (lognormal) +0.25 sd, `n04` "
        "sd x1.3, `c1` and `c3` category frequencies flattened (Jensen-Shannon distance "
        "0.15 and 0.17). Parquet, snappy, 100k-row row groups.",
        "",
        "**Measured**: each tool in a fresh process, from interpreter start to having "
        "per-column verdicts (imports and Parquet reading included); wall time is the "
        "median over the runs shown, CPU s the median user + system time, peak RSS the "
        "largest over them (max of `/usr/bin/time -v` and the summed RSS of the process "
        "tree polled every 50 ms). Runs of the tools are interleaved so machine load hits "
        f"all alike. Limits: {limits}.",
        "",
        "**What each tool runs**:",
        "",
    ]
    for tool, text in methods.items():
        out.append(f"- {TOOL_LABELS[tool]}: {text}")
    out += ["", "**Machine**: " + ", ".join(f"{k} {v}" for k, v in machine.items()), ""]
    out += ["**Versions**: " + "; ".join(
        f"{TOOL_LABELS[t]}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
        for t, vs in versions.items()
    ), ""]  # fmt: skip
    for size, by_tool in sorted(rows.items()):
        floor = by_tool.get("floor")
        out += [
            f"### {size_label(size)} current rows (reference {REFERENCE_ROWS:,})",
            "",
            size_table(by_tool, floor.median_s if floor else None),
            "",
        ]
    out += [
        "### Targets",
        "",
        f"At 1M rows livemodel <= {TIME_VS_FLOOR}x the floor measured in the same run and "
        f"peak RSS < {RSS_1M_MB:.0f} MB; at 10M rows < {SCALING_10M:.0f}x its own 1M time "
        f"and peak RSS < {RSS_10M_MB:.0f} MB; at every size exactly the shifted columns.",
        "",
        targets_table(found),
        "",
    ]
    phases = phases_table(rows, "livemodel")
    if phases:
        out += ["### Where livemodel's time goes (seconds, medians)", "", phases, ""]
    if analysis:
        out += ["### Reading the numbers", ""] + [f"- {a}" for a in analysis] + [""]
    if profile:
        out += ["### cProfile of the livemodel child at 1M rows", "", profile, ""]
    return "\n".join(out)


def collect_versions(rows: dict[int, dict[str, ToolRow]]) -> dict[str, dict[str, str]]:
    versions: dict[str, dict[str, str]] = {}
    for by_tool in rows.values():
        for tool, row in by_tool.items():
            payload: dict[str, Any] = row.payload
            if payload.get("versions"):
                versions.setdefault(tool, payload["versions"])
    return versions


def collect_methods(rows: dict[int, dict[str, ToolRow]]) -> dict[str, str]:
    methods: dict[str, str] = {}
    for size in sorted(rows, reverse=True):  # the largest finished run names the chunking
        for tool, row in rows[size].items():
            if row.payload.get("method") and tool not in methods:
                methods[tool] = str(row.payload["method"])
    return {t: methods[t] for t in TOOL_LABELS if t in methods}
