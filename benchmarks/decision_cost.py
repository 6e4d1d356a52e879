"""What it costs to serve the model's own decision: ``predict`` and ``predict_proba``.

    .venv/bin/python benchmarks/decision_cost.py [--reps 50]

For each model (fitted on 4,000 real flights) and batch size (1 and 1,000 rows) it prints the
median time of ``predict_proba`` alone (what livemodel computed before it served the model's
own label), of ``predict`` then ``predict_proba`` (two calls) and of
:func:`livemodel.registry.decision.decide` (the same two answers, sharing a Pipeline's
transformers and a forest's probabilities), one BLAS thread. It also checks that ``decide``
returns exactly ``model.predict``'s labels and ``model.predict_proba``'s probabilities.
Prints only; nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET, load_flights
from livemodel.registry.decision import decide


def _encode(scale: bool) -> ColumnTransformer:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return ColumnTransformer(
        [
            ("num", numeric if scale else SimpleImputer(strategy="median"), list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )


def models() -> dict[str, Any]:
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=1, random_state=0)
    linear = Pipeline([("encode", _encode(True)), ("lr", LogisticRegression(max_iter=500))])
    return {
        "LogisticRegression pipeline": linear,
        "RandomForest(100) pipeline": Pipeline([("encode", _encode(False)), ("rf", forest)]),
        "LightGBM pipeline": Pipeline(
            [("encode", _encode(False)), ("gbm", LGBMClassifier(n_estimators=100, verbose=-1))]
        ),
        "FixedThreshold(0.8, LR pipeline)": FixedThresholdClassifier(linear, threshold=0.8),
    }


def medians_ms(fns: list[Callable[[], object]], reps: int) -> list[float]:
    """Median time of each function, calls interleaved so that load on a shared machine
    weighs on all of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, seen in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            seen.append(time.perf_counter() - start)
    return [statistics.median(seen) * 1000 for seen in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    data = load_flights((1,)).iloc[:6000]
    x, y = data[list(FEATURES)], data[TARGET]
    print("| model | rows | predict_proba | predict + predict_proba | decide | decide / proba |")
    print("|---|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        for name, model in models().items():
            model.fit(x.iloc[:4000], y.iloc[:4000])
            for n in (1, 1000):
                rows = x.iloc[4000 : 4000 + n]
                labels, proba = decide(model, rows, proba=True)
                assert np.array_equal(labels, model.predict(rows)), name
                assert np.array_equal(proba, model.predict_proba(rows)), name
                alone, both, shared = medians_ms(
                    [
                        lambda m=model, r=rows: m.predict_proba(r),
                        lambda m=model, r=rows: (m.predict(r), m.predict_proba(r)),
                        lambda m=model, r=rows: decide(m, r, proba=True),
                    ],
                    args.reps,
                )
                print(
                    f"| {name} | {n} | {alone:.2f} ms | {both:.2f} ms | {shared:.2f} ms "
                    f"| {shared / alone:.2f}x |"
                )


if __name__ == "__main__":
    main()
