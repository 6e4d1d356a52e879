"""Open Inference Protocol v2 (KServe): health, metadata, tensors in and out."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from livemodel.demo.flights import CATEGORICAL, FEATURES
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, assert_json_error, records

INFER = "/v2/models/flights/infer"
DATATYPES = {"sched_hour": "INT64", "carrier": "BYTES", "origin": "BYTES"}


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


@pytest.fixture(scope="module")
def frame(models: Models) -> pd.DataFrame:
    data = models.data.iloc[3900:]
    return data[data[list(FEATURES)].notna().all(axis=1)].iloc[:5].reset_index(drop=True)


def per_feature(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = records(frame)
    return [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": DATATYPES.get(name, "FP64"),
            "data": [r[name] for r in rows],
        }
        for name in FEATURES
    ]


def check_outputs(answer: dict[str, Any], frame: pd.DataFrame, models: Models) -> None:
    outputs = {o["name"]: o for o in answer["outputs"]}
    proba = models.linear_v1.predict_proba(frame[list(FEATURES)])
    n = len(frame)
    assert outputs["predict"]["shape"] == [n]
    assert outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict"]["data"] == proba.argmax(axis=1).tolist()
    assert outputs["predict_proba"]["shape"] == [n, 2]
    assert outputs["predict_proba"]["datatype"] == "FP64"
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], (n, 2)), proba, rtol=1e-9
    )
    assert answer["model_name"] == "flights" and answer["model_version"] == "1"
    assert len(set(answer["parameters"]["prediction_ids"])) == n


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready").json()
    assert ready["ready"] is True and "flights" in ready["models"]
    assert client.get("/v2").json()["name"] == "livemodel"
    assert client.get("/v2/models/flights/ready").json() == {"name": "flights", "ready": True}
    meta = client.get("/v2/models/flights").json()
    assert meta["name"] == "flights" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(FEATURES)
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types == {name: DATATYPES.get(name, "FP64") for name in FEATURES}
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "predict": "INT64",
        "predict_proba": "FP64",
    }


def test_infer_with_one_tensor_per_feature(
    server: Server, client: httpx.Client, frame: pd.DataFrame, models: Models
) -> None:
    response = client.post(INFER, json={"id": "req-1", "inputs": per_feature(frame)})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "req-1"
    check_outputs(answer, frame, models)
    logged = LogReader(server.home / "logs").window("flights").to_pylist()
    by_id = {r["prediction_id"]: r for r in logged}
    for pid, row in zip(answer["parameters"]["prediction_ids"], records(frame), strict=True):
        assert {name: by_id[pid][f"f.{name}"] for name in FEATURES} == row


def test_infer_with_n_by_1_tensors_and_the_versioned_path(
    client: httpx.Client, frame: pd.DataFrame, models: Models
) -> None:
    inputs = per_feature(frame)
    for tensor in inputs:
        tensor["shape"] = [len(frame), 1]
        tensor["data"] = [[v] for v in tensor["data"]]
    response = client.post("/v2/models/flights/versions/1/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    check_outputs(response.json(), frame, models)
    error = assert_json_error(
        client.post("/v2/models/flights/versions/2/infer", json={"inputs": inputs}), 404
    )
    assert "version" in error["message"]


def test_infer_with_one_matrix(client: httpx.Client, frame: pd.DataFrame, models: Models) -> None:
    rows = records(frame)
    # BYTES holds text: numbers of a mixed-type matrix are sent as text (a float in a
    # BYTES tensor is refused, issue 13), and parsed back by their column's type.
    matrix = [[str(r[name]) for name in FEATURES] for r in rows]
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), len(FEATURES)],
                        "datatype": "BYTES", "data": matrix}]}  # fmt: skip
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.text
    check_outputs(response.json(), frame, models)
    flat = {**body["inputs"][0], "data": [v for row in matrix for v in row]}
    response = client.post(INFER, json={"inputs": [flat]})
    assert response.status_code == 200, response.text
    check_outputs(response.json(), frame, models)


def tensor(name: str = "x", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "shape": [1, 10], "datatype": "FP64", "data": [0] * 10}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("inputs", "status"),
    [
        ([tensor(shape=[1, 9], data=[0] * 9)], 422),  # [N, F] with the wrong F
        ([tensor(shape=[2, 10])], 422),  # shape needs 20 values, 10 sent
        ([tensor(shape=[10])], 422),  # a single unnamed 1-D tensor
        ([tensor(shape=[1, 10, 1])], 422),
        ([tensor(shape=[])], 422),
        ([tensor(shape=[-1, 10])], 422),
        ([tensor(shape=[1.5, 10])], 422),
        ([tensor(shape=[True, 10])], 422),
        ([tensor(shape="1,10")], 422),
        ([tensor(shape=[2**70, 2**70], data=[])], 422),
        ([tensor(shape=[2**64], data=[])], 422),
        ([tensor(shape=[0, 10], data=[])], 422),
        ([tensor(shape=[501, 10], data=[0] * 5010)], 413),
        ([tensor(datatype="FP128")], 422),
        ([tensor(datatype=None)], 422),
        ([tensor(data="0,0,0")], 422),
        ([tensor(data=None)], 422),
        ([tensor(name="")], 422),
        ([tensor(name=None)], 422),
        (["not a tensor"], 422),
        ([], 422),
        (None, 422),
        ({"name": "x"}, 422),
    ],
)
def test_bad_tensors(client: httpx.Client, inputs: Any, status: int) -> None:
    response = client.post(INFER, json={"inputs": inputs})
    assert_json_error(response, status)
    assert isinstance(response.json()["error"], str)  # the protocol's error shape


def test_mismatched_rows_and_bad_cells(client: httpx.Client, frame: pd.DataFrame) -> None:
    inputs = per_feature(frame)
    inputs[1] = {**inputs[1], "shape": [len(frame) - 1], "data": inputs[1]["data"][:-1]}
    error = assert_json_error(client.post(INFER, json={"inputs": inputs}), 422)
    assert "rows" in error["message"]
    inputs = per_feature(frame)
    inputs[0] = {**inputs[0], "data": ["soon"] * len(frame)}  # FP64 declared, strings sent
    error = assert_json_error(client.post(INFER, json={"inputs": inputs}), 422)
    assert "dep_delay" in error["message"]
    inputs = [t for t in per_feature(frame) if t["name"] not in CATEGORICAL]
    error = assert_json_error(client.post(INFER, json={"inputs": inputs}), 422)
    assert "missing column" in error["message"]
    for body in (
        [],
        "x",
        {"inputs": "x"},
        {"inputs": [{"name": "x", "shape": [1], "data": [[[[[[[[[[1]]]]]]]]]]}]},
    ):
        assert_json_error(client.post(INFER, json=body), 422)
