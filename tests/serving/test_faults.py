"""A misbehaving model: raises, answers NaN, hangs. Fallbacks answer, flagged and counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from livemodel.demo.flights import FEATURES
from livemodel.store.logreader import LogReader

from .conftest import (
    DEFAULT_OUTPUT,
    NAN,
    RAISE,
    SLEEP,
    SLEEP_S,
    Models,
    Server,
    metric,
    records,
)


@pytest.fixture(scope="module")
def rows(models: Models) -> list[dict[str, Any]]:
    frame = models.data.iloc[3600:]
    return records(frame[frame[list(FEATURES)].notna().all(axis=1)].iloc[:4])


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


def expected_proba(models: Models, batch: list[dict[str, Any]]) -> list[float]:
    import pandas as pd

    return list(models.linear_v1.predict_proba(pd.DataFrame(batch)[list(FEATURES)])[:, 1])


def fallbacks(client: httpx.Client, model: str, reason: str) -> float:
    return metric(
        client.get("/metrics").text, "livemodel_fallbacks_total", model=model, reason=reason
    )


def logged_ids(server: Server, model: str) -> set[str]:
    table = LogReader(server.home / "logs").window(model, columns=["prediction_id"])
    return set(table.column("prediction_id").to_pylist())


def logged_count(server: Server, model: str) -> int:
    try:
        return len(logged_ids(server, model))
    except Exception:  # noqa: BLE001 - no log yet
        return 0


def test_healthy_rows_are_answered_by_the_faulty_version(
    client: httpx.Client, models: Models, rows: list[dict[str, Any]]
) -> None:
    for model in ("fault-prev", "fault-default", "fault-error"):
        response = client.post(f"/v1/models/{model}/predict", json=rows)
        assert response.status_code == 200, response.text
        answer = response.json()["predictions"]
        assert [r["version"] for r in answer] == [2] * len(rows)
        assert [r["flags"] for r in answer] == [[]] * len(rows)
        assert [r["proba"]["1"] for r in answer] == pytest.approx(expected_proba(models, rows))


def test_raising_model_falls_back_to_the_previous_version(
    server: Server, client: httpx.Client, models: Models, rows: list[dict[str, Any]]
) -> None:
    before = fallbacks(client, "fault-prev", "model_error")
    batch = [rows[0], {**rows[1], "dep_delay": RAISE}]
    response = client.post("/v1/models/fault-prev/predict", json=batch)
    assert response.status_code == 200, response.text
    answer = response.json()["predictions"]
    assert [r["version"] for r in answer] == [1, 1]
    for row in answer:
        assert "model_error" in row["flags"] and "fallback:previous" in row["flags"]
    assert [r["proba"]["1"] for r in answer] == pytest.approx(expected_proba(models, batch))
    assert fallbacks(client, "fault-prev", "model_error") - before == 2
    logged = {
        r["prediction_id"]: r
        for r in LogReader(server.home / "logs").window("fault-prev").to_pylist()
    }
    for row in answer:
        assert logged[row["id"]]["version"] == 1
        assert "fallback:previous" in logged[row["id"]]["flags"]


def test_raising_model_with_a_default_answer(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    before = fallbacks(client, "fault-default", "model_error")
    response = client.post(
        "/v1/models/fault-default/predict", json=[{**rows[0], "dep_delay": RAISE}]
    )
    assert response.status_code == 200, response.text
    (row,) = response.json()["predictions"]
    assert row["label"] == DEFAULT_OUTPUT["label"]
    assert row["proba"] == DEFAULT_OUTPUT["proba"]
    assert row["version"] == 2
    assert "fallback:default" in row["flags"] and "model_error" in row["flags"]
    assert fallbacks(client, "fault-default", "model_error") - before == 1


def test_raising_model_without_fallback_is_a_clear_503_and_logs_nothing(
    server: Server, client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    before = logged_count(server, "fault-error")
    counted = fallbacks(client, "fault-error", "model_error")
    response = client.post(
        "/v1/models/fault-error/predict", json=[rows[0], {**rows[1], "dep_delay": RAISE}]
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "fault-error" in error["message"] and "no fallback" in error["message"]
    assert "Traceback" not in response.text and "on purpose" not in response.text
    assert logged_count(server, "fault-error") == before
    assert fallbacks(client, "fault-error", "model_error") - counted == 2
    # The next request is answered as usual.
    assert client.post("/v1/models/fault-error/predict", json=rows[:1]).status_code == 200


@pytest.mark.parametrize(("model", "status"), [("fault-prev", 200), ("fault-default", 200),
                                               ("fault-error", 422)])  # fmt: skip
def test_nan_output_falls_back_for_that_row_only(
    client: httpx.Client, models: Models, rows: list[dict[str, Any]], model: str, status: int
) -> None:
    before = fallbacks(client, model, "nan_output")
    batch = [rows[0], {**rows[1], "dep_delay": NAN}, rows[2]]
    response = client.post(f"/v1/models/{model}/predict", json=batch)
    assert response.status_code == status, response.text
    assert fallbacks(client, model, "nan_output") - before == 1
    if status != 200:
        assert "nan_output" in assert_json_error_503(response)
        return
    first, bad, third = response.json()["predictions"]
    assert first["flags"] == third["flags"] == []
    assert first["version"] == third["version"] == 2
    assert "nan_output" in bad["flags"]
    if model == "fault-prev":
        assert bad["version"] == 1
        assert bad["proba"]["1"] == pytest.approx(expected_proba(models, batch)[1])
    else:
        assert bad["proba"] == DEFAULT_OUTPUT["proba"]
    for row in (first, bad, third):  # never a NaN passed off as a number
        assert all(0.0 <= p <= 1.0 for p in row["proba"].values())


def assert_json_error_503(response: httpx.Response) -> str:
    assert response.status_code == 422
    message: str = response.json()["error"]["message"]
    return message


def test_one_bad_request_does_not_sink_the_others_in_its_batch(
    server: Server, models: Models, rows: list[dict[str, Any]]
) -> None:
    """Requests batched with a raising one get their own model's answer."""
    bodies = [[{**r, "dep_delay": RAISE}] if i % 5 == 0 else [r] for i, r in enumerate(rows * 10)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            return list(
                await asyncio.gather(
                    *(http.post("/v1/models/fault-error/predict", json=b) for b in bodies)
                )
            )

    responses = asyncio.run(fire())
    statuses = [r.status_code for r in responses]
    assert statuses == [422 if i % 5 == 0 else 200 for i in range(len(bodies))]
    for response in responses:
        if response.status_code == 200:
            assert response.json()["predictions"][0]["version"] == 2


@pytest.mark.parametrize("model", ["slow-prev", "slow-error"])
def test_hanging_model_times_out_and_the_worker_keeps_serving(
    server: Server, client: httpx.Client, models: Models, rows: list[dict[str, Any]], model: str
) -> None:
    before_ids = logged_ids(server, model) if logged_count(server, model) else set()
    trace = server.home / "faults-trace.txt"
    woken = len(trace.read_text().splitlines()) if trace.exists() else 0
    before = fallbacks(client, model, "timeout")
    response = client.post(f"/v1/models/{model}/predict", json=[{**rows[0], "dep_delay": SLEEP}])
    acknowledged: set[str] = set()
    if model == "slow-prev":
        assert response.status_code == 200, response.text
        (row,) = response.json()["predictions"]
        assert row["version"] == 1
        assert "timeout" in row["flags"] and "fallback:previous" in row["flags"]
        acknowledged.add(row["id"])
    else:
        assert response.status_code == 503, response.text
        assert "did not answer within 400 ms" in response.json()["error"]["message"]
    assert fallbacks(client, model, "timeout") - before == 1
    # While the model thread is still stuck, the next requests are answered by version 2.
    for _ in range(3):
        response = client.post(f"/v1/models/{model}/predict", json=rows[:2])
        assert response.status_code == 200, response.text
        assert [r["version"] for r in response.json()["predictions"]] == [2, 2]
        acknowledged |= {r["id"] for r in response.json()["predictions"]}
    # Once the stuck call returns, what it computed is not logged: nobody was answered with it.
    deadline = time.monotonic() + SLEEP_S + 60
    while not trace.exists() or len(trace.read_text().splitlines()) == woken:
        assert time.monotonic() < deadline, "the hung model call never returned"
        time.sleep(0.1)
    time.sleep(0.5)  # the rest of that batch's work, were it to log anything
    assert client.post(f"/v1/models/{model}/predict", json=rows[:1]).status_code == 200
    new = logged_ids(server, model) - before_ids
    assert acknowledged <= new
    assert len(new - acknowledged) == 1  # the last request above
