"""``/explain`` explains the label that was served, over real HTTP.

* By default each row's explanation is for the label ``/predict`` served for it (the model's
  own ``predict``), not the class of highest probability: a ``FixedThresholdClassifier`` at
  0.8 serves 0 on rows whose probability of 1 is between 0.5 and 0.8.
* A class-mapped model (fitted on 0/1, registered for a target ``on_time``/``late``) is
  explained through the tree model inside it (``TreeExplainer``), in the mapped classes.
* A classifier without ``predict_proba`` gets a clear 422, never a 5xx.
* The report's global importance of a class-mapped forest is the tree explainer's too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from livemodel.demo.flights import FEATURES, NUMERIC, TARGET
from livemodel.registry.classmap import map_classes
from livemodel.report.explain import global_importance

from .conftest import (
    Models,
    Server,
    assert_json_error,
    copy_home,
    forest_pipeline,
    records,
    registry_at,
    start_server,
)
from .decision_kinds import KINDS, fit

MAPPED = {0: "on_time", 1: "late"}  # sorted, "late" comes first: the columns swap


@pytest.fixture(scope="module")
def fitted(models: Models) -> dict[str, Any]:
    train = models.data.iloc[:3000]
    threshold, _ = fit(KINDS["fixed-threshold"], train)
    no_proba, _ = fit(KINDS["no-proba"], train)
    forest = forest_pipeline().fit(train[list(FEATURES)], train[TARGET])
    booster = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, n_jobs=1)
    booster.fit(train[list(NUMERIC)], train[TARGET])
    return {"threshold": threshold, "no_proba": no_proba, "forest": forest, "booster": booster}


@pytest.fixture(scope="module")
def served(
    template_home: Path,
    models: Models,
    fitted: dict[str, Any],
    faults_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home = copy_home(template_home, tmp_path_factory.mktemp("explain-served") / "home")
    registry = registry_at(home)
    train = models.data.iloc[:3000]
    named = train.assign(**{TARGET: train[TARGET].map(MAPPED)})
    registry.register("threshold", fitted["threshold"], train, target=TARGET, alias="production")
    registry.register("no-proba", fitted["no_proba"], train, target=TARGET, alias="production")
    registry.register(
        "mapped-forest", fitted["forest"], named, target=TARGET, alias="production",
        class_map=MAPPED,
    )  # fmt: skip
    registry.register(
        "mapped-lgbm", fitted["booster"], named[[*NUMERIC, TARGET]], target=TARGET,
        alias="production", class_map=MAPPED,
    )  # fmt: skip
    registry.metadata.db.close()
    running = start_server(home, faults_dir, config=home / "livemodel.toml")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(served: Server) -> httpx.Client:
    return served.client()


def post(client: httpx.Client, model: str, path: str, body: dict[str, Any]) -> Any:
    response = client.post(f"/v1/models/{model}/{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_additive(body: dict[str, Any]) -> None:
    for item in body["explanations"]:
        total = item["base_value"] + math.fsum(item["contributions"].values())
        assert total == pytest.approx(item["output"], abs=1e-6)


def test_the_served_label_is_explained_not_the_most_probable_class(
    client: httpx.Client, models: Models, fitted: dict[str, Any]
) -> None:
    model = fitted["threshold"]
    live = models.data.iloc[3000:]
    p = model.predict_proba(live[list(FEATURES)])[:, 1]
    between = np.flatnonzero((p > 0.5) & (p < 0.8))[:4]  # served 0, argmax 1
    above, below = np.flatnonzero(p >= 0.8)[:2], np.flatnonzero(p < 0.5)[:2]
    assert len(between) == 4 and len(above) == 2
    rows = records(live.iloc[np.concatenate([between, above, below])])
    answers = post(client, "threshold", "predict", {"records": rows})["predictions"]
    labels = [a["label"] for a in answers]
    assert labels == model.predict(pd.DataFrame(rows)[list(FEATURES)]).tolist()
    assert labels == [0, 0, 0, 0, 1, 1, 0, 0]  # the first four are not the argmax
    body = post(client, "threshold", "explain", {"records": rows})
    assert body["class_source"] == "served"
    assert_additive(body)
    for item, answer in zip(body["explanations"], answers, strict=True):
        assert item["class"] == answer["label"]
        if body["output"] == "probability":
            expected = answer["proba"][str(answer["label"])]
            assert item["output"] == pytest.approx(expected, abs=1e-9)
    asked = post(client, "threshold", "explain", {"records": rows, "class": 1})
    assert asked["class_source"] == "request"
    assert [i["class"] for i in asked["explanations"]] == [1] * len(rows)


@pytest.mark.parametrize(("name", "space"), [("mapped-forest", "probability"),
                                             ("mapped-lgbm", "log_odds")])  # fmt: skip
def test_a_class_mapped_tree_model_gets_the_tree_explainer_in_mapped_classes(
    client: httpx.Client, models: Models, name: str, space: str
) -> None:
    features = list(FEATURES) if name == "mapped-forest" else list(NUMERIC)
    rows = [{k: r[k] for k in features} for r in records(models.data.iloc[3000:3040])]
    answers = post(client, name, "predict", {"records": rows})["predictions"]
    served_labels = {a["label"] for a in answers}
    assert served_labels == {"on_time", "late"}  # both classes are explained below
    body = post(client, name, "explain", {"records": rows})
    assert (body["method"], body["output"]) == ("TreeExplainer", space)
    assert_additive(body)
    for item, answer in zip(body["explanations"], answers, strict=True):
        assert item["class"] == answer["label"]
        p = answer["proba"][item["class"]]  # the mapped class's own probability
        expected = p if space == "probability" else math.log(p / (1 - p))
        assert item["output"] == pytest.approx(expected, abs=1e-6)
    other = post(client, name, "explain", {"records": rows[:3], "class": "late"})
    assert [i["class"] for i in other["explanations"]] == ["late"] * 3


def test_a_classifier_without_predict_proba_is_refused_with_a_4xx(
    client: httpx.Client, models: Models
) -> None:
    rows = records(models.data.iloc[3000:3003])
    response = client.post("/v1/models/no-proba/explain", json={"records": rows})
    error = assert_json_error(response, 422)
    assert "not supported" in error["message"] and "predict_proba" in error["message"]
    predicted = post(client, "no-proba", "predict", {"records": rows})["predictions"]
    assert all(p["label"] in (0, 1) for p in predicted)  # it still serves


def test_report_importance_of_a_class_mapped_forest_uses_the_tree_inside(
    models: Models, fitted: dict[str, Any]
) -> None:
    """The report's global importance (report/explain.py) unwraps the class map too."""
    wrapped = map_classes(fitted["forest"], MAPPED, ["late", "on_time"])
    reference = models.data.iloc[3000:3100]
    mapped = global_importance(wrapped, FEATURES, reference)
    inner = global_importance(fitted["forest"], FEATURES, reference)
    assert (mapped.method, mapped.note) == ("TreeExplainer", None)
    assert mapped.reference == pytest.approx(inner.reference, abs=1e-12)
