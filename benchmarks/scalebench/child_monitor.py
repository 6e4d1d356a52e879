"""Child process: ``livemodel.monitor`` over one benchmark log, local or Ray engine.

Prints nothing; writes a JSON result (rows, windows, drifted columns, phase times)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--engine", choices=("local", "ray"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from livemodel.engine import ray_session
    from livemodel.monitor.results import ALL
    from livemodel.monitor.runner import Monitor
    from livemodel.store.logreader import LogReader
    from scalebench.data import MODEL, log_root, registry, window_range

    phases: dict[str, float] = {"imports": time.perf_counter() - START}
    mark = time.perf_counter()
    since, until = window_range(args.rows)
    monitor = Monitor(registry(args.root), LogReader(log_root(args.root, args.rows)),
                      engine=args.engine)  # fmt: skip
    if args.engine == "ray":
        with ray_session(num_cpus=2, object_store_mb=512):
            phases["ray_start"] = time.perf_counter() - mark
            mark = time.perf_counter()
            result = monitor.run(MODEL, since=since, until=until, window="1d")
    else:
        result = monitor.run(MODEL, since=since, until=until, window="1d")
    phases["monitor"] = time.perf_counter() - mark
    windows = [w for w in result.windows if w.segment == ALL]
    flagged = sorted({c for w in windows for c in w.drifted_columns})
    args.out.write_text(json.dumps({
        "rows": sum(w.n_rows for w in windows),
        "windows": len(windows),
        "flagged": flagged,
        "phases": phases,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
