"""Evidently's ``DataDriftPreset`` with its defaults (runs in ``benchmarks/.venvs/evidently``).

Both files are read whole with ``pandas.read_parquet`` (Evidently works on in-memory
frames); column types are inferred by Evidently. ``include_tests=True`` only exposes the
per-column verdict Evidently computes anyway (a ``ValueDrift`` test fails when its
column drifted); the methods and thresholds are the preset's defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _childio import Phases, parse_args, write_result


def main() -> None:
    args = parse_args(__doc__ or "")
    phases = Phases()
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    phases.mark("import")
    reference = pd.read_parquet(args.reference)
    current = pd.read_parquet(args.current)
    phases.mark("read")
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    phases.mark("report")
    data = snapshot.dict()
    flagged, methods = [], {}
    for test in data["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if test.get("id") == "drift" and "column" in params:
            methods[params["column"]] = params.get("method")
            if test["status"] != "SUCCESS":
                flagged.append(params["column"])
    scores = {
        m["config"]["column"]: m["value"]
        for m in data["metrics"]
        if m["config"].get("type", "").endswith("ValueDrift")
    }
    phases.mark("collect")
    write_result(
        args.out,
        flagged=flagged,
        versions={"evidently": evidently.__version__, "pandas": pd.__version__},
        phases=phases,
        rows={"reference": len(reference), "current": len(current)},
        details={"methods": methods, "scores": scores},
        method="DataDriftPreset() defaults; " + ", ".join(sorted(set(map(str, methods.values())))),
    )


if __name__ == "__main__":
    main()
