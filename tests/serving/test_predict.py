"""Predict round trip over HTTP: answers equal the registered model's own, and are logged."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from livemodel.demo.flights import FEATURES
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, cli, records, registry_at

URL = "/v1/models/flights/predict"


@pytest.fixture(scope="module")
def rows(models: Models) -> pd.DataFrame:
    return models.data.iloc[3000:3040].reset_index(drop=True)


@pytest.fixture(scope="module")
def registered(server: Server) -> Any:
    """Version 1 of ``flights`` as the registry loads it (not the in-memory estimator)."""
    return registry_at(server.home).load("flights@1").model


def check_rows(answer: list[dict[str, Any]], frame: pd.DataFrame, model: Any) -> None:
    expected = model.predict_proba(frame[list(FEATURES)])
    assert len(answer) == len(frame)
    for row, proba in zip(answer, expected, strict=True):
        assert row["version"] == 1
        assert row["flags"] == [] or all(
            f.startswith(("out_of_range", "unseen")) for f in row["flags"]
        )
        assert row["proba"] == pytest.approx({"0": proba[0], "1": proba[1]}, rel=1e-9, abs=1e-12)
        assert row["label"] == int(np.argmax(proba))
        assert math.isclose(sum(row["proba"].values()), 1.0)


@pytest.mark.parametrize("shape", ["records", "list", "dataframe_records", "record"])
def test_body_shapes_answer_like_the_model(
    http: httpx.Client, rows: pd.DataFrame, registered: Any, shape: str
) -> None:
    batch = records(rows)
    body: Any = {
        "records": {"records": batch},
        "list": batch,
        "dataframe_records": {"dataframe_records": batch},
        "record": {"record": batch[0]},
    }[shape]
    response = http.post(URL, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "flights"
    assert answer["version"] == 1
    expected = rows.iloc[:1] if shape == "record" else rows
    check_rows(answer["predictions"], expected, registered)


def test_one_record_at_a_time_equals_the_batch(
    http: httpx.Client, rows: pd.DataFrame, registered: Any
) -> None:
    singles = []
    for record in records(rows.iloc[:8]):
        response = http.post(URL, json=[record])
        assert response.status_code == 200, response.text
        singles.extend(response.json()["predictions"])
    check_rows(singles, rows.iloc[:8], registered)


def test_ids_are_unique_and_every_answer_is_logged(
    server: Server, http: httpx.Client, rows: pd.DataFrame
) -> None:
    sent = records(rows)
    answers: list[dict[str, Any]] = []
    for start in range(0, len(sent), 7):
        response = http.post(URL, json={"records": sent[start : start + 7]})
        assert response.status_code == 200, response.text
        answers.extend(response.json()["predictions"])
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == len(ids) == len(sent)

    # The real CLI, in another process.
    exported = json.loads(
        cli(server.home, server.faults, "predictions", "flights", "--json").stdout
    )
    by_id = {row["prediction_id"]: row for row in exported}
    # The columnar reader.
    table = LogReader(server.home / "logs").window("flights").to_pylist()
    read = {row["prediction_id"]: row for row in table}
    for record, answer in zip(sent, answers, strict=True):
        for logged in (by_id[answer["id"]], read[answer["id"]]):
            assert logged["model"] == "flights"
            assert logged["version"] == 1
            for name in FEATURES:
                assert logged[f"f.{name}"] == record[name], name
            assert logged["o.label"] == answer["label"]
            assert logged["o.proba.0"] == answer["proba"]["0"]
            assert logged["o.proba.1"] == answer["proba"]["1"]
            assert list(logged["flags"]) == answer["flags"]
            assert logged["latency_ms"] >= 0
        assert by_id[answer["id"]]["label"] is None  # no feedback yet


def test_models_listing(http: httpx.Client) -> None:
    listed = {m["name"]: m for m in http.get("/v1/models").json()}
    assert listed["flights"] == {
        "name": "flights",
        "version": 1,
        "alias": "production",
        "validation": "reject",
        "fallback": "error",
    }
    assert listed["flagged"]["validation"] == "flag"
    assert listed["fault-prev"]["version"] == 2
