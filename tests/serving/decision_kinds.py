"""Models that decide in ways the class of highest probability does not tell, one line each.

Each kind names a model factory and how its target is made from real flights; the serving
and batch tests check that livemodel answers with the model's own ``predict`` row for row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET

REGRESSION_TARGET = "distance"


def _pipeline(final: Any, *, numeric: tuple[str, ...] = NUMERIC) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [*numeric]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", final)])


def _native_categoricals() -> Pipeline:
    """HistGradientBoosting splitting on the categories themselves (ordinal codes)."""
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    encode = ColumnTransformer([("cat", codes, list(CATEGORICAL))], remainder="passthrough")
    boosting = HistGradientBoostingClassifier(
        max_iter=60, categorical_features=[0, 1], random_state=0
    )
    return Pipeline([("encode", encode), ("model", boosting)])


def _lr(**params: Any) -> Pipeline:
    return _pipeline(LogisticRegression(max_iter=500, **params))


def _binary(frame: pd.DataFrame) -> pd.Series:
    return frame[TARGET]


def _strings(frame: pd.DataFrame) -> pd.Series:
    return frame[TARGET].map({0: "on_time", 1: "late"})


def _odd_integers(frame: pd.DataFrame) -> pd.Series:
    """Three integer classes that are not 0, 1, 2."""
    far = frame["distance"].to_numpy() > 1000
    late = frame[TARGET].to_numpy() == 1
    return pd.Series(np.where(late, 30, np.where(far, 7, -2)), index=frame.index, name=TARGET)


def _three_strings(frame: pd.DataFrame) -> pd.Series:
    evening = frame["sched_hour"].to_numpy() >= 15
    late = frame[TARGET].to_numpy() == 1
    labels = np.where(late, "late", np.where(evening, "evening", "day"))
    return pd.Series(labels, index=frame.index, name=TARGET)


@dataclass(frozen=True)
class Kind:
    make: Callable[[], Any]
    target: Callable[[pd.DataFrame], pd.Series] = _binary
    regression: bool = False

    def frame(self, flights: pd.DataFrame) -> pd.DataFrame:
        """Features and the target column ``late`` (``distance`` for regression)."""
        if self.regression:
            features = [c for c in FEATURES if c != REGRESSION_TARGET]
            return flights[[*features, REGRESSION_TARGET]]
        out = flights[list(FEATURES)].copy()
        out[TARGET] = self.target(flights).to_numpy()
        return out

    @property
    def target_name(self) -> str:
        return REGRESSION_TARGET if self.regression else TARGET


KINDS: dict[str, Kind] = {
    "fixed-threshold": Kind(lambda: FixedThresholdClassifier(_lr(), threshold=0.8)),
    "tuned-threshold": Kind(
        lambda: TunedThresholdClassifierCV(_lr(), scoring="balanced_accuracy", cv=3)
    ),
    "string-labels": Kind(
        lambda: FixedThresholdClassifier(_lr(), threshold=0.3, pos_label="late"), _strings
    ),
    "odd-integers": Kind(_lr, _odd_integers),
    "multiclass": Kind(
        lambda: _pipeline(RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0)),
        _three_strings,
    ),
    "no-proba": Kind(lambda: _pipeline(RidgeClassifier(alpha=10.0))),
    "regression": Kind(
        lambda: _pipeline(Ridge(), numeric=tuple(c for c in NUMERIC if c != REGRESSION_TARGET)),
        regression=True,
    ),
    "lightgbm": Kind(
        lambda: _pipeline(LGBMClassifier(n_estimators=40, num_leaves=15, n_jobs=1, verbose=-1)),
        _three_strings,
    ),
    "class-weight": Kind(lambda: _lr(class_weight={0: 1.0, 1: 4.0})),
    "hist-gradient-boosting": Kind(_native_categoricals),
}


def fit(kind: Kind, flights: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The model fitted on ``flights`` and the frame it was fitted on (with the target)."""
    frame = kind.frame(flights)
    model = kind.make().fit(frame.drop(columns=kind.target_name), frame[kind.target_name])
    return model, frame
