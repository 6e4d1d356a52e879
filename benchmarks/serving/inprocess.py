"""What one prediction costs inside a Python process, without any server: run as a script.

Times, per model, building a one-row DataFrame from a record; building it and calling
``predict_proba`` on it (what the floor server does per request); and building a float array
of the same row and calling ``predict_proba`` on that. Prints JSON (microseconds, median of
repeated batches). No server answers faster than this.

    python inprocess.py --models DIR --record '{"f0": 0.1, ...}'
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _median_us(fn: Callable[[], Any], budget_s: float = 0.6) -> float:
    fn()
    per_call = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(20):
            fn()
        per_call.append((time.perf_counter() - start) / 20 * 1e6)
    return statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    record = json.loads(args.record)
    # The array path is meant to lack column names.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    out: dict[str, dict[str, float]] = {}
    for path in sorted(args.models.glob("*.pkl")):
        with path.open("rb") as handle:
            model = pickle.load(handle)
        columns = list(model.feature_names_in_)

        def via_frame(m: Any = model) -> Any:
            return m.predict_proba(pd.DataFrame.from_records([record]))

        def via_array(m: Any = model, cols: list[str] = columns) -> Any:
            return m.predict_proba(np.asarray([[record[c] for c in cols]], dtype=np.float64))

        out[path.stem] = {
            "frame_from_record_us": _median_us(partial(pd.DataFrame.from_records, [record])),
            "frame_predict_us": _median_us(via_frame),
            "array_predict_us": _median_us(via_array),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
