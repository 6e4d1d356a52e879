"""Micro-batching: concurrent single-row requests share model calls, answers unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from livemodel.demo.flights import FEATURES

from .conftest import Models, Server, metric, records

PREDICT = "/v1/models/forest/predict"


async def fire(url: str, bodies: list[Any], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(body: Any) -> httpx.Response:
            async with gate:
                return await client.post(PREDICT, json=body)

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def counters(server: Server) -> tuple[float, float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return (
        metric(text, "livemodel_batches_total", model="forest"),
        metric(text, "livemodel_batch_rows_sum", model="forest"),
        metric(text, "livemodel_requests_total", model="forest", endpoint="predict"),
    )


def test_concurrent_requests_share_model_calls(server: Server, models: Models) -> None:
    frame = models.data.iloc[:200]
    sent = records(frame)
    batches0, rows0, requests0 = counters(server)
    responses = asyncio.run(fire(server.url, [[r] for r in sent], concurrency=48))
    batches1, rows1, requests1 = counters(server)

    assert [r.status_code for r in responses] == [200] * len(sent)
    assert requests1 - requests0 == len(sent)
    assert rows1 - rows0 == len(sent)
    assert 1 <= batches1 - batches0 < len(sent)
    # Sharing a call does not change any row's answer.
    expected = models.forest.predict_proba(frame[list(FEATURES)])[:, 1]
    got = [r.json()["predictions"][0]["proba"]["1"] for r in responses]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    ids = [r.json()["predictions"][0]["id"] for r in responses]
    assert len(set(ids)) == len(ids)


def test_a_rejected_request_does_not_sink_its_batch(server: Server, models: Models) -> None:
    sent = records(models.data.iloc[300:400])
    bodies: list[Any] = [
        [{**r, "dep_delay": "late"}] if i % 4 == 0 else [r] for i, r in enumerate(sent)
    ]
    responses = asyncio.run(fire(server.url, bodies, concurrency=32))
    statuses = [r.status_code for r in responses]
    assert statuses == [422 if i % 4 == 0 else 200 for i in range(len(sent))]
    expected = models.forest.predict_proba(models.data.iloc[300:400][list(FEATURES)])[:, 1]
    for i, response in enumerate(responses):
        if i % 4:
            assert response.json()["predictions"][0]["proba"]["1"] == pytest.approx(expected[i])
