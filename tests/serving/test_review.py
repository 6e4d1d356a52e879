"""The review queue: low-confidence predictions wait for a human verdict, which is a label."""

from __future__ import annotations

import json

import httpx
import pytest

from livemodel.demo.flights import FEATURES
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, assert_json_error, cli, metric, records

THRESHOLD = 0.8  # review_threshold of the "reviewed" model in the test config


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


def pending(client: httpx.Client, token: str) -> list[str]:
    response = client.get(
        "/v1/review",
        params={"model": "reviewed", "limit": 10_000},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return [item["prediction_id"] for item in response.json()["items"]]


def test_low_confidence_predictions_are_queued_and_a_verdict_labels_them(
    server: Server,
    client: httpx.Client,
    models: Models,
    admin_token: str,
    feedback_headers: dict[str, str],
) -> None:
    frame = models.data.iloc[3700:3760]
    proba = models.linear_v1.predict_proba(frame[list(FEATURES)])
    unsure = proba.max(axis=1) < THRESHOLD
    assert 0 < unsure.sum() < len(frame)  # the data gives both kinds

    flagged_before = metric(
        client.get("/metrics").text, "livemodel_review_flagged_total", model="reviewed"
    )
    response = client.post("/v1/models/reviewed/predict", json=records(frame))
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [("low_confidence" in r["flags"]) for r in rows] == unsure.tolist()
    flagged = metric(
        client.get("/metrics").text, "livemodel_review_flagged_total", model="reviewed"
    )
    assert flagged - flagged_before == unsure.sum()

    queued = [r["id"] for r, u in zip(rows, unsure, strict=True) if u]
    auth = {"authorization": f"Bearer {admin_token}"}
    listed = client.get("/v1/review", params={"model": "reviewed"}, headers=auth).json()["items"]
    assert set(queued) <= {item["prediction_id"] for item in listed}
    item = next(i for i in listed if i["prediction_id"] == queued[0])
    assert item["model"] == "reviewed" and item["version"] == 1
    assert set(item["features"]) == set(FEATURES)
    assert (
        item["outputs"]["proba.1"] == rows[[r["id"] for r in rows].index(queued[0])]["proba"]["1"]
    )

    # The CLI sees the same queue.
    done = cli(server.home, server.faults, "review", "list", "--model", "reviewed", "--json",
               "--limit", "10000")  # fmt: skip
    assert {r["prediction_id"] for r in json.loads(done.stdout)} == set(
        pending(client, admin_token)
    )

    # A verdict is recorded as the label, and the prediction leaves the queue.
    verdict = client.post(f"/v1/review/reviewed/{queued[0]}", json={"label": 1}, headers=auth)
    assert verdict.status_code == 200, verdict.text
    assert verdict.json() == {"prediction_id": queued[0], "label": 1}
    assert queued[0] not in pending(client, admin_token)
    exported = LogReader(server.home / "logs").window("reviewed", with_labels=True).to_pylist()
    labelled = next(r for r in exported if r["prediction_id"] == queued[0])
    assert (labelled["label"], labelled["label_source"]) == (1, "review")
    # Ordinary feedback also takes a prediction out of the queue.
    feedback = client.post(
        "/v1/models/reviewed/feedback",
        json={"labels": [{"id": queued[1], "label": 0}]},
        headers=feedback_headers,
    )
    assert feedback.json() == {"accepted": 1, "unknown_ids": []}
    assert queued[1] not in pending(client, admin_token)


def test_verdicts_are_checked(client: httpx.Client, models: Models, admin_token: str) -> None:
    auth = {"authorization": f"Bearer {admin_token}"}
    response = client.post("/v1/models/reviewed/predict", json=records(models.data.iloc[3800:3801]))
    pid = response.json()["predictions"][0]["id"]
    for body in ({"label": "maybe"}, {"label": 3}, {}, [1], {"label": None}):
        assert_json_error(client.post(f"/v1/review/reviewed/{pid}", json=body, headers=auth), 422)
    error = assert_json_error(
        client.post("/v1/review/reviewed/not-a-prediction", json={"label": 1}, headers=auth), 404
    )
    assert "not-a-prediction" in error["message"]
    assert_json_error(client.post(f"/v1/review/nope/{pid}", json={"label": 1}, headers=auth), 404)
    for params in ({"limit": "0"}, {"limit": "x"}, {"days": "-1"}, {"limit": "99999999"}):
        assert_json_error(client.get("/v1/review", params=params, headers=auth), 422)


def test_review_needs_the_admin_scope(server: Server, client: httpx.Client, models: Models) -> None:
    predict_only = (
        cli(server.home, server.faults, "token", "create", "reviewer", "--scope", "predict")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert_json_error(client.get("/v1/review"), 401)
    assert_json_error(client.post("/v1/review/reviewed/x", json={"label": 1}), 401)
    auth = {"authorization": f"Bearer {predict_only}"}
    assert_json_error(client.get("/v1/review", headers=auth), 403)
    assert_json_error(client.post("/v1/review/reviewed/x", json={"label": 1}, headers=auth), 403)
