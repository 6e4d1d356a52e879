"""Three ``livemodel serve`` replicas sharing PostgreSQL, an S3 artifact store and a log folder.

Each replica is its own process with its own home, started with the same
``LIVEMODEL_DB_URL`` (a fresh PostgreSQL schema), ``LIVEMODEL_ARTIFACTS`` (a bucket on a moto
S3 server), ``LIVEMODEL_ARTIFACTS_OPTIONS`` and ``LIVEMODEL_LOGS``; load comes from
separate processes (``tests/serving/loadgen.py``). Checked:

- an alias move reaches every replica while they are under load, with no failed request;
- a canary's assignment by routing key is the same on every replica (and equals the pure
  hash in :func:`livemodel.rollout.routing.to_candidate`);
- the shared log is the union of what the replicas acknowledged: each id exactly once;
- a replica SIGKILLed under load and restarted loses none of the ids it acknowledged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests.conftest import fresh_pg_schema
from tests.serving.conftest import EXE, Load, Server, free_port, linear_pipeline, records

from livemodel.config import Settings
from livemodel.demo.flights import FEATURES, TARGET, load_flights
from livemodel.rollout.routing import to_candidate
from livemodel.store.logreader import LogReader
from livemodel.wiring import connect

from .conftest import Bucket

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CONFIG = """
[serving]
poll_seconds = 0.5
max_rows = 500
"""
REPLICAS = 3


@dataclass
class Cluster:
    root: Path
    db_url: str
    bucket: Bucket
    data: pd.DataFrame
    servers: list[Server] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
        env.update(
            LIVEMODEL_HOME=str(home),
            LIVEMODEL_DB_URL=self.db_url,
            LIVEMODEL_ARTIFACTS=self.bucket.url,
            LIVEMODEL_ARTIFACTS_OPTIONS=self.bucket.options_json,
            LIVEMODEL_LOGS=str(self.logs),
            LIVEMODEL_CONFIG=str(self.root / "livemodel.toml"),
            LIVEMODEL_ACTOR="tests",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [EXE, *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=self.env(self.root / "cli"),
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, index: int) -> Server:
        """Replica ``index`` on a free port; returns once it serves both models."""
        home = self.root / f"replica-{index}"
        home.mkdir(exist_ok=True)
        port = free_port()
        output = home / f"server-{port}.out"
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                [EXE, "serve", "--port", str(port)],
                cwd=home,
                env=self.env(home),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = Server(home, self.root, proc, f"http://127.0.0.1:{port}", output)
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"replica {index} exited:\n{server.log_text()}")
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=2)
                if ready.status_code == 200 and {"flights", "routed"} <= set(
                    ready.json()["models"]
                ):
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"replica {index} did not get ready:\n{server.log_text()}")
            time.sleep(0.2)

    def load(self, server: Server, where: Path, *, seconds: float) -> Load:
        """Load from another process; ``stop()`` ends it."""
        where.mkdir(parents=True, exist_ok=True)
        pool = records(self.data.iloc[3000:3400])
        (where / "records.json").write_text(json.dumps(pool))
        out = where / "outcomes.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parents[1] / "serving" / "loadgen.py"),
                server.url,
                "flights",
                str(where / "records.json"),
                str(out),
                "--seconds",
                str(seconds),
                "--threads",
                "2",
                "--stop-file",
                str(where / "stop"),
            ],
            env=self.env(server.home),
        )
        return Load(proc, out)

    def logged_ids(self, model: str = "flights") -> Counter[str]:
        table = LogReader(self.logs).window(model, columns=["prediction_id"])
        return Counter(table.column("prediction_id").to_pylist())


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema shared by the module's replicas (``pg_url``, module-wide)."""
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    pg_schema: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    bucket = Bucket(name=f"lm-{uuid.uuid4().hex[:16]}", endpoint=s3_endpoint)
    bucket.client().create_bucket(Bucket=bucket.name)
    root = tmp_path_factory.mktemp("replicas")
    (root / "livemodel.toml").write_text(CONFIG)
    data = load_flights((1,)).iloc[:4000][[*FEATURES, TARGET]].reset_index(drop=True)
    made = Cluster(root, pg_schema, bucket, data)

    x, y = data[list(FEATURES)], data[TARGET]
    first = linear_pipeline().fit(x.iloc[:3000], y.iloc[:3000])
    second = linear_pipeline(c=0.05).fit(x.iloc[1000:], y.iloc[1000:])
    settings = Settings.at(
        root / "cli",
        db_url=pg_schema,
        artifact_url=bucket.url,
        artifact_options=bucket.options,
        actor="tests",
    )
    registry = connect(settings)
    train = data.iloc[:3000]
    for name in ("flights", "routed"):
        registry.register(name, first, train, target=TARGET, alias="production")
        registry.register(name, second, train, target=TARGET)
    registry.metadata.db.close()
    try:
        made.servers = [made.start(i) for i in range(REPLICAS)]
        yield made
    finally:
        for server in made.servers:
            server.stop()


def _versions_by_time(load: Load) -> list[int]:
    return [v for o in load.outcomes() if o["ok"] for v in o["versions"]]


