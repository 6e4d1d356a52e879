"""Signature validation at the door: reject or flag, per model, counted in /metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from livemodel.demo.flights import FEATURES
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, assert_json_error, metric, records


@pytest.fixture(scope="module")
def good(models: Models) -> dict[str, Any]:
    frame = models.data.iloc[3100:]
    frame = frame[frame[list(FEATURES)].notna().all(axis=1)]
    return records(frame.iloc[:1])[0]


def changed(record: dict[str, Any], **values: Any) -> dict[str, Any]:
    out = {**record, **values}
    return {k: v for k, v in out.items() if v != "<drop>"}


def violations(http: httpx.Client, model: str) -> dict[tuple[str, str], float]:
    text = http.get("/metrics").text
    return {
        (feature, kind): metric(
            text, "livemodel_validation_violations_total", model=model, feature=feature, kind=kind
        )
        for feature in FEATURES
        for kind in ("missing_column", "wrong_type", "null", "out_of_range", "unseen_category")
    }


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"origin": "<drop>"}, "origin", "missing_column"),
        ({"dep_delay": "soon"}, "dep_delay", "wrong_type"),
        ({"sched_hour": True}, "sched_hour", "wrong_type"),
        ({"carrier": None}, "carrier", "null"),
        ({"distance": None}, "distance", "null"),
    ],
)
def test_structural_problems_are_rejected(
    http: httpx.Client, good: dict[str, Any], values: dict[str, Any], field: str, problem: str
) -> None:
    before = violations(http, "flights")
    bad = changed(good, **values)
    # A key absent from only some records is a null there; a column is missing when no
    # record has it.
    batch = [bad, bad] if problem == "missing_column" else [good, bad, good]
    error = assert_json_error(http.post("/v1/models/flights/predict", json=batch), 422)
    assert error["type"] == "ValidationError"
    assert field in error["message"]
    assert problem.replace("_", " ") in error["message"]
    row = "0" if problem == "missing_column" else "1"
    assert error["details"] == [{"field": field, "problem": problem, "row": row}]
    # Names the problem without dumping the signature (no category lists, bounds or types).
    assert "9E" not in str(error) and "categories" not in str(error)
    assert len(str(error)) < 600
    after = violations(http, "flights")
    assert after[(field, problem)] - before[(field, problem)] == 1
    assert sum(after.values()) - sum(before.values()) == 1


def test_many_problems_are_summarised(http: httpx.Client, good: dict[str, Any]) -> None:
    bad = {name: [1, 2] for name in FEATURES}
    error = assert_json_error(http.post("/v1/models/flights/predict", json=[bad]), 422)
    assert "more)" in error["message"]
    assert len(error["details"]) <= 20


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"distance": 1e6}, "out_of_range:distance"),
        ({"dep_delay": -500.0}, "out_of_range:dep_delay"),
        ({"carrier": "ZZ"}, "unseen_category:carrier"),
    ],
)
def test_value_problems_are_answered_and_flagged(
    server: Server, http: httpx.Client, good: dict[str, Any], values: dict[str, Any], flag: str
) -> None:
    before = violations(http, "flights")
    response = http.post("/v1/models/flights/predict", json=[good, changed(good, **values)])
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["flags"] == []
    assert second["flags"] == [flag]
    logged = {
        r["prediction_id"]: r for r in LogReader(server.home / "logs").window("flights").to_pylist()
    }
    assert list(logged[second["id"]]["flags"]) == [flag]
    kind, _, feature = flag.partition(":")
    assert violations(http, "flights")[(feature, kind)] - before[(feature, kind)] == 1


def test_flag_mode_answers_and_logs_the_violations(
    server: Server, http: httpx.Client, good: dict[str, Any]
) -> None:
    before = violations(http, "flagged")
    batch = [
        changed(good, dep_delay="soon"),
        changed(good, distance=None),
        changed(good, carrier="ZZ", distance=1e6),
        changed(good, temp=None),  # nullable: no flag
    ]
    response = http.post("/v1/models/flagged/predict", json=batch)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    expected = [
        ["wrong_type:dep_delay"],
        ["null:distance"],
        ["out_of_range:distance", "unseen_category:carrier"],
        [],
    ]
    assert [sorted(r["flags"]) for r in rows] == expected
    for row in rows:
        assert row["label"] in (0, 1)
    logged = {
        r["prediction_id"]: r for r in LogReader(server.home / "logs").window("flagged").to_pylist()
    }
    assert [sorted(logged[r["id"]]["flags"]) for r in rows] == expected
    assert logged[rows[0]["id"]]["f.dep_delay"] is None  # the wrong-type cell is not kept as text
    after = violations(http, "flagged")
    assert after[("dep_delay", "wrong_type")] - before[("dep_delay", "wrong_type")] == 1
    assert after[("distance", "null")] - before[("distance", "null")] == 1
    assert after[("carrier", "unseen_category")] - before[("carrier", "unseen_category")] == 1


def test_flag_mode_with_a_missing_column(http: httpx.Client, good: dict[str, Any]) -> None:
    response = http.post("/v1/models/flagged/predict", json=[changed(good, origin="<drop>")])
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["flags"] == ["missing_column:origin"]
