"""``livemodel serve --workers 2``: both processes answer, and /metrics adds them up."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from livemodel.store.logreader import LogReader

from .conftest import Models, Server, make_token, metric, records


def writer_pids(home: Path) -> set[str]:
    """Each process writes its own log segments, named ``<host>_<pid>_...``."""
    folder = home / "logs" / "flights" / "predictions"
    return {p.name.split("_")[1] for p in folder.iterdir()} if folder.is_dir() else set()


def test_both_workers_answer_and_metrics_aggregate(locked: Server, models: Models) -> None:
    pool = records(models.data.iloc[:50])
    url = f"{locked.url}/v1/models/flights/predict"
    auth = {"authorization": f"Bearer {make_token(locked.home, 'predict')}"}
    before = metric(
        httpx.get(f"{locked.url}/metrics", timeout=30).text,
        "livemodel_requests_total", model="flights", endpoint="predict", status="200",
    )  # fmt: skip

    def one(i: int) -> list[str]:
        # A fresh connection each time, so the kernel spreads them over the workers.
        response = httpx.post(url, json=[pool[i % len(pool)]], headers=auth, timeout=30)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json()["predictions"]]

    ids: list[str] = []
    # Bounded in count and time; the second worker may still be starting on a busy machine.
    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(6) as threads:
        for _ in range(30):
            for found in threads.map(one, range(24)):
                ids.extend(found)
            if len(writer_pids(locked.home)) >= 2 or time.monotonic() > deadline:
                break
    assert len(writer_pids(locked.home)) == 2
    log = LogReader(locked.home / "logs").window("flights", columns=["prediction_id"])
    assert set(ids) <= set(log.column("prediction_id").to_pylist())

    # Whichever worker answers /metrics reports the sum over both.
    for _ in range(6):
        text = httpx.get(f"{locked.url}/metrics", timeout=30).text
        answered = metric(
            text, "livemodel_requests_total", model="flights", endpoint="predict", status="200"
        )
        assert answered - before == len(ids)
        assert metric(text, "livemodel_batches_total", model="flights") >= 1