def test_alias_move_reaches_every_replica_without_a_failed_request(
    cluster: Cluster, tmp_path: Path
) -> None:
    loads = [
        cluster.load(server, tmp_path / f"load-{i}", seconds=60)
        for i, server in enumerate(cluster.servers)
    ]
    try:
        for load in loads:
            load.wait_until(lambda o: sum(x["ok"] for x in o) >= 30, "30 answers per replica")
        asked = time.monotonic()
        cluster.cli("alias", "set", "flights", "production", "2")  # a process: ~1-3 s
        moved = time.monotonic()
        lags = []
        for load in loads:
            load.wait_until(lambda o: any(2 in x.get("versions", ()) for x in o), "version 2")
            lags.append(time.monotonic() - moved)
            load.wait_until(
                lambda o: sum(2 in x.get("versions", ()) for x in o) >= 30,
                "30 answers from version 2",
            )
    finally:
        for load in loads:
            load.stop()
    print(
        f"alias set took {moved - asked:.2f} s; replicas answered version 2 "
        f"{[round(s, 2) for s in lags]} s after it returned"
    )

    for load in loads:
        outcomes = load.outcomes()
        assert outcomes and all(o["ok"] for o in outcomes), [o for o in outcomes if not o["ok"]]
        versions = _versions_by_time(load)
        switch = versions.index(2)
        # Once a replica answers with version 2, requests sent after it never go back.
        assert set(versions[:switch]) == {1}
        assert versions[-10:] == [2] * 10

    # The shared log is exactly the union of what every replica acknowledged.
    acknowledged = [pid for load in loads for pid in load.acknowledged()]
    assert len(acknowledged) == len(set(acknowledged))
    logged = cluster.logged_ids()
    assert set(logged) == set(acknowledged)
    assert max(logged.values()) == 1, "a prediction id is logged twice"
    writers = {p.name.split("_")[1] for p in (cluster.logs / "flights" / "predictions").iterdir()}
    assert len(writers) >= REPLICAS  # each replica wrote its own segments


def test_canary_assignment_agrees_across_replicas(cluster: Cluster) -> None:
    start = ["rollout", "start", "routed", "--candidate", "2", "--plan", "canary:50"]
    started = json.loads(cluster.cli(*start, "--routing-key", "carrier", "--json"))
    rollout_id = started["id"]
    carriers = sorted(cluster.data["carrier"].dropna().unique())
    by_carrier = {
        c: records(cluster.data[cluster.data["carrier"] == c].iloc[:1])[0] for c in carriers
    }
    expected = {c: 2 if to_candidate(rollout_id, c, 50.0) else 1 for c in carriers}
    assert set(expected.values()) == {1, 2}  # both arms have carriers

    answers: dict[str, list[int]] = {c: [] for c in carriers}
    for server in cluster.servers:
        with server.client() as http:
            # A replica follows the rollout on its next poll: wait for a candidate answer.
            deadline = time.monotonic() + 30
            while True:
                seen = {
                    c: http.post("/v1/models/routed/predict", json=[row]).json()
                    for c, row in by_carrier.items()
                }
                if any(s["predictions"][0]["version"] == 2 for s in seen.values()):
                    break
                assert time.monotonic() < deadline, f"{server.url} never followed the rollout"
                time.sleep(0.3)
            for _ in range(3):
                for c, row in by_carrier.items():
                    response = http.post("/v1/models/routed/predict", json=[row])
                    assert response.status_code == 200, response.text
                    answers[c].append(response.json()["predictions"][0]["version"])
    for c in carriers:
        assert answers[c] == [expected[c]] * (3 * REPLICAS), c


def test_killed_replica_restarted_under_load_loses_no_acknowledged_id(
    cluster: Cluster, tmp_path: Path
) -> None:
    before = cluster.logged_ids()
    doomed_index = 1
    loads = [
        cluster.load(server, tmp_path / f"load-{i}", seconds=60)
        for i, server in enumerate(cluster.servers)
    ]
    restarted: Load | None = None
    try:
        doomed = loads[doomed_index]
        doomed.wait_until(lambda o: sum(x["ok"] for x in o) >= 100, "100 answers")
        cluster.servers[doomed_index].kill()
        doomed.wait()  # its threads stop after repeated transport errors
        cluster.servers[doomed_index] = cluster.start(doomed_index)
        restarted = cluster.load(cluster.servers[doomed_index], tmp_path / "load-again", seconds=60)
        restarted.wait_until(lambda o: sum(x["ok"] for x in o) >= 50, "50 answers after restart")
    finally:
        for load in loads:
            if load is not doomed:
                load.stop()
        if restarted is not None:
            restarted.stop()

    everything = [*loads, *([restarted] if restarted else [])]
    for load in everything:
        failed = [o for o in load.outcomes() if not o["ok"]]
        if load is doomed:
            assert failed and all(o["status"] is None for o in failed)  # transport errors only
        else:
            assert not failed, failed
    acknowledged = [pid for load in everything for pid in load.acknowledged()]
    assert len(acknowledged) == len(set(acknowledged))
    logged = cluster.logged_ids() - before
    missing = set(acknowledged) - set(logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged ids are not logged"
    assert max(logged.values()) == 1, "a prediction id is logged twice"
    print(
        f"acknowledged {len(acknowledged)} ids "
        f"({len(doomed.acknowledged())} by the killed replica); "
        f"{sum(logged.values()) - len(acknowledged)} logged but unacknowledged"
    )
