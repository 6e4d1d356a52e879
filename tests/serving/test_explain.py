"""``POST /v1/models/{name}/explain`` over real HTTP: SHAP contributions add up to the model.

Each explained row must satisfy ``base_value + sum(contributions) == output`` (to 1e-6), and
``output`` must be what ``/predict`` answers for the row, in the stated space: a probability
(forest, Kernel), the log-odds of the class (boosting, logistic regression) or the value.
The Kernel explainer's values are an approximation of the Shapley values, but its
additivity is exact by construction (the efficiency constraint is solved for), so the same
1e-6 applies to it.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from livemodel.config import Settings
from livemodel.demo.flights import CATEGORICAL, FEATURES, NUMERIC, TARGET
from livemodel.errors import ModelError
from livemodel.schema.signature import infer_signature
from livemodel.schema.validation import validate
from livemodel.serving import explain
from livemodel.serving.app import build_app
from livemodel.serving.handles import ModelHandle
from livemodel.serving.options import ServerOptions
from livemodel.wiring import serving_state

from .conftest import (
    Models,
    Server,
    assert_json_error,
    copy_home,
    linear_pipeline,
    records,
    registry_at,
    start_server,
)

TOL = 1e-6
REG_FEATURES = [f for f in FEATURES if f != "temp"]


def knn_pipeline() -> Pipeline:
    return Pipeline([("encode", linear_pipeline()[0]), ("knn", KNeighborsClassifier(15))])


def ridge_pipeline() -> Pipeline:
    numeric = [n for n in NUMERIC if n != "temp"]
    encode = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("encode", encode), ("ridge", Ridge())])


@pytest.fixture(scope="module")
def home(template_home: Path, models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared template plus a bare LightGBM, a Kernel-only model and a regression."""
    home = copy_home(template_home, tmp_path_factory.mktemp("explain") / "home")
    registry = registry_at(home)
    train = models.data.iloc[:3000]
    x, y = train[list(FEATURES)], train[TARGET]
    numeric = train[[*NUMERIC, TARGET]]
    booster = lgb.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, n_jobs=1)
    booster.fit(numeric[list(NUMERIC)], numeric[TARGET])
    registry.register("lgbm", booster, numeric, target=TARGET, alias="production")
    registry.register("knn", knn_pipeline().fit(x, y), train, target=TARGET, alias="production")
    temp = train[[*REG_FEATURES, "temp"]].dropna(subset=["temp"])
    ridge = ridge_pipeline().fit(temp[REG_FEATURES], temp["temp"])
    registry.register("ridge", ridge, temp, target="temp", alias="production")
    registry.metadata.db.close()
    return home


@pytest.fixture(scope="module")
def served(home: Path, faults_dir: Path) -> Iterator[Server]:
    running = start_server(home, faults_dir, config=home / "livemodel.toml")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(served: Server) -> httpx.Client:
    return served.client()


