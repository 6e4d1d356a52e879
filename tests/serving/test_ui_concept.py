"""Concept drift on the dashboard: a real server (``livemodel serve``) over a home whose
model's labelled error stream changed concept; ``/ui`` says so on the model's card and
``/ui/models/{name}`` lists the detections, in its JSON and its HTML."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.monitor.concept_stream import CHANGE, T0, N, fit_model, label, log_stream, register

from livemodel.config import Settings
from livemodel.monitor.resultstore import ResultStore
from livemodel.monitor.runner import Monitor
from livemodel.store.logreader import LogReader

from .conftest import Server, registry_at, start_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, faults_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-concept") / "home"
    registry = registry_at(home)
    model = fit_model()
    register(registry, model)
    settings = Settings.at(home, actor="tests")
    ids, truth = log_stream(settings.log_dir, model)
    label(settings.log_dir, ids, truth, range(N))
    monitor = Monitor(registry, LogReader(settings.log_dir), ResultStore(registry.metadata.db))
    run = monitor.run("m", since=T0, until=T0 + timedelta(days=3), window="1d")
    assert run.concept is not None and run.concept.detections
    registry.metadata.db.close()
    server = start_server(home, faults_dir, ready_models=["m"])
    try:
        yield server
    finally:
        server.stop()


def test_the_overview_card_names_the_detection(served: Server) -> None:
    with served.client() as client:
        data = client.get("/ui/api/overview").json()
    (card,) = [m for m in data["models"] if m["name"] == "m"]
    assert card["concept"].startswith("4 detection(s); last by ")
    assert f"of {N:,}" in card["concept"]


def test_the_model_page_lists_where_each_change_began(served: Server) -> None:
    with served.client() as client:
        data = client.get("/ui/api/models/m").json()
        page = client.get("/ui/models/m")
    rows = data["concept"]["rows"]
    assert len(rows) == 4
    assert {r[0] for r in rows} == {"v1 adwin", "v1 page_hinkley"}
    assert {r[1] for r in rows} == {"arrival", "prediction_time"}
    for row in rows:
        start, detected = (int(x) for x in row[4].split(" \u2192 "))
        assert abs(start - CHANGE) <= 40 and CHANGE < detected < CHANGE + 400
    assert page.status_code == 200
    assert "Concept drift" in page.text and rows[0][3] in page.text
