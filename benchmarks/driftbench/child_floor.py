"""The floor: read both Parquet files with pyarrow and take each numeric column's mean.

No statistics beyond that, no pandas: the least any drift tool must do is read the data.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _childio import Phases, parse_args, write_result


def main() -> None:
    args = parse_args(__doc__ or "")
    phases = Phases()
    rows = {}
    for label, path in (("reference", args.reference), ("current", args.current)):
        table = pq.read_table(path)
        rows[label] = table.num_rows
        means = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            if pa.types.is_floating(column.type):
                means[name] = float(np.nanmean(column.to_numpy()))
        phases.mark(f"read+mean {label}")
    write_result(
        args.out,
        flagged=[],
        versions={"numpy": np.__version__, "pyarrow": pa.__version__},
        phases=phases,
        rows=rows,
        method="pyarrow.parquet.read_table + numpy.nanmean per numeric column",
    )


if __name__ == "__main__":
    main()
