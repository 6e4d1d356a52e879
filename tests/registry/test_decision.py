"""``decide``: exactly ``predict`` and ``predict_proba``, also where it shares their work;
registration records the model's own decisions in the reference and the holdout metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from tests.serving.decision_kinds import KINDS, _pipeline, fit

from livemodel.registry.decision import decide
from livemodel.registry.registry import Registry


class CautiousForest(RandomForestClassifier):
    """Overrides predict: decide must call it rather than take the forest's argmax."""

    def predict(self, X: Any) -> Any:
        return np.where(self.predict_proba(X)[:, 1] >= 0.7, self.classes_[1], self.classes_[0])


@pytest.fixture(scope="module")
def data(flights: pd.DataFrame) -> pd.DataFrame:
    return flights.iloc[:3000]


@pytest.mark.parametrize("name", [n for n in KINDS if n != "regression"])
def test_decide_is_predict_and_predict_proba(data: pd.DataFrame, name: str) -> None:
    model, _ = fit(KINDS[name], data.iloc[:2000])
    rows = KINDS[name].frame(data).drop(columns="late").iloc[2000:]
    with_proba = callable(getattr(model, "predict_proba", None))
    labels, proba = decide(model, rows, proba=with_proba)
    np.testing.assert_array_equal(labels, model.predict(rows))
    if with_proba:
        np.testing.assert_array_equal(proba, model.predict_proba(rows))
    else:
        assert proba is None


def test_an_overridden_forest_predict_is_called(data: pd.DataFrame) -> None:
    model = _pipeline(CautiousForest(n_estimators=20, max_depth=6, random_state=0))
    model.fit(data.drop(columns="late").iloc[:2000], data["late"].iloc[:2000])
    rows = data.drop(columns="late").iloc[2000:]
    labels, proba = decide(model, rows, proba=True)
    assert proba is not None
    np.testing.assert_array_equal(labels, model.predict(rows))
    assert (labels != proba.argmax(axis=1)).sum() > 0


def test_nested_pipelines_and_metadata_routing_give_the_same_answers(data: pd.DataFrame) -> None:
    inner, _ = fit(KINDS["fixed-threshold"], data.iloc[:2000])
    model = Pipeline([("whole", inner)])  # one step, which is not a Pipeline itself
    rows = data.drop(columns="late").iloc[2000:]
    for routing in (False, True):
        with config_context(enable_metadata_routing=routing):
            labels, proba = decide(model, rows, proba=True)
        np.testing.assert_array_equal(labels, inner.predict(rows))
        np.testing.assert_array_equal(proba, inner.predict_proba(rows))


def test_registration_records_the_models_own_decisions(
    registry: Registry, data: pd.DataFrame
) -> None:
    model, train = fit(KINDS["fixed-threshold"], data.iloc[:2000])
    holdout = data.iloc[2000:]
    version = registry.register("thresholded", model, train, target="late", validation=holdout)
    sample = registry.reference(version.ref).sample
    features = sample[list(version.signature.names)]
    assert sample["prediction"].tolist() == model.predict(features).tolist()
    expected = accuracy_score(holdout["late"], model.predict(holdout.drop(columns="late")))
    assert version.metrics["holdout"]["accuracy"]["value"] == pytest.approx(expected)
