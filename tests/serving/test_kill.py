"""SIGKILL under load: every prediction a client got a 200 for is in the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from livemodel.demo.flights import FEATURES
from livemodel.store.logreader import LogReader

from .conftest import Models, Server, cli, copy_home, records, start_load, start_server


@pytest.fixture(scope="module")
def doomed(
    template_home: Path, faults_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    home = copy_home(template_home, tmp_path_factory.mktemp("kill") / "home")
    running = start_server(home, faults_dir)
    yield running
    running.stop()


def test_sigkill_loses_no_acknowledged_prediction(
    doomed: Server, models: Models, tmp_path: Path
) -> None:
    pool = records(models.data.iloc[3000:3400])
    load = start_load(doomed, "flights", pool, tmp_path / "load", seconds=8, threads=4)
    try:
        load.wait_until(lambda o: sum(x["ok"] for x in o) >= 150, "150 acknowledged requests")
        doomed.kill()
    finally:
        load.wait()
    outcomes = load.outcomes()
    acknowledged = load.acknowledged()
    assert len(acknowledged) >= 150
    assert any(not o["ok"] for o in outcomes)  # the load saw the server die mid-flight
    assert all(o["status"] is None for o in outcomes if not o["ok"])  # only transport errors

    table = LogReader(doomed.home / "logs").window("flights").to_pylist()
    logged = {row["prediction_id"]: row for row in table}
    missing = set(acknowledged) - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged ids are not logged"
    # The records are whole: features within the pool, outputs a probability pair.
    by_features = {json.dumps(r, sort_keys=True) for r in pool}
    for pid in acknowledged[:200]:
        row = logged[pid]
        features = {name: row[f"f.{name}"] for name in FEATURES}
        assert json.dumps(features, sort_keys=True) in by_features
        assert row["o.proba.0"] + row["o.proba.1"] == pytest.approx(1.0)

    # The CLI reads the log left by the dead server too (its open segment included).
    exported = json.loads(
        cli(doomed.home, doomed.faults, "predictions", "flights", "--json").stdout
    )
    assert set(acknowledged) <= {row["prediction_id"] for row in exported}
