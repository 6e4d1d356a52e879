"""Child process: a local Ray cluster of 2 CPUs whose two workers have imported what a
monitoring task imports, and nothing else: Ray's own footprint, for the memory column.

Prints nothing; writes a JSON result (the phases)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def warm(seconds: float) -> int:
    """What a monitoring task imports, then a pause that keeps both workers busy."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    import livemodel.monitor.partitions
    import livemodel.monitor.summary  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from livemodel.engine import map_partitions, ray_session

    phases: dict[str, float] = {"imports": time.perf_counter() - START}
    mark = time.perf_counter()
    with ray_session(num_cpus=2, object_store_mb=512):
        phases["ray_start"] = time.perf_counter() - mark
        mark = time.perf_counter()
        workers = set(map_partitions(warm, [3.0, 3.0, 3.0, 3.0], engine="ray"))
        phases["tasks"] = time.perf_counter() - mark
    args.out.write_text(json.dumps({"workers": len(workers), "phases": phases}))


if __name__ == "__main__":
    main()
