"""Hostile and malformed requests get a 4xx with a JSON error, never a 5xx or a traceback."""

from __future__ import annotations

import contextlib
import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livemodel.demo.flights import FEATURES

from .conftest import Models, Server, assert_json_error, records

PREDICT = "/v1/models/flights/predict"
LIMIT = 1 << 20  # the default max_body_bytes


@pytest.fixture(scope="module")
def good(models: Models) -> dict[str, Any]:
    frame = models.data.iloc[3200:]
    return records(frame[frame[list(FEATURES)].notna().all(axis=1)].iloc[:1])[0]


@pytest.fixture(scope="module")
def client(server: Server, feedback_headers: dict[str, str]) -> httpx.Client:
    return server.client(headers=feedback_headers)  # so bodies reach feedback's checks


def post_raw(client: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"", 400),
        (b"   ", 400),
        (b"{", 400),
        (b'[{"dep_delay": NaN}]', 400),
        (b'[{"dep_delay": Infinity}]', 400),
        (b'[{"dep_delay": -Infinity}]', 400),
        (b'[{"dep_delay": 1e400}]', 400),
        (b'[{"carrier": "\\ud800"}]', 400),
        (b"\xff\xfe\x00", 400),
        (b"[" * 5000 + b"]" * 5000, 400),
        (b"null", 422),
        (b"42", 422),
        (b'"records"', 422),
        (b"[]", 422),
        (b"{}", 422),
        (b'{"records": []}', 422),
        (b'{"records": {"dep_delay": 1}}', 422),
        (b'{"records": "all of them"}', 422),
        (b'{"dataframe_records": null}', 422),
        (b"[1]", 422),
        (b'["a record"]', 422),
        (b"[[1, 2, 3]]", 422),
        (b"[null]", 422),
        (b"[{}]", 422),
    ],
)
def test_malformed_bodies(client: httpx.Client, body: bytes, status: int) -> None:
    assert_json_error(post_raw(client, PREDICT, body), status)


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"deeper": [1, 2]}},
        [1.0, 2.0],
        [],
        {},
        "x" * 200_000,
        10**30,
        -(10**30),
        True,
        "",
        "12.5",
    ],
)
def test_hostile_values_of_a_numeric_feature(
    client: httpx.Client, good: dict[str, Any], value: Any
) -> None:
    response = post_raw(client, PREDICT, json.dumps([{**good, "dep_delay": value}]).encode())
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert "dep_delay" in assert_json_error(response)["message"]
    else:  # a number out of the training range: answered and flagged
        assert response.json()["predictions"][0]["flags"] == ["out_of_range:dep_delay"]


@pytest.mark.parametrize("value", ["x" * 200_000, "a\x00b", "\u2603\U0001f600", " UA", "ua"])
def test_hostile_strings_of_a_categorical_feature(
    server: Server, client: httpx.Client, good: dict[str, Any], value: str
) -> None:
    response = post_raw(client, PREDICT, json.dumps([{**good, "carrier": value}]).encode())
    assert response.status_code == 200, response.text
    row = response.json()["predictions"][0]
    assert row["flags"] == ["unseen_category:carrier"]


def test_many_unexpected_columns_are_ignored(client: httpx.Client, good: dict[str, Any]) -> None:
    extra = {f"col{i}": i for i in range(2_000)}
    response = client.post(PREDICT, json=[{**good, **extra, "": 1, "f.x": 2}])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["flags"] == []


def test_body_over_the_limit_with_content_length(client: httpx.Client) -> None:
    body = b"[" + b" " * (LIMIT + 10) + b"]"
    assert_json_error(post_raw(client, PREDICT, body), 413)


def test_body_over_the_limit_chunked(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(17):
            yield b" " * 65_536
        yield b"]"

    response = client.post(PREDICT, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_json_error(response, 413)


def raw_exchange(server: Server, request: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes on a fresh socket and read what comes back until the server closes."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := sock.recv(65_536):
                answer += chunk
                if b"\r\n\r\n" in answer and not half_close:
                    break
    return answer


def head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("length", ["abc", "-1", "99999999999999999999999"])
def test_invalid_content_length(server: Server, client: httpx.Client, length: str) -> None:
    answer = raw_exchange(server, head(PREDICT, **{"Content-Length": length}) + b"[]")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert client.get("/healthz").status_code == 200


def test_client_hanging_up_mid_body(server: Server, client: httpx.Client) -> None:
    raw_exchange(server, head(PREDICT, **{"Content-Length": "5000"}) + b"[{", half_close=True)
    assert client.get("/healthz").status_code == 200
    assert "Traceback" not in server.log_text()


def test_too_many_rows(client: httpx.Client, good: dict[str, Any]) -> None:
    error = assert_json_error(client.post(PREDICT, json=[good] * 501), 413)
    assert "500" in error["message"]
    assert client.post(PREDICT, json=[good] * 500).status_code == 200


def test_unknown_model_and_paths(client: httpx.Client, good: dict[str, Any]) -> None:
    error = assert_json_error(client.post("/v1/models/nope/predict", json=[good]), 404)
    assert "nope" in error["message"] and "flights" in error["message"]
    assert_json_error(client.post("/v1/models/..%2F..%2Fetc/predict", json=[good]), 404)
    assert_json_error(client.get("/v1/nothing-here"), 404)
    assert_json_error(client.get("/v2/models/nope"), 404)
    assert_json_error(client.post("/v2/models/nope/infer", json={"inputs": []}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", PREDICT),
        ("PUT", PREDICT),
        ("DELETE", "/v1/models"),
        ("POST", "/metrics"),
        ("GET", "/v1/models/flights/feedback"),
        ("GET", "/v1/models/flights/aliases/production"),
    ],
)
def test_wrong_method(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert_json_error(response, 405)
    assert "allow" in response.headers


# -- fuzz -------------------------------------------------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["UA", "JFK", "", "9E"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
feature_records = st.dictionaries(
    st.sampled_from([*FEATURES, "late", "extra"]) | st.text(max_size=6), values, max_size=12
)
bodies = (
    values
    | st.lists(feature_records, max_size=4)
    | st.fixed_dictionaries({"records": st.lists(feature_records, max_size=3) | values})
    | st.fixed_dictionaries({"labels": st.lists(values, max_size=3) | values})
    | st.fixed_dictionaries({"inputs": st.lists(values, max_size=3) | values})
)
paths = st.sampled_from(
    [
        PREDICT,
        "/v1/models/flagged/predict",
        "/v1/models/flights/feedback",
        "/v2/models/flights/infer",
        "/v1/models/flights/aliases/production",
        "/v1/review/flights/abc",
    ]
)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert_json_error(response)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=paths, body=bodies)
def test_fuzzed_json_bodies(client: httpx.Client, path: str, body: Any) -> None:
    # The standard library writes NaN/Infinity literals and integers of any size.
    raw = json.dumps(body).encode()
    check_answer(client.post(path, content=raw, headers={"content-type": "application/json"}))


def test_mutated_bytes(client: httpx.Client, good: dict[str, Any]) -> None:
    rng = random.Random(20240601)
    valid = json.dumps({"records": [good, good]}).encode()
    alphabet = b'{}[]":,0123456789.eE-+ntfalsu\\\x00\xff'
    for _ in range(100):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(body))
            action = rng.random()
            if action < 0.4:
                body[at] = rng.choice(alphabet)
            elif action < 0.7:
                del body[at]
            else:
                body.insert(at, rng.choice(alphabet))
        check_answer(post_raw(client, PREDICT, bytes(body)))
