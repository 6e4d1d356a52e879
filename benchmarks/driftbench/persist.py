"""The raw results of a run as JSON (``benchmarks/.data/drift-results.json``), so the docs
section can be re-rendered (``--render-only``) without running anything again."""

from __future__ import annotations

import json
from pathlib import Path

from driftbench.measure import RunResult
from driftbench.results import ToolRow, parse_size, size_label


def save(path: Path, info: dict[str, str], rows: dict[int, dict[str, ToolRow]],
         extra: dict[str, object]) -> None:  # fmt: skip
    dump = {
        "machine": info,
        **extra,
        "rows": {
            size_label(s): {
                t: {"runs": [vars(r) for r in row.runs], "skipped": row.skipped}
                for t, row in by_tool.items()
            }
            for s, by_tool in rows.items()
        },
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(dump, indent=1, default=str))


def load(path: Path) -> tuple[dict[str, str], dict[int, dict[str, ToolRow]], dict[str, object]]:
    dump = json.loads(path.read_text())
    rows: dict[int, dict[str, ToolRow]] = {}
    for label, by_tool in dump.pop("rows").items():
        size = parse_size(label)
        rows[size] = {}
        for tool, entry in by_tool.items():
            row = ToolRow(tool, size, skipped=entry.get("skipped"))
            row.runs = [RunResult(**run) for run in entry["runs"]]
            rows[size][tool] = row
    return dump.pop("machine"), rows, dump
