"""OIP v2 inputs are what they declare: datatype, shape, one input per name; outputs as
asked, in JSON or the binary tensor extension (sent by hand here, byte by byte)."""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from livemodel.demo.flights import FEATURES

from .conftest import Models, Server, records

INFER = "/v2/models/flights/infer"
DATATYPES = {"sched_hour": "INT64", "carrier": "BYTES", "origin": "BYTES"}


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


@pytest.fixture(scope="module")
def frame(models: Models) -> pd.DataFrame:
    data = models.data.iloc[3800:]
    return data[data[list(FEATURES)].notna().all(axis=1)].iloc[:4].reset_index(drop=True)


def inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = records(frame)
    return [
        {"name": n, "shape": [len(rows)], "datatype": DATATYPES.get(n, "FP64"),
         "data": [r[n] for r in rows]}
        for n in FEATURES
    ]  # fmt: skip


def changed(frame: pd.DataFrame, name: str, **change: Any) -> list[dict[str, Any]]:
    return [{**t, **change} if t["name"] == name else t for t in inputs(frame)]


def error(response: httpx.Response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]
    return message


def test_valid_inputs_are_answered(client: httpx.Client, frame: pd.DataFrame) -> None:
    answer = client.post(INFER, json={"inputs": inputs(frame)})
    assert answer.status_code == 200, answer.text
    # nested exactly as the shape is as good as flat
    nested = changed(frame, "dep_delay", shape=[len(frame), 1],
                     data=[[v] for v in frame["dep_delay"].tolist()])  # fmt: skip
    again = client.post(INFER, json={"inputs": nested})
    assert again.status_code == 200, again.text
    assert again.json()["outputs"] == answer.json()["outputs"]


@pytest.mark.parametrize(
    ("name", "change", "words"),
    [
        ("dep_delay", {"datatype": "FP64", "data": ["a", "b", "c", "d"]}, "declared FP64"),
        ("sched_hour", {"datatype": "INT64", "data": [1.5, 2, 3, 4]}, "declared INT64"),
        ("sched_hour", {"datatype": "INT8", "data": [300, 2, 3, 4]}, "declared INT8"),
        ("sched_hour", {"datatype": "UINT8", "data": [-1, 2, 3, 4]}, "declared UINT8"),
        ("dep_delay", {"datatype": "BOOL", "data": [1, 0, 1, 0]}, "declared BOOL"),
        ("carrier", {"datatype": "BYTES", "data": [1, 2, 3, 4]}, "declared BYTES"),
        ("dep_delay", {"datatype": "FP64", "data": [True, 1.0, 2.0, 3.0]}, "declared FP64"),
        ("dep_delay", {"datatype": {}, "data": [1.0, 2.0, 3.0, 4.0]}, "unknown datatype"),
        ("dep_delay", {"shape": [4], "data": [[1.0, 2.0], [3.0, 4.0]]}, "does not follow"),
        ("dep_delay", {"shape": [2, 2], "data": [[1.0, 2.0, 3.0], [4.0]]}, "does not follow"),
        ("dep_delay", {"shape": [4], "data": [1.0, 2.0, 3.0]}, "needs 4 values"),
    ],
)
def test_inputs_that_contradict_their_declaration_are_422(
    client: httpx.Client, frame: pd.DataFrame, name: str, change: dict[str, Any], words: str
) -> None:
    message = error(client.post(INFER, json={"inputs": changed(frame, name, **change)}))
    assert words in message


def test_duplicate_input_names_are_422(client: httpx.Client, frame: pd.DataFrame) -> None:
    body = inputs(frame)
    twice = [*body, {**body[0], "data": [0.0] * len(frame)}]  # last used to win silently
    assert "sent twice" in error(client.post(INFER, json={"inputs": twice}))


def test_outputs_are_the_ones_asked_for(client: httpx.Client, frame: pd.DataFrame) -> None:
    only = client.post(INFER, json={"inputs": inputs(frame), "outputs": [{"name": "predict"}]})
    assert [o["name"] for o in only.json()["outputs"]] == ["predict"]
    unknown = {"inputs": inputs(frame), "outputs": [{"name": "logits"}]}
    assert "output 0" in error(client.post(INFER, json=unknown))


def binary_body(frame: pd.DataFrame, **parameters: Any) -> tuple[bytes, int]:
    """The request tritonclient would build: JSON header, then each input's raw bytes."""
    header: dict[str, Any] = {"inputs": [], "parameters": parameters}
    blobs = []
    for tensor in inputs(frame):
        if tensor["datatype"] == "BYTES":
            blob = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in tensor["data"])
        else:
            dtype = "<i8" if tensor["datatype"] == "INT64" else "<f8"
            blob = np.asarray(tensor["data"], dtype=dtype).tobytes()
        blobs.append(blob)
        header["inputs"].append(
            {k: tensor[k] for k in ("name", "shape", "datatype")}
            | {"parameters": {"binary_data_size": len(blob)}}
        )
    text = json.dumps(header).encode()
    return text + b"".join(blobs), len(text)


def test_the_binary_tensor_extension_both_ways(client: httpx.Client, frame: pd.DataFrame) -> None:
    expected = client.post(INFER, json={"inputs": inputs(frame)}).json()["outputs"]
    body, length = binary_body(frame)
    headers = {"Inference-Header-Content-Length": str(length)}
    json_out = client.post(INFER, content=body, headers=headers)  # no Content-Type, as tritonclient
    assert json_out.status_code == 200, json_out.text
    assert json_out.json()["outputs"] == expected
    body, length = binary_body(frame, binary_data_output=True)
    headers = {"Inference-Header-Content-Length": str(length)}
    binary = client.post(INFER, content=body, headers=headers)
    assert binary.status_code == 200, binary.text[:200]
    split = int(binary.headers["inference-header-content-length"])
    answer = json.loads(binary.content[:split])
    rest = binary.content[split:]
    predict, proba = answer["outputs"]
    assert "data" not in predict and "data" not in proba
    size = predict["parameters"]["binary_data_size"]
    assert np.frombuffer(rest[:size], "<i8").tolist() == expected[0]["data"]
    np.testing.assert_array_equal(np.frombuffer(rest[size:], "<f8"), expected[1]["data"])


@pytest.mark.parametrize(
    ("cut", "header", "expected"),
    [
        (0, "abc", (400, "Inference-Header-Content-Length")),
        (0, "999999", (400, "Inference-Header-Content-Length")),
        (8, None, (422, "runs past the end")),  # binary data shorter than declared
        (-5, None, (422, "after the JSON header")),  # extra bytes after the data
    ],
)
def test_malformed_binary_requests_are_4xx(
    client: httpx.Client,
    frame: pd.DataFrame,
    cut: int,
    header: str | None,
    expected: tuple[int, str],
) -> None:
    body, length = binary_body(frame)
    if cut > 0:
        body = body[:-cut]
    elif cut < 0:
        body += b"\0" * -cut
    headers = {"Inference-Header-Content-Length": header or str(length)}
    status, words = expected
    assert words in error(client.post(INFER, content=body, headers=headers), status)
