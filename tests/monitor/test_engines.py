"""The Ray engine computes what the local engine computes.

A real prediction log of several writer sessions (Parquet segments from compaction and
JSON-lines segments still open for reading), late labels, two daily windows and a
segment column, monitored once in this process and once as Ray Data tasks on a local
Ray cluster (2 CPUs). Counts, histograms, categories and row samples merge exactly, so
every number must agree to floating-point noise. Numbers derived from the quantile
sketch (KLL: Kolmogorov-Smirnov and Wasserstein of numeric columns) depend on the order
in which values reach the sketch, which DuckDB's parallel scan already varies from one
local run to the next: they must agree within the sketch's stated rank error, and a
drift flag may differ only where those statistics differ (a verdict on the edge of its
p-value or effect threshold; at most two of them, as between two local runs).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from datasketches import kll_doubles_sketch

from livemodel.engine import map_partitions, ray_session
from livemodel.errors import ConfigError, InvalidInputError
from livemodel.monitor.partitions import partition_segments
from livemodel.monitor.results import ALL
from livemodel.monitor.runner import Monitor, RunResult
from livemodel.registry.registry import Registry
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.database import open_database
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact
from livemodel.store.metadata import MetadataStore

from .conftest import register, write_log

DAY0 = datetime(2024, 7, 1, tzinfo=UTC)
EPS = kll_doubles_sketch.get_normalized_rank_error(200, False)  # the profiles' sketch


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    with ray_session(num_cpus=2, object_store_mb=256):
        yield


@pytest.fixture(scope="module")
def logged(
    model: Any, flights: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("engines")
    artifacts = root / "artifacts"
    db = open_database(f"sqlite:///{root / 'lm.db'}")
    registry = Registry(MetadataStore(db), ArtifactStore(str(artifacts)), actor="t")
    register(registry, model, flights)
    logs = root / "logs"
    # five writer sessions: 400 January rows on day 0, then 4 x 300 July rows on day 1
    parts = [flights.iloc[5000:5400]] + [flights.iloc[8000 + 300 * i :][:300] for i in range(4)]
    for i, part in enumerate(parts):
        day = DAY0 + timedelta(days=0 if i == 0 else 1)
        times = [day + timedelta(seconds=60 * j + i) for j in range(len(part))]
        write_log(logs, registry, "flights", part.reset_index(drop=True), times, labelled=0.6)
        if i == 2:
            compact(logs, "flights")  # the first three sessions as Parquet, the rest JSON lines
    env = {
        "LIVEMODEL_DB_URL": f"sqlite:///{root / 'lm.db'}",
        "LIVEMODEL_ARTIFACTS": str(artifacts),
        "LIVEMODEL_LOGS": str(logs),
    }
    yield {"registry": registry, "logs": logs, "env": env}
    db.close()


def run(logged: dict[str, Any], engine: str) -> RunResult:
    monitor = Monitor(logged["registry"], LogReader(logged["logs"]), engine=engine)
    return monitor.run(
        "flights",
        since=DAY0,
        until=DAY0 + timedelta(days=2),
        window="1d",
        segments=["origin"],
    )


def numbers(result: RunResult) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    for w in result.windows:
        out[(w.start, w.segment, "n_rows")] = w.n_rows
        out[(w.start, w.segment, "n_labelled")] = w.n_labelled
        for r in w.results:
            key = (w.start, w.segment, r.calculator, r.column, r.metric)
            out[key] = (r.value, r.threshold, r.lower, r.upper, r.alert)
    return out


@pytest.mark.slow
def test_ray_engine_gives_the_local_numbers(logged: dict[str, Any], ray_cluster: None) -> None:
    reader = LogReader(logged["logs"])
    segments = reader.segments("flights")
    states = {p.suffix for p in (logged["logs"] / "flights" / "predictions").iterdir()}
    assert {".parquet", ".jsonl"} <= states and len(segments) >= 5
    assert len(partition_segments(segments, 8)) >= 2  # really spread over several tasks

    local, distributed = numbers(run(logged, "local")), numbers(run(logged, "ray"))
    assert local.keys() == distributed.keys()
    assert local[(DAY0, ALL, "n_rows")] == 400
    assert local[(DAY0 + timedelta(days=1), ALL, "n_rows")] == 1200
    assert any(k[1].startswith("origin=") for k in local)
    assert_engines_agree(local, distributed, nan_ok=False)


def assert_engines_agree(
    local: dict[Any, Any], distributed: dict[Any, Any], *, nan_ok: bool
) -> None:
    """Counts equal; KS and Wasserstein within the sketch's error; everything else equal to
    1e-6; at most 2 drift flags flipped, each where a sketched statistic moved."""
    compared = 0
    flips = []
    for key, value in local.items():
        other = distributed[key]
        if key[-1] in {"n_rows", "n_labelled"}:
            assert other == value, key
            continue
        metric = key[-1]
        if metric == "drift" and other[0] != value[0]:
            flips.append(key)
            continue
        for a, b in zip(value[:4], other[:4], strict=True):
            if a is None or b is None or isinstance(a, str):
                assert a == b, key
            elif metric == "ks":  # sup |F - G| of sketched CDFs: each within EPS
                assert abs(a - b) <= 2 * EPS, key
            elif metric == "wasserstein":  # sketch noise floor, stats.drift.reference_scale
                assert abs(a - b) <= 0.05 + 0.05 * abs(a), key
            else:
                assert b == pytest.approx(a, rel=1e-6, abs=1e-9, nan_ok=nan_ok), key
                compared += 1
    for start, segment, calculator, column, _ in flips:  # caused by the sketch's noise
        moved = [
            local[k][0] != distributed[k][0]
            for metric in ("ks", "wasserstein")
            if (k := (start, segment, calculator, column, metric)) in local
        ]
        assert any(moved), (segment, column)
    assert len(flips) <= 2
    assert compared > 200


@pytest.mark.slow
def test_map_partitions_keeps_order_and_matches_local(ray_cluster: None) -> None:
    parts = [list(range(i, i + 5)) for i in range(0, 50, 5)]
    assert map_partitions(sum, parts, engine="ray") == map_partitions(sum, parts)
    assert map_partitions(sum, [], engine="ray") == []


def test_partitions_are_balanced_and_complete() -> None:
    segments = [(f"s{i}", size) for i, size in enumerate([100, 90, 10, 10, 5, 80, 1])]
    groups = partition_segments(segments, 3)
    assert sorted(s for g in groups for s in g) == sorted(s for s, _ in segments)
    sizes = dict(segments)
    totals = sorted(sum(sizes[s] for s in g) for g in groups)
    assert totals == [96, 100, 100]  # greedy: 100 | 90+10 | 80+10+5+1
    assert partition_segments([], 4) == []
    assert len(partition_segments(segments, 100)) == len(segments)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1'"),
        ("ray://127.0.0.1:1", "cannot reach the Ray cluster"),
        ("headnode", "is not HOST:PORT"),
        ("host:99999", "is not HOST:PORT"),
        (":6379", "is not HOST:PORT"),
    ],
)
def test_an_unreachable_or_malformed_ray_address_is_a_clear_error(
    address: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):  # at once, not after Ray's retries
        map_partitions(sum, [[1]], engine="ray", address=address)


@pytest.mark.parametrize("server", ["http", "greeting", "silent"])
def test_an_address_where_something_else_answers_is_a_clear_error(server: str) -> None:
    """Ray would retry for minutes against a port that accepts but is not its GCS."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    replies = {
        "http": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        "greeting": b"-ERR unknown command\r\n",  # what Redis, also on 6379, says
        "silent": b"",
    }
    given_up = threading.Event()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(64)
            if replies[server]:
                conn.sendall(replies[server])
            else:  # silent until the probe has given up (its own 5 s timeout)
                given_up.wait(60)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConfigError, match="is not a Ray cluster"):
            map_partitions(sum, [[1]], engine="ray", address=f"127.0.0.1:{port}")
    finally:
        given_up.set()
        thread.join(10)
        listener.close()


