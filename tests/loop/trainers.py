"""Training entry points the loop tests name in their policies (``tests.loop.trainers:...``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET

CALLS: list[int] = []


def pipeline(c: float = 1.0) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encode = ColumnTransformer(
        [
            ("num", numeric, list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=c, max_iter=500))])


def train_logistic(frame: pd.DataFrame, seed: int = 0) -> Any:
    """A fast, deterministic classifier for the flights frame."""
    CALLS.append(len(frame))
    return pipeline().fit(frame[list(FEATURES)], frame[TARGET])


def train_dummy(frame: pd.DataFrame) -> Any:
    """A deliberately bad retrain: always predicts the majority class."""
    CALLS.append(len(frame))
    return DummyClassifier(strategy="most_frequent").fit(frame[list(FEATURES)], frame[TARGET])


def train_changed(frame: pd.DataFrame, seed: int = 0) -> Any:
    """What train_logistic becomes after a code change: another regularisation."""
    return pipeline(c=0.01).fit(frame[list(FEATURES)], frame[TARGET])


def train_without_imputer(frame: pd.DataFrame, seed: int = 0) -> Any:
    """A classifier that cannot take a null in a numeric feature (no imputer)."""
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    model = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])
    return model.fit(frame[list(FEATURES)], frame[TARGET])


def train_broken(frame: pd.DataFrame) -> Any:
    raise RuntimeError("the feature store is down")


NOT_CALLABLE = 3
