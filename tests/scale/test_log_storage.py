"""Log segments shipped to an S3-protocol object store (moto on 127.0.0.1) and read back.

- predictions and labels written to a local spool are compacted, shipped and removed
  locally; a reader elsewhere (no spool) returns exactly what a local copy returns;
- two replicas shipping to one URL: readers see the union, each row once, and the
  segment partitions (the Ray engine's) cover it exactly;
- a crash between upload and local removal duplicates nothing;
- a multipart upload failing after its first part, or a failed single PUT, leaves no
  object and no pending upload; the segment stays readable locally and a retry ships it;
- a missing bucket, an unreachable endpoint and malformed settings are one-line errors;
- ``livemodel logs ship``, ``predictions`` and ``monitor run`` as real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from datasketches import kll_doubles_sketch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from tests.store.test_logship import LABEL_VIEW, NO_COMPACT, labels_of, records, write

from livemodel.config import Settings
from livemodel.errors import ConfigError, StoreError
from livemodel.monitor.partitions import partition_segments
from livemodel.serving.handles import ModelHandle, load_handle
from livemodel.store.labels import LabelLog
from livemodel.store.logbatch import StagedSegment, batch_stem, prediction_table, publish
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact
from livemodel.store.logship import RemoteLog, ship
from livemodel.store.logwriter import PredictionLog
from livemodel.store.predlog import PredictionRecord
from livemodel.store.tokens import TokenStore
from livemodel.wiring import connect, log_reader

from .conftest import Bucket

EXE = str(Path(sys.executable).parent / "livemodel")


def log_url(bucket: Bucket) -> str:
    return f"s3://{bucket.name}/logs"


def remote_of(bucket: Bucket) -> RemoteLog:
    return RemoteLog(log_url(bucket), bucket.options)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def pending_uploads(bucket: Bucket) -> list[Any]:
    return list(bucket.client().list_multipart_uploads(Bucket=bucket.name).get("Uploads", []))


def test_shipped_log_on_s3_reads_exactly_what_was_written(bucket: Bucket, tmp_path: Path) -> None:
    remote = remote_of(bucket)
    recs = records(500, "p")
    write(tmp_path / "spool", recs, remote)
    write(tmp_path / "copy", recs)  # the same log, never shipped
    compact(tmp_path / "copy", "m")

    assert files(tmp_path / "spool") == []
    keys = bucket.object_keys()
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        "logs/m/labels",
        "logs/m/predictions",
        "logs/m/predictions",
    ]
    assert all(k.endswith(".parquet") for k in keys)
    assert pending_uploads(bucket) == []

    far = LogReader(tmp_path / "elsewhere", remote=remote)
    near = LogReader(tmp_path / "copy")
    assert far.models() == ["m"]
    table = far.window("m", with_labels=True)
    assert table.equals(near.window("m", with_labels=True))
    assert table["prediction_id"].to_pylist() == [r.prediction_id for r in recs]
    assert table["f.s"].to_pylist() == [r.features["s"] for r in recs]
    assert table["f.n"].to_pylist() == [r.features["n"] for r in recs]
    assert table["o.proba.b"].to_pylist() == [0.75] * len(recs)
    labelled = {pid: label for pid, label, _, _ in labels_of(recs)}
    assert {
        r["prediction_id"]: r["label"] for r in table.to_pylist() if r["label"] is not None
    } == labelled
    assert far.labels("m").select(LABEL_VIEW).equals(near.labels("m").select(LABEL_VIEW))
    assert far.known_ids("m", ["p00003", "nope"]) == {"p00003"}
    streamed = pa.Table.from_batches(list(far.iter_batches("m", version=2, batch_size=50)))
    assert sorted(streamed["prediction_id"].to_pylist()) == [
        r.prediction_id for r in recs if r.version == 2
    ]


def test_two_replicas_ship_to_one_bucket_and_readers_see_the_union(
    bucket: Bucket, tmp_path: Path
) -> None:
    remote = remote_of(bucket)
    a, b = records(300, "a"), records(200, "b")
    write(tmp_path / "a", a, remote)
    write(tmp_path / "b", b, RemoteLog(log_url(bucket), bucket.options))  # its own instance
    assert len(bucket.object_keys()) == 6
    expected = sorted(r.prediction_id for r in a + b)

    reader = LogReader(tmp_path / "monitor", remote=remote)
    assert sorted(reader.window("m")["prediction_id"].to_pylist()) == expected
    assert len(reader.labels("m")) == len(labels_of(a)) + len(labels_of(b))
    segments = reader.segments("m")
    assert len(segments) == 4 and all(size > 0 for _, size in segments)
    # A Ray task gets the reader's settings pickled; each reads its group of segments.
    copy = pickle.loads(pickle.dumps(reader.remote))
    seen: list[str] = []
    for group in partition_segments(segments, 3):
        part = LogReader(tmp_path / "worker", remote=copy)
        batches = part.iter_batches("m", columns=["prediction_id"], segments=group)
        seen += [i for batch in batches for i in batch["prediction_id"].to_pylist()]
    assert sorted(seen) == expected


def test_a_crash_between_upload_and_removal_duplicates_nothing(
    bucket: Bucket, tmp_path: Path
) -> None:
    remote, spool = remote_of(bucket), tmp_path / "spool"
    recs = records(100, "p")
    write(spool, recs, options=NO_COMPACT)
    compact(spool, "m")
    s3 = bucket.client()
    for name in files(spool):  # uploaded; the process died before removing the local file
        s3.put_object(Bucket=bucket.name, Key=f"logs/{name}", Body=(spool / name).read_bytes())
    for reader in (LogReader(spool, remote=remote), LogReader(tmp_path / "x", remote=remote)):
        assert sorted(reader.window("m")["prediction_id"].to_pylist()) == [
            r.prediction_id for r in recs
        ]
        assert len(reader.labels("m")) == len(labels_of(recs))
        assert len(reader.segments("m")) == 2
    assert ship(spool, remote) == []
    assert files(spool) == []
    assert len(LogReader(spool, remote=remote).window("m")) == len(recs)


def batch_segment(spool: Path, rows: int) -> Path:
    """A Parquet segment published by a batch job: ``rows`` rows of 8 random floats."""
    rng = np.random.default_rng(0)
    table = prediction_table(
        ids=pa.array([f"b{i}" for i in range(rows)], pa.string()),
        time_us=int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1e6),
        model="m",
        version=1,
        flags=pa.array([[]] * rows, pa.list_(pa.string())),
        arm=None,
        features={f"x{j}": pa.array(rng.normal(size=rows)) for j in range(8)},
        outputs={"value": pa.array(rng.normal(size=rows))},
    )
    staged = StagedSegment(spool, "m", batch_stem(uuid.uuid4().hex[:8], 0))
    staged.write(table)
    (path,) = publish([staged.close() or ""])
    return path


@pytest.mark.parametrize("failing", ["upload_part", "put_object"])
def test_an_interrupted_upload_leaves_nothing_visible_and_a_retry_ships(
    bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    remote, spool = remote_of(bucket), tmp_path / "spool"
    rows = 170_000 if failing == "upload_part" else 1_000
    path = batch_segment(spool, rows)
    size = path.stat().st_size
    fs = remote.open()[0]
    real_put, real_call = fs.put_file, fs._call_s3
    calls: list[tuple[str, int]] = []

    def small_parts(lpath: str, rpath: str, **kwargs: Any) -> Any:
        # 5 MiB parts (S3's minimum), so the segment is a real multipart upload.
        return real_put(lpath, rpath, chunksize=5 * 2**20, max_concurrency=1, **kwargs)

    async def failing_call(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, kwargs.get("PartNumber", 0)))
        if method == failing and kwargs.get("PartNumber", 2) == 2:
            raise ConnectionResetError("connection lost mid-upload")
        return await real_call(method, *args, **kwargs)

    monkeypatch.setattr(fs, "put_file", small_parts)
    monkeypatch.setattr(fs, "_call_s3", failing_call)
    with pytest.raises(StoreError, match="cannot ship log segment"):
        ship(spool, remote)
    if failing == "upload_part":
        assert size > 10 * 2**20 and ("upload_part", 1) in calls  # part 1 reached the server
    assert bucket.object_keys() == []
    assert pending_uploads(bucket) == []  # aborted, not left dangling
    assert path.exists()
    reader = LogReader(tmp_path / "x", remote=remote)
    assert len(LogReader(spool, remote=remote).window("m", columns=["f.x0"])) == rows
    assert len(reader.window("m", columns=["f.x0"])) == 0  # not shipped: elsewhere, nothing

    monkeypatch.setattr(fs, "_call_s3", real_call)
    (url,) = ship(spool, remote)
    assert url == f"s3://{bucket.name}/logs/m/predictions/{path.name}"
    assert not path.exists()
    head = bucket.client().head_object(Bucket=bucket.name, Key=f"logs/m/predictions/{path.name}")
    assert head["ContentLength"] == size
    assert len(reader.window("m", columns=["f.x0"])) == rows


def test_a_missing_bucket_is_a_store_error(s3_endpoint: str, tmp_path: Path) -> None:
    options = Bucket("lm-none", s3_endpoint).options
    remote = RemoteLog("s3://lm-no-such-bucket/logs", options)
    with pytest.raises(StoreError, match="bucket that does not exist"):
        LogReader(tmp_path, remote=remote).window("m")
    write(tmp_path / "spool", records(10, "p"), options=NO_COMPACT)
    compact(tmp_path / "spool", "m")
    with pytest.raises(StoreError):
        ship(tmp_path / "spool", remote)
    assert len(files(tmp_path / "spool")) == 3


def unreachable() -> dict[str, Any]:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        **Bucket("lm-x", f"http://127.0.0.1:{port}").options,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }


def test_an_unreachable_endpoint_is_a_store_error(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    remote = RemoteLog("s3://lm-unreachable/logs", unreachable())
    with pytest.raises(StoreError, match="lm-unreachable"):
        LogReader(tmp_path, remote=remote).window("m")
    with pytest.raises(StoreError, match="lm-unreachable"):
        LogReader(tmp_path, remote=remote).models()
    write(tmp_path / "spool", records(10, "p"), options=NO_COMPACT)
    compact(tmp_path / "spool", "m")
    with pytest.raises(StoreError, match="cannot"):
        ship(tmp_path / "spool", remote)
    assert len(files(tmp_path / "spool")) == 3


# -- settings --------------------------------------------------------------------------


def env_of(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"LIVEMODEL_HOME": str(tmp_path), "LIVEMODEL_CONFIG": "", **extra}


def test_log_url_and_options_come_from_the_environment(tmp_path: Path) -> None:
    env = env_of(
        tmp_path,
        LIVEMODEL_LOG_URL="memory://lm-logs",
        LIVEMODEL_LOG_OPTIONS='{"secret": "hunter2"}',
    )
    settings = Settings.from_env(env)
    assert settings.log_url == "memory://lm-logs"
    assert settings.log_options == {"secret": "hunter2"}
    assert "hunter2" not in repr(settings)
    reader = log_reader(settings)
    assert reader.remote == RemoteLog("memory://lm-logs", {"secret": "hunter2"})
    assert log_reader(Settings.from_env(env_of(tmp_path))).remote is None


@pytest.mark.parametrize("text", ["{", "[1]", '"s3"', "null", "[" * 100_000])
def test_malformed_log_options_are_config_errors(tmp_path: Path, text: str) -> None:
    env = env_of(tmp_path, LIVEMODEL_LOG_URL="s3://b/logs", LIVEMODEL_LOG_OPTIONS=text)
    with pytest.raises(ConfigError, match="LIVEMODEL_LOG_OPTIONS"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "options",
    [{"bogus": 1}, {"endpoint_url": 12}, {"endpoint_url": "not a url"}, {"client_kwargs": "x"}],
)
def test_options_the_backend_refuses_are_config_errors(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    pytest.importorskip("s3fs")
    remote = RemoteLog("s3://lm-any/logs", options)  # s3fs checks them only when used
    with pytest.raises(ConfigError, match="storage options were refused"):
        LogReader(tmp_path, remote=remote).window("m")
    write(tmp_path / "spool", records(10, "p"), options=NO_COMPACT)
    compact(tmp_path / "spool", "m")
    with pytest.raises(ConfigError, match="storage options were refused"):
        ship(tmp_path / "spool", remote)
    assert len(files(tmp_path / "spool")) == 3


def test_log_options_without_a_url_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LIVEMODEL_LOG_URL is not"):
        Settings.from_env(env_of(tmp_path, LIVEMODEL_LOG_OPTIONS='{"anon": true}'))


# -- the command line, as real processes -------------------------------------------------


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LIVEMODEL_HOME": str(home), "LIVEMODEL_ACTOR": "cli-test"}
    for name in ("LIVEMODEL_DB_URL", "LIVEMODEL_LOGS", "LIVEMODEL_ARTIFACTS", "LIVEMODEL_CONFIG"):
        full.pop(name, None)
    for name in ("LIVEMODEL_LOG_URL", "LIVEMODEL_LOG_OPTIONS"):
        full.pop(name, None)
    full.update(env, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", COLUMNS="250")
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=home, env=full, timeout=240, check=False
    )


def one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error:")
    assert len(done.stderr.strip().splitlines()) == 1 and text in done.stderr


def test_cli_ships_a_spool_and_another_machine_exports_it(bucket: Bucket, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    recs = records(120, "p")
    write(spool, recs, options=NO_COMPACT)  # JSON lines: the command compacts them first
    shipping = {"LIVEMODEL_LOG_URL": log_url(bucket), "LIVEMODEL_LOG_OPTIONS": bucket.options_json}
    done = cli(tmp_path / "a", "logs", "ship", "--json", LIVEMODEL_LOGS=str(spool), **shipping)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["compacted"] == 3 and len(report["shipped"]) == 3
    assert files(spool) == [] and len(bucket.object_keys()) == 3

    registered(tmp_path / "b")  # the other machine shares the model's metadata
    done = cli(tmp_path / "b", "predictions", "m", "--json", **shipping)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["prediction_id"] for r in rows] == [r.prediction_id for r in recs]
    labelled = {pid: label for pid, label, _, _ in labels_of(recs)}
    assert {r["prediction_id"]: r["label"] for r in rows if r["label"] is not None} == labelled


def test_cli_log_errors_are_one_line(bucket: Bucket, tmp_path: Path) -> None:
    url = log_url(bucket)
    registered(tmp_path)  # predictions of an unknown model is an error of its own
    one_line_error(cli(tmp_path, "logs", "ship"), "LIVEMODEL_LOG_URL is not set")
    one_line_error(
        cli(tmp_path, "logs", "ship", LIVEMODEL_LOG_URL=url, LIVEMODEL_LOG_OPTIONS="{"),
        "LIVEMODEL_LOG_OPTIONS is not valid JSON",
    )
    one_line_error(
        cli(tmp_path, "predictions", "m", "--json", LIVEMODEL_LOG_URL="nosuchproto://x/y"),
        "log URL",
    )
    one_line_error(
        cli(
            tmp_path,
            *("predictions", "m", "--json"),
            LIVEMODEL_LOG_URL=url,
            LIVEMODEL_LOG_OPTIONS='{"bogus": 1}',
        ),
        "storage options were refused",
    )
    spool = tmp_path / "spool"
    write(spool, records(10, "p"), options=NO_COMPACT)
    down = {
        "LIVEMODEL_LOGS": str(spool),
        "LIVEMODEL_LOG_URL": "s3://lm-unreachable/logs",
        "LIVEMODEL_LOG_OPTIONS": json.dumps(unreachable()),
    }
    one_line_error(cli(tmp_path, "logs", "ship", **down), "cannot")
    one_line_error(cli(tmp_path, "predictions", "m", "--json", **down), "lm-unreachable")
    assert len(files(spool)) == 3  # compacted, not shipped, nothing lost


def registered(home: Path) -> tuple[Any, ModelHandle, np.ndarray, np.ndarray]:
    """A logistic regression on ``a`` and ``b`` registered as ``m@production`` in ``home``;
    its handle, and 1,600 more rows (features, target) to serve."""
    registry = connect(Settings.at(home, actor="test"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2600, 2))
    y = (x[:, 0] + x[:, 1] + rng.normal(scale=0.7, size=len(x)) > 0).astype(int)
    frame = pd.DataFrame({"a": x[:1000, 0], "b": x[:1000, 1], "y": y[:1000]})
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    registry.register("m", model, frame, target="y", alias="production")
    handle = load_handle(registry, "m@production")
    registry.metadata.db.close()
    assert handle.classes is not None
    return model, handle, x[1000:], y[1000:]


def served_log(home: Path) -> tuple[list[PredictionRecord], list[tuple[str, int, datetime, str]]]:
    """A registered model's predictions on two days (the second drifts in ``b``), half
    of them labelled, as the server logs them."""
    model, handle, x, y = registered(home)
    assert handle.classes is not None
    rng = np.random.default_rng(1)
    served = x.copy()
    served[900:, 1] += 1.0  # the second day drifts
    proba = model.predict_proba(pd.DataFrame(served, columns=["a", "b"]))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [today - timedelta(days=2) + timedelta(minutes=1.5 * i) for i in range(900)]
    times += [today - timedelta(days=1) + timedelta(minutes=2 * i) for i in range(700)]
    recs = [
        PredictionRecord(
            f"p{i}",
            "m",
            handle.number,
            {"a": float(served[i, 0]), "b": float(served[i, 1])},
            {
                "label": int(model.classes_[proba[i].argmax()]),
                "proba": {str(c): float(p) for c, p in zip(handle.classes, proba[i], strict=True)},
            },
            times[i],
        )
        for i in range(len(served))
    ]
    chosen = np.flatnonzero(rng.random(len(recs)) < 0.5).tolist()
    labels = [(f"p{i}", int(y[i]), times[i] + timedelta(hours=1), "t") for i in chosen]
    return recs, labels


@pytest.mark.slow
def test_monitor_run_over_a_shipped_log_matches_a_local_run(bucket: Bucket, tmp_path: Path) -> None:
    """One replica's spool shipped to S3; a monitor on another machine reads it there."""
    home, spool, copy = tmp_path / "home", tmp_path / "spool", tmp_path / "copy"
    recs, labels = served_log(home)
    for root, remote in ((spool, remote_of(bucket)), (copy, None)):
        with PredictionLog(root, remote=remote) as log:
            log.append(recs[:800])
            log.append(recs[800:])
        with LabelLog(root, remote=remote) as label_log:
            label_log.append("m", labels)
    assert files(spool) == []

    args = ("monitor", "run", "m", "--window", "1d", "--since", "3d", "--json")
    shipped = cli(
        home,
        *args,
        LIVEMODEL_LOGS=str(tmp_path / "empty"),
        LIVEMODEL_LOG_URL=log_url(bucket),
        LIVEMODEL_LOG_OPTIONS=bucket.options_json,
    )
    assert shipped.returncode == 0, shipped.stderr
    local = cli(home, *args, LIVEMODEL_LOGS=str(copy))
    assert local.returncode == 0, local.stderr
    far, near = json.loads(shipped.stdout), json.loads(local.stdout)
    windows = [w for w in far["windows"] if w["n_rows"] > 0]
    assert [w["n_rows"] for w in windows] == [900, 700]
    assert "b" in windows[1]["drifted_columns"]
    assert [w["n_rows"] for w in near["windows"]] == [w["n_rows"] for w in far["windows"]]
    for day, window in enumerate(windows):  # realized accuracy is scikit-learn's
        on_day = [(int(pid[1:]), label) for pid, label, _, _ in labels]
        on_day = [(i, label) for i, label in on_day if (i >= 900) == (day == 1)]
        expected = accuracy_score(
            [label for _, label in on_day], [recs[i].outputs["label"] for i, _ in on_day]
        )
        (realized,) = [
            r
            for r in window["results"]
            if r["calculator"] == "realized_performance" and r["metric"] == "accuracy"
        ]
        assert realized["value"] == pytest.approx(expected, abs=1e-12)
    assert_same_results(far, near)


