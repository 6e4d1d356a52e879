"""Plain statements for the docs, derived from the measured numbers of one run."""

from __future__ import annotations

from driftbench.results import ToolRow, size_label

# Whole-process numbers at 1M rows measured earlier on this machine kind, quieter then.
ORIENTATION = (
    "an earlier measurement at 1M rows on a quieter machine of this kind gave Evidently "
    "45 s and 2.1 GB, NannyML 6.7 s and 1.3 GB, the floor 1.05 s."
)


def _phase(row: ToolRow, name: str) -> float:
    return row.phases_median().get(name, 0.0)


def statements(rows: dict[int, dict[str, ToolRow]]) -> list[str]:
    notes: list[str] = []
    for size in sorted(rows):
        lm, floor = rows[size].get("livemodel"), rows[size].get("floor")
        if not (lm and lm.finished and floor and floor.finished):
            continue
        total, cpu = lm.median_s or 0.0, lm.median_cpu_s
        cpu_text = f" ({cpu:.2f} s CPU)" if cpu is not None else ""
        floor_cpu = f" ({floor.median_cpu_s:.2f} s CPU)" if floor.median_cpu_s else ""
        notes.append(
            f"{size_label(size)}: livemodel {total:.2f} s{cpu_text}: importing "
            f"{_phase(lm, 'import'):.2f} s, reading + profiling the reference "
            f"{_phase(lm, 'read reference') + _phase(lm, 'profile reference'):.2f} s, "
            f"streaming + profiling the current file {_phase(lm, 'read+profile current'):.2f}"
            f" s, comparing {_phase(lm, 'compare+quality'):.2f} s. The floor: "
            f"{floor.median_s or 0.0:.2f} s{floor_cpu} in all."
        )
    one = rows.get(1_000_000, {})
    lm1, fl1 = one.get("livemodel"), one.get("floor")
    if lm1 and fl1 and lm1.finished and fl1.finished and lm1.median_s and fl1.median_s:
        imp = _phase(lm1, "import")
        fixed = imp + _phase(lm1, "read reference") + _phase(lm1, "profile reference")
        notes.append(
            f"At 1M rows the fixed costs (imports {imp:.2f} s, the 100k-row reference "
            f"{fixed - imp:.2f} s) come to {fixed / fl1.median_s:.1f}x the floor's whole run "
            "before a current row is read: `import livemodel.stats.drift` loads pandas and "
            "scipy.stats (scipy builds its distributions' docstrings at import), the floor "
            "only numpy and pyarrow. The per-row cost is mostly the KLL quantile sketches "
            "(20 numeric columns x 1.1M values; see the timed steps below), then histograms, "
            "Arrow-to-pandas conversion and categorical factorizing."
        )
    ten = rows.get(10_000_000, {})
    lm10, fl10 = ten.get("livemodel"), ten.get("floor")
    if lm10 and lm10.finished and lm1 and lm1.finished and lm1.median_s and lm10.median_s:
        cpu_note = ""
        if lm10.median_cpu_s and lm1.median_cpu_s:
            cpu_note = f" ({lm10.median_cpu_s / lm1.median_cpu_s:.1f}x in CPU time)"
        notes.append(
            f"10M rows: {lm10.median_s / lm1.median_s:.1f}x the 1M wall time{cpu_note} for 10x "
            "the rows, the fixed costs being paid once. Memory stays flat because one "
            "100k-row batch is alive at a time (with pyarrow's default `pre_buffer=True`, "
            "`iter_batches` would keep every row group's bytes, about 1.7 GB at 10M rows)."
            + (
                f" The floor reads whole tables ({fl10.peak_rss_mb:.0f} MB at 10M rows), "
                "which is why streaming livemodel beats it there."
                if fl10 and fl10.finished and fl10.peak_rss_mb
                else ""
            )
        )
    if any(r.finished and r.median_cpu_s and r.median_s and r.median_s > 2 * r.median_cpu_s
           for by_tool in rows.values() for r in by_tool.values()):  # fmt: skip
        notes.append(
            "Wall times well above CPU times mean the machine was busy (2 shared cores): "
            "compare tools within one table, and prefer the CPU column across runs. "
            f"For orientation, {ORIENTATION}"
        )
    for tool, label in (("evidently", "Evidently"), ("nannyml", "NannyML")):
        finished = [s for s in sorted(rows) if tool in rows[s] and rows[s][tool].finished]
        dnf = [s for s in sorted(rows) if tool in rows[s] and not rows[s][tool].finished]
        parts = []
        for s in finished:
            row = rows[s][tool]
            parts.append(
                f"{size_label(s)}: {len(row.false_alarms or ())} false alarms, "
                f"{len(row.misses or ())} misses"
            )
        for s in dnf:
            parts.append(f"{size_label(s)}: did not finish ({rows[s][tool].error})")
        if parts:
            notes.append(f"{label}: " + "; ".join(parts) + ".")
    if any("nannyml" in r and r["nannyml"].finished and r["nannyml"].false_alarms
           for r in rows.values()):  # fmt: skip
        notes.append(
            "NannyML's default alert threshold is the mean + 3 standard deviations of the "
            "statistic over the reference's own 10 chunks (10k rows each here): a band "
            "estimated from 10 values, checked against 10 current chunks per column. With "
            "current chunks as small as the reference's (100k current rows) a few unchanged "
            "columns cross it by chance; with 100k-row chunks (1M current rows) the "
            "statistic is steadier. Smoke runs with 2k- and 5k-row chunks (`--quick`) "
            "flagged every column."
        )
    return notes