def explained(client: httpx.Client, model: str, rows: list[dict[str, Any]], **extra: Any) -> Any:
    response = client.post(f"/v1/models/{model}/explain", json={"records": rows, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def predicted(client: httpx.Client, model: str, rows: list[dict[str, Any]]) -> list[Any]:
    response = client.post(f"/v1/models/{model}/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def assert_additive(body: dict[str, Any], features: list[str]) -> None:
    for item in body["explanations"]:
        assert set(item["contributions"]) == set(features)
        total = item["base_value"] + math.fsum(item["contributions"].values())
        assert total == pytest.approx(item["output"], abs=TOL)
    assert body["additivity_error"] < TOL


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def rows(models: Models) -> list[dict[str, Any]]:
    return records(models.data.iloc[3500:3520])


def test_tree_pipeline_explains_probabilities_summed_back_to_raw_features(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    body = explained(client, "forest", rows)
    assert (body["method"], body["output"], body["version"]) == ("TreeExplainer", "probability", 1)
    assert_additive(body, list(FEATURES))
    answers = predicted(client, "forest", rows)
    for item, answer in zip(body["explanations"], answers, strict=True):
        assert item["class"] == answer["label"]  # by default, the label served for the row
        assert item["output"] == pytest.approx(answer["proba"][str(item["class"])], abs=1e-9)
    # one-hot columns were summed back: the categorical features carry contributions
    assert any(abs(i["contributions"]["carrier"]) > 0 for i in body["explanations"])


def test_lightgbm_explains_log_odds(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    numeric = [{k: r[k] for k in NUMERIC} for r in rows]
    body = explained(client, "lgbm", numeric, **{"class": 1})
    assert (body["method"], body["output"]) == ("TreeExplainer", "log_odds")
    assert_additive(body, list(NUMERIC))
    for item, answer in zip(body["explanations"], predicted(client, "lgbm", numeric), strict=True):
        assert item["output"] == pytest.approx(logit(answer["proba"]["1"]), abs=TOL)


def test_linear_pipeline_explains_log_odds(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    body = explained(client, "flights", rows, **{"class": 1})
    assert (body["method"], body["output"]) == ("LinearExplainer", "log_odds")
    assert_additive(body, list(FEATURES))
    for item, answer in zip(body["explanations"], predicted(client, "flights", rows), strict=True):
        assert item["output"] == pytest.approx(logit(answer["proba"]["1"]), abs=TOL)


def test_other_models_get_the_sampled_kernel_explainer(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    few = rows[:3]
    body = explained(client, "knn", few, **{"class": 1})
    assert (body["method"], body["output"]) == ("KernelExplainer", "probability")
    assert_additive(body, list(FEATURES))
    for item, answer in zip(body["explanations"], predicted(client, "knn", few), strict=True):
        assert item["output"] == pytest.approx(answer["proba"]["1"], abs=1e-12)
    too_many = client.post("/v1/models/knn/explain", json={"records": rows[:11]})
    assert "KernelExplainer" in assert_json_error(too_many, 413)["message"]


def test_regression_explains_the_value(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    inputs = [{k: r[k] for k in REG_FEATURES} for r in rows]
    body = explained(client, "ridge", inputs)
    assert (body["method"], body["output"]) == ("LinearExplainer", "value")
    assert_additive(body, REG_FEATURES)
    for item, answer in zip(body["explanations"], predicted(client, "ridge", inputs), strict=True):
        assert "class" not in item
        assert item["output"] == pytest.approx(answer["value"], abs=TOL)


def test_the_other_class_is_explained_on_request(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    for model in ("forest", "flights"):
        positive = explained(client, model, rows[:4], **{"class": 1})
        negative = explained(client, model, rows[:4], **{"class": 0})
        assert_additive(negative, list(FEATURES))
        for p, n in zip(positive["explanations"], negative["explanations"], strict=True):
            assert n["class"] == 0
            if positive["output"] == "probability":  # the two probabilities sum to one
                assert p["output"] + n["output"] == pytest.approx(1.0, abs=1e-12)
            else:  # log-odds of class 0 are those of class 1 negated
                assert n["output"] == pytest.approx(-p["output"], abs=1e-12)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"records": []}, 422),
        ({"records": "rows"}, 422),
        ({"records": [1, 2]}, 422),
        ({"nothing": True}, 422),
        ({"records": [{"dep_delay": 1.0}]}, 422),  # missing columns
        ({"records": [{"dep_delay": None}], "class": 1}, 422),
    ],
)
def test_malformed_requests_are_client_errors(
    client: httpx.Client, body: dict[str, Any], status: int
) -> None:
    assert_json_error(client.post("/v1/models/forest/explain", json=body), status)


def test_bad_class_unknown_model_bad_json_and_huge_bodies(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    one = rows[:1]
    for wanted in (7, "late", [1], {"a": 1}):
        error = assert_json_error(
            client.post("/v1/models/forest/explain", json={"records": one, "class": wanted}), 422
        )
        assert "class" in error["message"]
    ridge = [{k: one[0][k] for k in REG_FEATURES}]
    response = client.post("/v1/models/ridge/explain", json={"records": ridge, "class": 1})
    assert_json_error(response, 422)
    assert_json_error(client.post("/v1/models/nope/explain", json={"records": one}), 404)
    bad_json = client.post(
        "/v1/models/forest/explain",
        content=b'{"records": [',
        headers={"content-type": "application/json"},
    )
    assert_json_error(bad_json, 400)
    huge = client.post(
        "/v1/models/forest/explain",
        content=b'{"records": [' + b"0," * 600_000 + b"0]}",
        headers={"content-type": "application/json"},
    )
    assert_json_error(huge, 413)
    over = client.post("/v1/models/forest/explain", json={"records": one * 501})
    assert_json_error(over, 413)  # the server's max_rows
    tree_limit = client.post("/v1/models/forest/explain", json={"records": one * 201})
    assert "TreeExplainer" in assert_json_error(tree_limit, 413)["message"]


def test_hostile_values_are_validated_like_predict(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    hostile = dict(rows[0], carrier="<script>alert(1)</script>", origin="x" * 10_000)
    body = explained(client, "forest", [hostile])  # unseen categories are flagged, not refused
    assert_additive(body, list(FEATURES))
    wrong = dict(rows[0], dep_delay="soon")
    error = assert_json_error(
        client.post("/v1/models/forest/explain", json={"records": [wrong]}), 422
    )
    assert "dep_delay" in error["message"]
    extreme = dict(rows[0], distance=1e300)  # out of range: flagged, explained
    assert_additive(explained(client, "flights", [extreme]), list(FEATURES))
    # the forest casts to float32, where 1e300 is infinite: the model's own failure, a 422
    # naming the request's ids (the server log has the model's error), never a 500
    failed = client.post("/v1/models/forest/explain", json={"records": [extreme]})
    assert failed.status_code == 422, failed.text
    error = failed.json()["error"]
    assert error["type"] == "ModelFailedError" and len(error["prediction_ids"]) == 1
    assert "failed (model_error) explaining" in error["message"]
    assert "float32" not in failed.text and "Traceback" not in failed.text


def test_without_shap_the_endpoint_answers_501(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]
) -> None:
    """The app in this process, with ``import shap`` failing as when it is not installed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    monkeypatch.setitem(sys.modules, "shap", None)
    settings = Settings.at(copy_home(home, tmp_path / "home"), actor="tests")
    app = build_app(serving_state(settings, ServerOptions()))
    with TestClient(app) as client:
        response = client.post("/v1/models/forest/explain", json={"records": rows[:2]})
        assert response.status_code == 501, response.text
        message = response.json()["error"]["message"]
        assert "SHAP" in message and "livemodel[explain]" in message
        assert client.post("/v1/models/forest/predict", json=rows[:2]).status_code == 200


# -- in process: explainer choice, multiclass and the cache ----------------------------------
@pytest.fixture(scope="module")
def shap() -> Any:
    return explain.import_shap()


def handle_of(model: Any, frame: pd.DataFrame, target: str, number: int = 1) -> ModelHandle:
    class Version:
        name, version = "m", number
        signature = infer_signature(frame, target=target)

    classes = getattr(model, "classes_", None)
    plain = None if classes is None else tuple(c.item() for c in classes)
    return ModelHandle(Version(), model, plain)  # type: ignore[arg-type]


def three_classes(models: Models) -> pd.DataFrame:
    data = models.data.iloc[:1500][[*NUMERIC, TARGET]].copy()
    data["band"] = pd.cut(data["dep_delay"].fillna(0), [-1e9, 0, 30, 1e9], labels=[0, 1, 2])
    data["band"] = data["band"].astype(int)
    return data.drop(columns=["dep_delay", TARGET]).dropna().reset_index(drop=True)


@pytest.mark.parametrize(
    ("model", "method", "space"),
    [
        (RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), "Tree", "prob"),
        # SHAP's TreeExplainer takes scikit-learn boosting for binary tasks only
        (GradientBoostingClassifier(n_estimators=10, random_state=0), "Kernel", "prob"),
        (lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1), "Tree", "raw_margin"),
        (make_pipeline(StandardScaler(), PCA(3), KNeighborsClassifier(5)), "Kernel", "prob"),
    ],
)
def test_multiclass_explains_each_rows_predicted_class(
    shap: Any, models: Models, model: Any, method: str, space: str
) -> None:
    data = three_classes(models)
    features = [c for c in data.columns if c != "band"]
    model.fit(data[features], data["band"])
    handle = handle_of(model, data, "band")
    explainer = explain.build_explainer(shap, handle, data.iloc[:300])
    assert explainer.method.startswith(method) and explainer.space.startswith(space)
    frame = validate(handle.version.signature, data[features].iloc[-5:]).frame
    body = explain.explain_rows(explainer, handle, frame)
    assert_additive(body, features)
    predicted_class = model.predict(frame)
    assert [i["class"] for i in body["explanations"]] == predicted_class.tolist()
    if explainer.space == "probability":
        proba = model.predict_proba(frame)
        chosen = proba[np.arange(len(frame)), predicted_class]
        assert [i["output"] for i in body["explanations"]] == pytest.approx(chosen, abs=1e-12)


def test_a_transform_that_mixes_features_falls_back_to_kernel(shap: Any, models: Models) -> None:
    data = models.data.iloc[:800][[*NUMERIC, TARGET]].dropna().reset_index(drop=True)
    mixed = make_pipeline(StandardScaler(), PCA(4), RandomForestClassifier(5, random_state=0))
    mixed.fit(data[list(NUMERIC)], data[TARGET])
    handle = handle_of(mixed, data, TARGET)
    explainer = explain.build_explainer(shap, handle, data)
    assert explainer.method == "KernelExplainer"  # PCA columns belong to no single feature


def test_explainers_are_built_once_per_version_and_the_cache_is_bounded(
    shap: Any, models: Models
) -> None:
    data = models.data.iloc[:500][[*NUMERIC, TARGET]]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1)
    model.fit(data[list(NUMERIC)], data[TARGET])
    loads: list[str] = []

    class Registry:
        def reference(self, ref: str) -> Any:
            loads.append(ref)
            return type("Ref", (), {"sample": data})()

    class State:
        registry = Registry()

    cache = explain.ExplainerCache(State(), size=2)  # type: ignore[arg-type]
    handles = [handle_of(model, data, TARGET, number) for number in (1, 2, 3)]
    first = cache.get(handles[0])
    assert cache.get(handles[0]) is first and loads == ["m@1"]
    cache.get(handles[1])
    cache.get(handles[2])  # evicts version 1, the least recently used
    cache.get(handles[0])
    assert loads == ["m@1", "m@2", "m@3", "m@1"]


def test_an_empty_reference_is_a_model_error(shap: Any, models: Models) -> None:
    data = models.data.iloc[:300][[*NUMERIC, TARGET]]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1)
    model.fit(data[list(NUMERIC)], data[TARGET])
    handle = handle_of(model, data, TARGET)
    with pytest.raises(ModelError, match="empty"):
        explain.build_explainer(shap, handle, data.iloc[:0])


@pytest.fixture(scope="module")
def fitted_explainers(shap: Any, models: Models) -> list[tuple[Any, ModelHandle]]:
    """The forest and linear pipelines of the shared fixtures, explained in this process."""
    data = models.data.iloc[:3000]
    out = []
    for model in (models.forest, models.linear_v1):
        handle = handle_of(model, data, TARGET)
        out.append((explain.build_explainer(shap, handle, data.iloc[:300]), handle))
    return out


ROWS = st.fixed_dictionaries(
    {
        "dep_delay": st.one_of(st.none(), st.floats(-100, 1500)),
        "sched_hour": st.integers(0, 23),
        "distance": st.floats(1, 5000),
        "carrier": st.sampled_from(["AA", "UA", "B6", "??", ""]),
        "origin": st.sampled_from(["EWR", "JFK", "LGA", "nowhere"]),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=ROWS, klass=st.sampled_from([None, 0, 1, "0", "1"]))
def test_contributions_add_up_for_any_row(
    fitted_explainers: list[tuple[Any, ModelHandle]],
    models: Models,
    values: dict[str, Any],
    klass: Any,
) -> None:
    """Whatever the values (missing, unseen categories, out of range), the sum holds, and
    the output is the model's own (its probability, or its decision function's log-odds)."""
    row = {**records(models.data.iloc[:1])[0], **values}
    for explainer, handle in fitted_explainers:
        frame = validate(handle.version.signature, [row]).frame
        body = explain.explain_rows(explainer, handle, frame, klass)
        assert_additive(body, list(FEATURES))
        item = body["explanations"][0]
        served = str(handle.model.predict(frame)[0])  # the default: the label served
        assert str(item["class"]) == (served if klass is None else str(klass))
        if body["output"] == "probability":
            expected = handle.model.predict_proba(frame)[0, int(item["class"])]
        else:
            sign = 1.0 if int(item["class"]) == 1 else -1.0
            expected = sign * float(handle.model.decision_function(frame)[0])
        assert item["output"] == pytest.approx(expected, abs=TOL)
