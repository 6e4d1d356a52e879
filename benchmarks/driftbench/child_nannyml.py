"""NannyML's ``UnivariateDriftCalculator`` with its defaults (``benchmarks/.venvs/nannyml``).

Default methods (Jensen-Shannon for continuous and for categorical columns) and default
chunking (10 chunks of each data set); thresholds are NannyML's defaults, derived from
the spread of the statistic over the reference's chunks. A column counts as flagged when
any of its current chunks raises an alert. Both files are read whole with pandas.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

from _childio import Phases, parse_args, write_result


def main() -> None:
    args = parse_args(__doc__ or "")
    phases = Phases()
    import nannyml as nml
    import pandas as pd

    phases.mark("import")
    reference = pd.read_parquet(args.reference)
    current = pd.read_parquet(args.current)
    phases.mark("read")
    columns = list(reference.columns)
    calculator = nml.UnivariateDriftCalculator(column_names=columns)
    calculator.fit(reference)
    results = calculator.calculate(current)
    phases.mark("fit+calculate")
    frame = results.filter(period="analysis").to_df()
    flagged, alerts, methods = [], {}, {}
    for column in columns:
        for method in frame[column].columns.get_level_values(0).unique():
            methods[column] = method
            count = int(frame[(column, method, "alert")].fillna(False).astype(bool).sum())
            alerts[f"{column}/{method}"] = count
            if count and column not in flagged:
                flagged.append(column)
    phases.mark("collect")
    write_result(
        args.out,
        flagged=flagged,
        versions={"nannyml": nml.__version__, "pandas": pd.__version__},
        phases=phases,
        rows={"reference": len(reference), "current": len(current)},
        details={"alerting_chunks": alerts, "chunks": len(frame), "methods": methods},
        method=f"UnivariateDriftCalculator defaults ({', '.join(sorted(set(methods.values())))}), "
        f"default chunking: {len(frame)} current chunks, flagged if any chunk alerts",
    )


if __name__ == "__main__":
    main()
