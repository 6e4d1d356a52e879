"""The Ray engine writes what the local engine writes (a local Ray cluster, 2 CPUs).

Both engines run the same pure partition function; with the same run id the outputs and
the logged records must be identical, row for row, and a failure in a Ray worker must
leave nothing behind, as it does locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from livemodel.batch import ScoreOptions, score
from livemodel.engine import ray_session
from livemodel.errors import ModelError
from livemodel.registry.registry import Registry
from livemodel.store.logreader import LogReader

from .conftest import RAISE, register, scoring_input

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster(faults: Any) -> Iterator[None]:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    # Workers inherit the environment: they must import the faulty model's module too.
    folder = str(Path(faults.__file__).parent)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (folder, saved) if p)
    try:
        with ray_session(num_cpus=2, object_store_mb=256):
            yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def write_input(path: Path, rows: pd.DataFrame) -> Path:
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path, row_group_size=500)
    return path


def test_ray_writes_what_local_writes(
    sqlite_registry: Registry,
    fitted: Any,
    flights: pd.DataFrame,
    tmp_path: Path,
    ray_cluster: None,
) -> None:
    register(sqlite_registry, fitted, flights)
    rows = scoring_input(flights)
    rows.loc[10, "carrier"] = None
    source = write_input(tmp_path / "in.parquet", rows)
    options = ScoreOptions(partition_rows=1500, batch_size=600, run_id="samerun")
    results = {
        engine: score(sqlite_registry, tmp_path / f"logs-{engine}", "flights", source,
                      tmp_path / f"out-{engine}", engine=engine, options=options)
        for engine in ("local", "ray")
    }  # fmt: skip
    local, ray = results["local"], results["ray"]
    assert ray.partitions == local.partitions == 4
    counts = ("rows", "scored", "flagged", "rejected", "errors", "violations")
    assert {k: getattr(ray, k) for k in counts} == {k: getattr(local, k) for k in counts}
    for name in [f"part-{i:05d}.parquet" for i in range(4)]:
        a = pq.read_table(tmp_path / "out-local" / name)
        b = pq.read_table(tmp_path / "out-ray" / name)
        assert a.equals(b), name
    logs = [
        LogReader(tmp_path / f"logs-{e}").window("flights").drop(["time"]) for e in ("local", "ray")
    ]
    assert logs[0].num_rows == local.scored
    assert logs[0].sort_by("prediction_id").equals(logs[1].sort_by("prediction_id"))
    events = [e for e in sqlite_registry.audit("flights") if e.action == "batch.scored"]
    assert [e.details["engine"] for e in events] == ["local", "ray"]


def test_a_failure_in_a_ray_worker_leaves_nothing(
    sqlite_registry: Registry,
    fitted: Any,
    flights: pd.DataFrame,
    faults: Any,
    tmp_path: Path,
    *,
    ray_cluster: None,
) -> None:
    register(sqlite_registry, faults.Faulty(fitted), flights)
    rows = scoring_input(flights)
    rows.loc[4600:4800, "dep_delay"] = RAISE  # only the last of four partitions fails
    source = write_input(tmp_path / "in.parquet", rows)
    options = ScoreOptions(partition_rows=1500)
    with pytest.raises(ModelError, match="failed on more than"):
        score(sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out",
              engine="ray", options=options)  # fmt: skip
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]
