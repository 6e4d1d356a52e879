"""Feedback: labels joined by prediction id, late, out of order, duplicated, checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, assert_json_error, cli, records

FEEDBACK = "/v1/models/flights/feedback"


@pytest.fixture(scope="module")
def client(server: Server, feedback_headers: dict[str, str]) -> httpx.Client:
    return server.client(headers=feedback_headers)


def predict(client: httpx.Client, models: Models, n: int, start: int = 3300) -> list[str]:
    response = client.post(
        "/v1/models/flights/predict", json=records(models.data.iloc[start : start + n])
    )
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["predictions"]]


def history(server: Server) -> list[dict[str, Any]]:
    with LabelLog(server.home / "logs") as labels:
        return list(labels.history("flights").to_pylist())


def joined(server: Server, *, with_cli: bool = False) -> dict[str, Any]:
    """Predictions with their latest label, by the real CLI or the log reader."""
    if with_cli:
        done = cli(server.home, server.faults, "predictions", "flights", "--json")
        return {row["prediction_id"]: row for row in json.loads(done.stdout)}
    table = LogReader(server.home / "logs").window("flights", with_labels=True)
    return {row["prediction_id"]: row for row in table.to_pylist()}


def test_labels_join_by_id_late_and_out_of_order(
    server: Server, client: httpx.Client, models: Models
) -> None:
    ids = predict(client, models, 6)
    week_ago = datetime.now(UTC) - timedelta(days=7)
    sent = {pid: i % 2 for i, pid in enumerate(ids)}
    # Reverse order, in two batches, the second observed a week ago (late, back-dated).
    first = [{"id": pid, "label": sent[pid]} for pid in reversed(ids[3:])]
    second = [
        {"id": pid, "label": sent[pid], "time": week_ago.isoformat(), "source": "audit"}
        for pid in reversed(ids[:3])
    ]
    for batch in (first, second):
        response = client.post(FEEDBACK, json={"labels": batch})
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 3, "unknown_ids": []}
    rows = joined(server, with_cli=True)
    for pid in ids:
        assert rows[pid]["label"] == sent[pid]
    assert rows[ids[0]]["label_source"] == "audit"
    assert rows[ids[5]]["label_source"] == "feedback"
    label_time = datetime.fromisoformat(rows[ids[0]]["label_time"])
    assert abs(label_time - week_ago) < timedelta(seconds=1)


def test_duplicates_last_write_wins_and_history_keeps_all(
    server: Server, client: httpx.Client, models: Models
) -> None:
    (pid, other) = predict(client, models, 2, start=3320)
    for value in (0, 1):
        response = client.post(FEEDBACK, json={"labels": [{"id": pid, "label": value}]})
        assert response.json()["accepted"] == 1
    # Within one batch too: the later entry wins.
    response = client.post(
        FEEDBACK, json={"labels": [{"id": other, "label": 1}, {"id": other, "label": 0}]}
    )
    assert response.json() == {"accepted": 2, "unknown_ids": []}
    rows = joined(server)
    assert rows[pid]["label"] == 1
    assert rows[other]["label"] == 0
    past = [r for r in history(server) if r["prediction_id"] == pid]
    assert [r["label"] for r in past] == [0, 1]
    with LabelLog(server.home / "logs") as labels:
        latest = {r["prediction_id"]: r["label"] for r in labels.latest("flights").to_pylist()}
    assert latest[pid] == 1 and latest[other] == 0


def test_unknown_ids_are_reported_and_not_written(
    server: Server, client: httpx.Client, models: Models
) -> None:
    (known,) = predict(client, models, 1, start=3330)
    unknown = ["f" * 32, "no-such-prediction"]
    response = client.post(
        FEEDBACK,
        json={"labels": [{"id": unknown[0], "label": 1}, {"id": known, "label": 1},
                         {"id": unknown[1], "label": 0}]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "unknown_ids": sorted(unknown)}
    written = {r["prediction_id"] for r in history(server)}
    assert known in written
    assert not written & set(unknown)
    # Only unknown ids: nothing accepted, all reported.
    response = client.post(FEEDBACK, json={"labels": [{"id": unknown[0], "label": 1}]})
    assert response.json() == {"accepted": 0, "unknown_ids": [unknown[0]]}


def test_numeric_label_of_a_class_is_normalised(
    server: Server, client: httpx.Client, models: Models
) -> None:
    (pid,) = predict(client, models, 1, start=3340)
    response = client.post(FEEDBACK, json={"labels": [{"id": pid, "label": 1.0}]})
    assert response.json()["accepted"] == 1
    assert joined(server)[pid]["label"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"label": "late"},
        {"label": 2},
        {"label": True},
        {"label": None},
        {"label": [1]},
        {"label": {"value": 1}},
        {"label": 0.5},
        {},  # no label
        {"label": 1, "time": "yesterday"},
        {"label": 1, "time": 12},
        {"label": 1, "source": ""},
        {"label": 1, "source": "x" * 100},
    ],
)
def test_a_bad_label_refuses_the_whole_batch(
    server: Server, client: httpx.Client, models: Models, bad: dict[str, Any]
) -> None:
    good_id, bad_id = predict(client, models, 2, start=3350)
    before = len(history(server))
    body = {"labels": [{"id": good_id, "label": 1}, {"id": bad_id, **bad}]}
    error = assert_json_error(client.post(FEEDBACK, json=body), 422)
    assert "label 1" in error["message"]
    assert len(history(server)) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"labels": []},
        {"labels": {"id": "x", "label": 1}},
        {"labels": ["x"]},
        {"labels": [{"id": 12, "label": 1}]},
        {"labels": [{"id": "", "label": 1}]},
        {"labels": [{"id": "x" * 500, "label": 1}]},
        [{"id": "x", "label": 1}],
    ],
)
def test_malformed_feedback(server: Server, client: httpx.Client, body: Any) -> None:
    before = len(history(server))
    assert_json_error(client.post(FEEDBACK, json=body), 422)
    assert len(history(server)) == before


def test_too_many_labels(client: httpx.Client) -> None:
    body = {"labels": [{"id": f"id{i}", "label": 1} for i in range(501)]}
    assert_json_error(client.post(FEEDBACK, json=body), 413)


def test_feedback_for_an_unknown_model(client: httpx.Client) -> None:
    assert_json_error(
        client.post("/v1/models/nope/feedback", json={"labels": [{"id": "a", "label": 1}]}), 404
    )


def test_labels_are_readable_with_the_log_reader(server: Server) -> None:
    table = LogReader(server.home / "logs").window("flights", with_labels=True).to_pylist()
    assert any(row["label"] is not None for row in table)