def test_unknown_engine_is_refused(logged: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="unknown engine 'spark'"):
        Monitor(logged["registry"], LogReader(logged["logs"]), engine="spark")
    with pytest.raises(InvalidInputError, match="unknown engine"):
        map_partitions(sum, [[1]], engine=None)  # type: ignore[arg-type]


BLOCK_RAY = """
import sys
sys.modules["ray"] = None  # as if the extra were not installed
from livemodel.cli.app import main
sys.argv = ["livemodel", *sys.argv[1:]]
main()
"""


def cli(
    args: list[str], home: Path, *, block_ray: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIVEMODEL_HOME": str(home), "RAY_AUTH_MODE": "disabled", **(env or {})}
    script = str(Path(sys.executable).parent / "livemodel")
    prefix = [sys.executable, "-c", BLOCK_RAY] if block_ray else [script]
    return subprocess.run(
        [*prefix, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_missing_ray_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pip install 'livemodel\[ray\]'"):
        import sys as _sys

        saved = _sys.modules.get("ray")
        _sys.modules["ray"] = None  # type: ignore[assignment]
        try:
            map_partitions(sum, [[1]], engine="ray")
        finally:
            if saved is None:
                del _sys.modules["ray"]
            else:
                _sys.modules["ray"] = saved
    done = cli(["monitor", "run", "flights", "--engine", "ray"], tmp_path, block_ray=True)
    assert done.returncode != 0
    assert "pip install 'livemodel[ray]'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_refuses_an_unknown_engine(tmp_path: Path) -> None:
    done = cli(["monitor", "run", "flights", "--engine", "spark"], tmp_path)
    assert done.returncode != 0
    assert "unknown engine 'spark'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.slow
def test_cli_monitor_run_on_ray(logged: dict[str, Any], tmp_path: Path) -> None:
    args = ["monitor", "run", "flights", "--since", DAY0.isoformat(), "--json"]
    args += ["--until", (DAY0 + timedelta(days=2)).isoformat(), "--engine", "ray"]
    done = cli(args, tmp_path, env=logged["env"])
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rows = {w["start"][:10]: w["n_rows"] for w in out["windows"] if w["segment"] == ALL}
    assert rows == {"2024-07-01": 400, "2024-07-02": 1200}
    assert out["rows_saved"] > 0
