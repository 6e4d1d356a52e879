"""Argument parsing and result writing shared by the child scripts (stdlib only, so it
runs in every virtual environment; the children import it by file location)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


class Phases:
    """Wall time of named phases since the interpreter started the child's main()."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 4)
        self._last = now


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--current", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON result file")
    parser.add_argument("--cprofile", type=Path, help="write cProfile stats here")
    return parser.parse_args()


def write_result(
    path: Path,
    *,
    flagged: list[str],
    versions: dict[str, str],
    phases: Phases,
    rows: dict[str, int],
    details: dict[str, Any] | None = None,
    method: str = "",
) -> None:
    payload = {
        "flagged": sorted(flagged),
        "versions": versions,
        "phases": phases.seconds,
        "rows": rows,
        "method": method,
        "details": details or {},
    }
    path.write_text(json.dumps(payload, indent=1, default=str))
