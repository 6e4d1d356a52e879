"""The Ray engine joins an existing cluster of two nodes by address.

A real Ray cluster runs on this machine for the module (``ray.cluster_utils.Cluster``: a
head node and a worker node, each its own raylet and object store with one CPU); the
test process starts it but is not one of its drivers. ``livemodel monitor run`` and
``livemodel score`` join it as real processes with ``--ray-address`` (or
``LIVEMODEL_RAY_ADDRESS``), as a team with a cluster does, and must give what
``--engine local`` gives: monitoring numbers as in ``tests/monitor/test_engines.py``
(counts and most statistics exactly, the sketch's KS and Wasserstein within its rank
error), scored rows and logged predictions identical but for the run id in the ids.
Each run must be a job of that cluster and leave it running. Tasks mapped over the
cluster run on both nodes. The address of a cluster that was shut down, or of one bound
to the loopback only (which Ray cannot join: it dials this machine's network address
for 127.0.0.1), is one clear line at once. Afterwards no process of a cluster is left.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.batch.conftest import register as register_for_batch
from tests.batch.conftest import scoring_input
from tests.monitor.conftest import flights, model
from tests.monitor.test_engines import DAY0, assert_engines_agree, cli, logged

from livemodel.config import Settings
from livemodel.engine import map_partitions, ray_module, ray_session
from livemodel.monitor.results import ALL
from livemodel.store.logreader import LogReader
from livemodel.wiring import connect

pytestmark = pytest.mark.slow
__all__ = ["flights", "logged", "model"]  # fixtures of tests/monitor, used here

NODE_MB = 128  # object store of each node
EXE = str(Path(sys.executable).parent / "livemodel")


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process on the machine (from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            out[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return out


def _descendants(root: int) -> set[int]:
    parents = _parents()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie has ended)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@contextlib.contextmanager
def _unadvertised() -> Iterator[None]:
    """Leave Ray's record of the machine's current cluster as it was: ``Cluster`` writes
    its address there (and deletes the record on shutdown), where a plain ``ray.init()``
    of any other process on this machine would find and join it."""
    utils = importlib.import_module("ray._common.utils")
    record = Path(utils.get_ray_address_file(None))
    saved = record.read_text() if record.exists() else None
    try:
        yield
    finally:
        if saved is None:
            record.unlink(missing_ok=True)
        else:
            record.write_text(saved)


def _stop(cluster: Any, before: set[int]) -> set[int]:
    """Shut ``cluster`` down; the processes it had started that are still running."""
    started = _descendants(os.getpid()) - before
    with _unadvertised():
        cluster.shutdown()
    deadline = time.monotonic() + 30  # workers end when their raylet is gone
    while _running(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _running(started)


def _start(nodes: int, *, host: str | None = None) -> Any:
    """A Ray cluster of ``nodes`` one-CPU nodes (at ``host``: Ray's default, this
    machine's network address) whose processes are children of this one."""
    pytest.importorskip("ray.data", reason="the ray engine tests need livemodel[ray]")
    from ray.cluster_utils import Cluster

    node: dict[str, Any] = {"num_cpus": 1, "object_store_memory": NODE_MB * 1024 * 1024}
    if host is not None:
        node["node_ip_address"] = host
    with _unadvertised():
        cluster = Cluster(
            initialize_head=True,
            connect=False,  # the test process is not a driver of it
            head_node_args={**node, "include_dashboard": False},
        )
    for _ in range(nodes - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A running two-node Ray cluster; none of its processes is left afterwards."""
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the nodes' processes inherit it
    before = _descendants(os.getpid())
    made = _start(2)
    assert len(made.list_all_nodes()) == 2
    yield made
    assert not _stop(made, before), "processes of the Ray cluster outlived its shutdown"


def local_address(cluster: Any) -> str:
    """The address as typed on the head node (Ray's own is this machine's IP)."""
    return f"127.0.0.1:{cluster.address.rpartition(':')[2]}"


def jobs(cluster: Any) -> dict[str, dict[str, Any]]:
    """The cluster's jobs (one per driver that joined it) by id."""
    return {job["JobID"]: job for job in cluster.global_state.job_table()}


def ran_as_a_job(cluster: Any, known: set[str], command: str) -> None:
    """The run was one new driver of ``cluster``, gone now, and the cluster still runs."""
    new = [job for job_id, job in jobs(cluster).items() if job_id not in known]
    assert [command in job["Entrypoint"] for job in new] == [True], new
    assert new[0]["IsDead"]
    assert all(node.remaining_processes_alive() for node in cluster.list_all_nodes())


def monitor_numbers(out: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
    numbers: dict[tuple[Any, ...], Any] = {}
    for w in out["windows"]:
        numbers[(w["start"], w["segment"], "n_rows")] = w["n_rows"]
        numbers[(w["start"], w["segment"], "n_labelled")] = w["n_labelled"]
        for r in w["results"]:
            key = (w["start"], w["segment"], r["calculator"], r["column"], r["metric"])
            numbers[key] = (r["value"], r["threshold"], r["lower"], r["upper"], r["alert"])
    return numbers


def test_monitor_run_joins_the_cluster_by_address(
    logged: dict[str, Any], cluster: Any, tmp_path: Path
) -> None:
    args = ["monitor", "run", "flights", "--since", DAY0.isoformat(), "--json"]
    args += ["--until", (DAY0 + timedelta(days=2)).isoformat(), "--segment", "origin"]
    out = {}
    known = set(jobs(cluster))
    for engine in ("local", "ray"):
        extra = ["--ray-address", cluster.address] if engine == "ray" else []
        done = cli([*args, "--engine", engine, *extra], tmp_path, env=logged["env"])
        assert done.returncode == 0, done.stderr
        out[engine] = json.loads(done.stdout)
    ran_as_a_job(cluster, known, "monitor run flights")
    assert out["ray"]["rows_saved"] == out["local"]["rows_saved"] > 0

    local, distributed = monitor_numbers(out["local"]), monitor_numbers(out["ray"])
    assert local.keys() == distributed.keys()
    day0, day1 = DAY0.isoformat(), (DAY0 + timedelta(days=1)).isoformat()
    assert (local[(day0, ALL, "n_rows")], local[(day1, ALL, "n_rows")]) == (400, 1200)
    assert any(k[1].startswith("origin=") for k in local)
    assert_engines_agree(local, distributed, nan_ok=True)


@pytest.fixture(scope="module")
def score_home(model: Any, flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A livemodel home with the flights model and 8,000 rows to score (16 row groups)."""
    home = tmp_path_factory.mktemp("score")
    registry = connect(Settings.at(home, actor="setup"))
    register_for_batch(registry, model, flights)
    registry.metadata.db.close()
    rows = scoring_input(flights)
    rows.loc[10, "carrier"] = None  # rejected, as while serving
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pq.write_table(table, home / "in.parquet", row_group_size=500)
    return home


def score(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    environ = {**os.environ, "LIVEMODEL_HOME": str(home), "RAY_AUTH_MODE": "disabled"}
    for name in ("LIVEMODEL_DB_URL", "LIVEMODEL_CONFIG", "LIVEMODEL_RAY_ADDRESS"):
        environ.pop(name, None)
    command = [EXE, "score", "flights", "-i", "in.parquet", "--partition-rows", "2000"]
    done = subprocess.run(
        [*command, "--json", *args], capture_output=True, text=True, cwd=home,
        env={**environ, **(env or {})}, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def without_run_id(table: pa.Table, run_id: str) -> pa.Table:
    """``table`` with each prediction id's run id prefix cut off (ids are run id + row)."""
    ids = table.column("prediction_id")
    assert pc.all(pc.starts_with(ids, run_id)).as_py() in (True, None)  # None: all null
    cut = pc.utf8_slice_codeunits(ids, len(run_id))
    return table.set_column(table.schema.get_field_index("prediction_id"), "prediction_id", cut)


def test_score_joins_the_cluster_by_address(score_home: Path, cluster: Any) -> None:
    known = set(jobs(cluster))
    local = score(score_home, "-o", "out-local")
    ray = score(score_home, "-o", "out-ray", "--engine", "ray", "--ray-address", cluster.address)
    ran_as_a_job(cluster, known, "score flights")

    assert (local["engine"], ray["engine"]) == ("local", "ray")
    assert ray["partitions"] == local["partitions"] == 4
    assert local["rows"] == 8000 and local["rejected"] == 1 and local["logged"]
    same = ("rows", "scored", "flagged", "rejected", "errors", "violations", "version")
    assert {k: ray[k] for k in same} == {k: local[k] for k in same}
    assert ray["run_id"] != local["run_id"]  # the CLI draws a run id per run
    for name in [f"part-{i:05d}.parquet" for i in range(4)]:
        a = without_run_id(pq.read_table(score_home / "out-local" / name), local["run_id"])
        b = without_run_id(pq.read_table(score_home / "out-ray" / name), ray["run_id"])
        assert a.num_rows == 2000 and a.equals(b), name

    logs = LogReader(Settings.at(score_home).log_dir).window("flights").drop(["time"])
    logs = logs.sort_by("prediction_id")
    per_run = {}
    for run in (local, ray):
        mine = pc.starts_with(logs.column("prediction_id"), run["run_id"])
        per_run[run["engine"]] = without_run_id(logs.filter(mine), run["run_id"])
    assert logs.num_rows == per_run["local"].num_rows + per_run["ray"].num_rows
    assert per_run["local"].num_rows == local["scored"] == 7999
    assert per_run["local"].equals(per_run["ray"])


def node_of(partition: int) -> str:
    """The id of the Ray node a task runs on (a short sleep lets the tasks overlap)."""
    import ray

    time.sleep(0.3)
    return str(ray.get_runtime_context().get_node_id())


def test_tasks_run_on_both_nodes(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    node_ids = {node.node_id for node in cluster.list_all_nodes()}
    assert len(node_ids) == 2
    with ray_session(cluster.address) as ray:  # joined: no cores or memory to give
        assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == node_ids
        assert ray.cluster_resources()["CPU"] == 2
        ran = map_partitions(node_of, list(range(12)), engine="ray", address=cluster.address)
        assert set(ran) == node_ids
    assert not ray.is_initialized()
    assert all(node.remaining_processes_alive() for node in cluster.list_all_nodes())

    monkeypatch.setenv("LIVEMODEL_RAY_ADDRESS", local_address(cluster))  # no address given
    assert set(map_partitions(node_of, list(range(12)), engine="ray")) == node_ids


def test_the_address_from_the_environment(score_home: Path, cluster: Any) -> None:
    known = set(jobs(cluster))
    env = {"LIVEMODEL_RAY_ADDRESS": local_address(cluster)}
    done = score(score_home, "-o", "out-env", "--engine", "ray", "--no-log", env=env)
    ran_as_a_job(cluster, known, "score flights")
    assert (done["engine"], done["rows"], done["rejected"], done["logged"]) == (
        "ray", 8000, 1, False
    )  # fmt: skip


def fails_at_once(args: list[str], home: Path, env: dict[str, str], message: str) -> None:
    """One ``error:`` line holding ``message``, no traceback (not Ray's minutes of retries)."""
    done = cli(args, home, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert message in lines[0], lines[0]


def test_a_cluster_on_the_loopback_or_shut_down_is_one_clear_line(
    logged: dict[str, Any], score_home: Path, tmp_path: Path
) -> None:
    before = _descendants(os.getpid())
    gone = _start(1, host="127.0.0.1")  # as by `ray start --head --node-ip-address 127.0.0.1`
    address = gone.address
    assert address.startswith("127.0.0.1:")
    monitor = ["monitor", "run", "flights", "--engine", "ray", "--ray-address", address]
    score = ["score", "flights", "-i", str(score_home / "in.parquet"), "-o",
             str(tmp_path / "out"), "--engine", "ray", "--ray-address", address]  # fmt: skip
    try:
        if ray_module().util.get_node_ip_address() != "127.0.0.1":  # which Ray dials for 127.0.0.1
            message = f"cannot join the Ray cluster at {address!r}: Ray dials it at"
            fails_at_once(monitor, tmp_path, logged["env"], message)
    finally:
        assert not _stop(gone, before)
    for args in (monitor, score):  # nothing listens there any more
        message = f"cannot reach the Ray cluster at {address!r}"
        fails_at_once(args, tmp_path, logged["env"], message)
    assert not (tmp_path / "out").exists()
