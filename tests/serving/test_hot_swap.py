"""Hot swap under load: moving the serving alias takes effect within a poll, no request fails."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from livemodel.demo.flights import FEATURES

from .conftest import (
    Models,
    Server,
    cli,
    records,
    registry_at,
    start_load,
)


@pytest.fixture(scope="module")
def swapping(server: Server) -> Server:
    """The shared server; the tests move the aliases of their own model, ``swapper``."""
    return server


def versions_seen(outcomes: list[dict[str, Any]]) -> set[int]:
    return {v for o in outcomes if o["ok"] for v in o["versions"]}


def answers_like(client: httpx.Client, models: Models, estimator: Any, version: int) -> None:
    frame = models.data.iloc[3500:3510]
    response = client.post("/v1/models/swapper/predict", json=records(frame))
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    expected = estimator.predict_proba(frame[list(FEATURES)])[:, 1]
    assert [r["version"] for r in rows] == [version] * len(rows)
    assert [r["proba"]["1"] for r in rows] == pytest.approx(list(expected), rel=1e-9)


def test_alias_moves_under_load_without_a_failed_request(
    swapping: Server, models: Models, tmp_path: Path
) -> None:
    client = swapping.client()
    token = (
        cli(swapping.home, swapping.faults, "token", "create", "ops", "--scope", "admin")
        .stdout.strip()
        .splitlines()[-1]
    )
    pool = records(models.data.iloc[3000:3300])
    load = start_load(
        swapping, "swapper", pool, tmp_path / "load", seconds=60, threads=4, max_requests=20_000
    )
    try:
        load.wait_until(lambda o: sum(x["ok"] for x in o) >= 30, "answers from version 1")
        assert versions_seen(load.outcomes()) == {1}

        # 1. The CLI moves the alias in the database; the server's watcher follows.
        cli(swapping.home, swapping.faults, "alias", "set", "swapper", "production", "2")
        load.wait_until(lambda o: 2 in versions_seen(o), "answers from version 2", seconds=20)
        seen = len(load.outcomes())
        load.wait_until(lambda o: len(o) >= seen + 30, "more answers after the swap")
        answers_like(client, models, models.linear_v2, 2)

        # 2. The admin endpoint moves it and the server swaps at once.
        response = client.put(
            "/v1/models/swapper/aliases/production",
            json={"version": 3, "reason": "swap test"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"model": "swapper", "alias": "production", "from": 2, "to": 3}
        load.wait_until(lambda o: 3 in versions_seen(o), "answers from version 3", seconds=20)
        seen = len(load.outcomes())
        load.wait_until(lambda o: len(o) >= seen + 30, "more answers after the second swap")
    finally:
        load.stop()

    outcomes = load.outcomes()
    failures = [o for o in outcomes if not o["ok"]]
    assert not failures, failures[:5]
    assert versions_seen(outcomes) == {1, 2, 3}
    # Each load thread sends one request at a time: its versions never go back.
    per_thread: dict[int, list[int]] = defaultdict(list)
    for outcome in outcomes:
        per_thread[outcome["thread"]].append(max(outcome["versions"]))
    for sequence in per_thread.values():
        assert sequence == sorted(sequence)
    # Version 3 is a copy of version 1's estimator: it answers like it.
    answers_like(client, models, models.linear_v1, 3)
    listed = {m["name"]: m for m in client.get("/v1/models").json()}
    assert listed["swapper"]["version"] == 3
    last = registry_at(swapping.home).audit("swapper")[-1]
    assert (last.alias, last.from_version, last.to_version, last.reason) == (
        "production",
        2,
        3,
        "swap test",
    )
    metrics = client.get("/metrics").text
    assert 'livemodel_served_version{alias="production",model="swapper"} 3.0' in metrics


def test_a_bad_alias_request_changes_nothing(swapping: Server) -> None:
    client = swapping.client()
    token = (
        cli(swapping.home, swapping.faults, "token", "create", "ops2", "--scope", "admin")
        .stdout.strip()
        .splitlines()[-1]
    )
    auth = {"authorization": f"Bearer {token}"}
    before = client.get("/v1/models").json()
    for body in ({}, {"version": 0}, {"version": "2"}, {"version": True}, [2]):
        response = client.put("/v1/models/swapper/aliases/production", json=body, headers=auth)
        assert response.status_code == 422, response.text
    response = client.put(
        "/v1/models/swapper/aliases/production", json={"version": 99}, headers=auth
    )
    assert response.status_code == 404, response.text
    response = client.put("/v1/models/nope/aliases/production", json={"version": 1}, headers=auth)
    assert response.status_code == 404, response.text
    response = client.put(
        "/v1/models/swapper/aliases/Bad%20Alias!", json={"version": 1}, headers=auth
    )
    assert 400 <= response.status_code < 500, response.text
    assert client.get("/v1/models").json() == before
