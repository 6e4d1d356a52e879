"""CPU cost of the steps inside ``NumericColumnProfile.update`` that cProfile cannot see.

cProfile attributes numpy ufuncs and the KLL sketch's C++ ``update`` to the calling
Python function's own time, so this times them one by one on 1M finite float64 values
(a normal sample with 5% NaN), in this process, with ``time.process_time``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def _cpu_ms(step: Callable[[], object], repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        step()
    return (time.process_time() - start) / repeat * 1e3


def numeric_update_steps(n: int = 1_000_000, repeat: int = 5) -> dict[str, float]:
    """Milliseconds of CPU per ``n`` values for each step of a numeric column update."""
    from datasketches import kll_doubles_sketch

    from livemodel.stats.sketch import bucket_counts

    rng = np.random.default_rng(0)
    values = rng.normal(size=n)
    values[rng.random(n) < 0.05] = np.nan
    mask = np.isfinite(values)
    finite = values[mask].copy()
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, 21)))

    def sketch() -> None:
        kll_doubles_sketch(200).update(finite)

    return {
        "isfinite + isnan": _cpu_ms(lambda: (np.isfinite(values), np.isnan(values)), repeat),
        "drop missing (boolean mask)": _cpu_ms(lambda: values[mask], repeat),
        "sum, mean, sum of squares": _cpu_ms(
            lambda: (np.sum(finite), np.mean(finite), np.sum(np.square(finite - 1.0))), repeat
        ),
        "bucket_counts (20 bins)": _cpu_ms(lambda: bucket_counts(edges, finite), repeat),
        "KLL sketch update (k=200)": _cpu_ms(sketch, repeat),
    }