def assert_same_results(far: dict[str, Any], near: dict[str, Any]) -> None:
    """Every number as over the local copy; the quantile sketch's (KS, Wasserstein) within
    its rank error, since rows reach it in another order (see tests/monitor/test_engines)."""
    values, local_values = results(far), results(near)
    assert values.keys() == local_values.keys() and len(values) > 50
    eps = kll_doubles_sketch.get_normalized_rank_error(200, False)
    for key, value in values.items():
        other = local_values[key]
        if value is None or other is None:
            assert value == other, key
        elif key[2] == "ks":
            assert abs(value - other) <= 2 * eps, key
        elif key[2] == "wasserstein":
            assert abs(value - other) <= 0.05 + 0.05 * abs(other), key
        else:
            assert value == pytest.approx(other, rel=1e-9, abs=1e-12), key


def results(doc: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
    return {
        (i, r["calculator"], r["metric"], r.get("column")): r["value"]
        for i, w in enumerate(doc["windows"])
        for r in w["results"]
    }


@pytest.mark.slow
def test_a_server_ships_its_log_when_it_stops(bucket: Bucket, tmp_path: Path) -> None:
    """``livemodel serve`` with a log URL: predictions and feedback land in the spool,
    and reach the bucket when their segments close (here: at shutdown)."""
    home, spool = tmp_path / "home", tmp_path / "spool"
    _, _, x, _ = registered(home)
    tokens = connect(Settings.at(home, actor="test"))
    try:  # feedback needs a token with the feedback scope
        feedback, _ = TokenStore(tokens.metadata.db).create("feedback", ["feedback"])
    finally:
        tokens.metadata.db.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMODEL_")}
    env.update(
        LIVEMODEL_HOME=str(home),
        LIVEMODEL_LOGS=str(spool),
        LIVEMODEL_LOG_URL=log_url(bucket),
        LIVEMODEL_LOG_OPTIONS=bucket.options_json,
        LIVEMODEL_CONFIG="",
        OMP_NUM_THREADS="1",
    )
    output = tmp_path / "server.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [EXE, "serve", "--port", str(port)], cwd=home, env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, output)
        ids: list[str] = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for start in range(0, 150, 50):
                rows = [{"a": float(a), "b": float(b)} for a, b in x[start : start + 50]]
                answer = client.post("/v1/models/m/predict", json=rows)
                assert answer.status_code == 200, answer.text
                ids += [row["id"] for row in answer.json()["predictions"]]
            labels = [{"id": pid, "label": i % 2} for i, pid in enumerate(ids[:40])]
            answer = client.post(
                "/v1/models/m/feedback",
                json={"labels": labels},
                headers={"authorization": f"Bearer {feedback}"},
            )
            assert answer.json() == {"accepted": 40, "unknown_ids": []}
        assert bucket.object_keys() == []  # open segments stay in the spool
        assert len(LogReader(spool).window("m")) == 150
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, output.read_text(errors="replace")
    assert files(spool) == []
    keys = bucket.object_keys()
    assert [k.rsplit("/", 1)[0] for k in keys] == ["logs/m/labels", "logs/m/predictions"]
    table = LogReader(tmp_path / "monitor", remote=remote_of(bucket)).window("m", with_labels=True)
    assert sorted(table["prediction_id"].to_pylist()) == sorted(ids)  # each once
    joined = {r["prediction_id"]: r["label"] for r in table.to_pylist() if r["label"] is not None}
    assert joined == {label["id"]: label["label"] for label in labels}


def wait_ready(proc: subprocess.Popen[bytes], url: str, output: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{output.read_text(errors='replace')}")
        with contextlib.suppress(httpx.TransportError):
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200 and "m" in ready.json()["models"]:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not get ready:\n{output.read_text()}")
        time.sleep(0.2)
