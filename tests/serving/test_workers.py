"""``livemodel serve --workers 2``: both processes answer, and /metrics adds them up."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from livemodel.store.logreader import LogReader

from .conftest import Models, Server, copy_home, metric, records, start_server


@pytest.fixture(scope="module")
def two_workers(
    template_home: Path, faults_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = copy_home(template_home, tmp_path_factory.mktemp("workers") / "home")
    running = start_server(home, faults_dir, workers=2)
    yield running
    running.stop()


def writer_pids(home: Path) -> set[str]:
    """Each process writes its own log segments, named ``<host>_<pid>_...``."""
    folder = home / "logs" / "flights" / "predictions"
    return {p.name.split("_")[1] for p in folder.iterdir()} if folder.is_dir() else set()


def test_both_workers_answer_and_metrics_aggregate(two_workers: Server, models: Models) -> None:
    pool = records(models.data.iloc[:50])
    url = f"{two_workers.url}/v1/models/flights/predict"

    def one(i: int) -> list[str]:
        # A fresh connection each time, so the kernel spreads them over the workers.
        response = httpx.post(url, json=[pool[i % len(pool)]], timeout=30)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["predictions"]]

    ids: list[str] = []
    with ThreadPoolExecutor(8) as threads:
        for _ in range(10):  # bounded: at most 400 requests
            for found in threads.map(one, range(40)):
                ids.extend(found)
            if len(writer_pids(two_workers.home)) >= 2:
                break
    assert len(writer_pids(two_workers.home)) == 2
    logged = set(
        LogReader(two_workers.home / "logs").window("flights").column("prediction_id").to_pylist()
    )
    assert set(ids) <= logged

    # Whichever worker answers /metrics reports the sum over both.
    for _ in range(6):
        text = httpx.get(f"{two_workers.url}/metrics", timeout=30).text
        answered = metric(
            text, "livemodel_requests_total", model="flights", endpoint="predict", status="200"
        )
        assert answered == len(ids)
        assert metric(text, "livemodel_predictions_total", model="flights") == len(ids)
        assert metric(text, "livemodel_batches_total", model="flights") >= 1
