"""Micro-benchmark of ``livemodel.schema.validation.validate`` on serving-sized batches.

The model server validates one micro-batch of JSON-decoded records (1 to ~64 rows) per
call, so this measures exactly that, next to two references timed in the same run (the
machine is shared and noisy, so only ratios measured side by side are comparable):

* ``DataFrame(records)``: ``pd.DataFrame(records)``, what a naive server would do;
* ``DataFrame(arrays)``: ``pd.DataFrame({c: np.array([...])})``, the cost of building a
  frame of that shape from numpy arrays (the output frame alone, no checking).

Candidates are timed in interleaved rounds (each round runs every candidate ``--number``
times) and the median per-call time over ``--rounds`` rounds is reported, so a burst of
load on the machine hits all candidates alike. Times are CPU time of this process (the
server's budget is CPU time, and time spent descheduled on a busy machine is noise).
Run::

    .venv/bin/python benchmarks/validation.py            # about 20 s
    .venv/bin/python benchmarks/validation.py --rounds 50 --profile mixed-32
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import functools
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from livemodel.schema.signature import Signature, infer_signature
from livemodel.schema.validation import validate

Records = list[dict[str, Any]]


def numeric_case(rng: np.random.Generator) -> tuple[Signature, Callable[[int], Records]]:
    """Ten float columns, no nulls: the cheapest possible request."""
    names = [f"f{i}" for i in range(10)]
    train = pd.DataFrame({c: rng.uniform(-1, 1, 500) for c in names})

    def records(n: int) -> Records:
        return [{c: float(rng.uniform(-0.9, 0.9)) for c in names} for _ in range(n)]

    return infer_signature(train), records


_CARRIERS = ["UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN", "VX", "FL", "AS", "9E"]
_AIRPORTS = ["EWR", "JFK", "LGA"]
_DESTS = [f"D{i:02d}" for i in range(100)]


def mixed_case(rng: np.random.Generator) -> tuple[Signature, Callable[[int], Records]]:
    """Flight-like features: integers, nullable floats, booleans, categories, datetimes."""
    m = 2000
    hours = pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 24 * 90, m), unit="h"
    )
    dep_delay = rng.uniform(-30, 300, m)
    dep_delay[rng.random(m) < 0.05] = np.nan
    train = pd.DataFrame(
        {
            "month": np.resize(np.arange(1, 13), m),
            "day": np.resize(np.arange(1, 32), m),
            "dep_time": pd.array(rng.integers(0, 2400, m), dtype="Int64"),
            "dep_delay": dep_delay,
            "carrier": rng.choice(_CARRIERS, m),
            "origin": rng.choice(_AIRPORTS, m),
            "dest": rng.choice(_DESTS, m),
            "distance": rng.uniform(50, 5000, m),
            "weekend": rng.random(m) < 0.3,
            "time_hour": hours,
            "tailnum": pd.Series(
                np.where(rng.random(m) < 0.1, None, rng.choice(["N1", "N2"], m)), dtype="str"
            ),
        }
    )
    train.loc[0, "dep_time"] = None
    train.loc[0, "time_hour"] = pd.Timestamp("2013-01-01", tz="UTC")
    train.loc[1, "time_hour"] = pd.Timestamp("2013-04-01", tz="UTC")

    def records(n: int) -> Records:
        out = []
        for _ in range(n):
            hour = dt.datetime(2013, 1, 1) + dt.timedelta(hours=int(rng.integers(0, 24 * 89)))
            out.append(
                {
                    "month": int(rng.integers(1, 13)),
                    "day": int(rng.integers(1, 32)),
                    "dep_time": None if rng.random() < 0.1 else int(rng.integers(100, 2300)),
                    "dep_delay": None if rng.random() < 0.1 else float(rng.uniform(-20, 250)),
                    "carrier": str(rng.choice(_CARRIERS)),
                    "origin": str(rng.choice(_AIRPORTS)),
                    "dest": str(rng.choice(_DESTS)),
                    "distance": float(rng.uniform(100, 4900)),
                    "weekend": bool(rng.random() < 0.3),
                    "time_hour": hour.isoformat() + "Z",
                    "tailnum": None if rng.random() < 0.1 else str(rng.choice(["N1", "N2"])),
                }
            )
        return out

    return infer_signature(train), records


def arrays_frame(records: Records) -> pd.DataFrame:
    names = list(records[0])
    return pd.DataFrame({c: np.array([r[c] for r in records]) for c in names})


def time_rounds(
    candidates: dict[str, Callable[[], object]], rounds: int, number: int
) -> dict[str, float]:
    """Median CPU seconds per call of each candidate, over interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():  # warm up caches and lazy imports
        fn()
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.process_time()
            for _ in range(number):
                fn()
            samples[name].append((time.process_time() - start) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--number", type=int, default=10)
    parser.add_argument("--profile", help="cProfile one case instead, e.g. mixed-32")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    cases = {"numeric": numeric_case(rng), "mixed": mixed_case(rng)}
    sizes = (1, 32, 64)
    if args.profile:
        kind, size = args.profile.rsplit("-", 1)
        sig, make = cases[kind]
        batch = make(int(size))
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [validate(sig, batch) for _ in range(2000)])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    print(
        f"pandas {pd.__version__}, numpy {np.__version__}; "
        f"CPU time per call, median of {args.rounds} rounds of {args.number}"
    )
    header = f"{'case':<12}{'validate':>11}{'DF(records)':>13}{'DF(arrays)':>12}"
    print(header + f"{'/records':>10}{'/arrays':>9}")
    for kind, (sig, make) in cases.items():
        for n in sizes:
            batch = make(n)
            result = validate(sig, batch)
            if not result.valid.all():
                raise SystemExit(f"{kind}-{n}: benchmark batch is invalid: {result.summary()}")
            medians = time_rounds(
                {
                    "validate": functools.partial(validate, sig, batch),
                    "records": functools.partial(pd.DataFrame, batch),
                    "arrays": functools.partial(arrays_frame, batch),
                },
                args.rounds,
                args.number,
            )
            us = {k: v * 1e6 for k, v in medians.items()}
            print(
                f"{kind + '-' + str(n):<12}{us['validate']:>9.0f}us{us['records']:>11.0f}us"
                f"{us['arrays']:>10.0f}us{us['validate'] / us['records']:>9.2f}x"
                f"{us['validate'] / us['arrays']:>8.2f}x"
            )


if __name__ == "__main__":
    main()
