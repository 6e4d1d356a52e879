"""Batch jobs end to end (local engine) on SQLite and PostgreSQL: the model's own
predictions for every row, the log the monitor and feedback read, the audit event, and
all-or-nothing failures."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression

from livemodel.batch import ScoreOptions, ScoreResult, score
from livemodel.batch.source import open_input
from livemodel.demo.flights import FEATURES, NUMERIC
from livemodel.errors import (
    ConflictError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    SchemaError,
    StoreError,
)
from livemodel.monitor.results import REALIZED
from livemodel.monitor.runner import Monitor
from livemodel.registry.registry import Registry
from livemodel.schema.validation import validate
from livemodel.serving.handles import load_handle, row_outputs
from livemodel.serving.options import STRUCTURAL, ModelOptions
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

from .conftest import RAISE, register, scoring_input


def hostile_input(flights: pd.DataFrame) -> pd.DataFrame:
    rows = scoring_input(flights)
    rows.loc[10, "carrier"] = None  # rejected (null)
    rows.loc[20, "distance"] = 99_999.0  # flagged (out of range)
    rows.loc[4321, "origin"] = "XYZ"  # flagged (unseen)
    return rows


def write_input(path: Path, rows: pd.DataFrame, row_group_size: int = 1000) -> Path:
    pq.write_table(
        pa.Table.from_pandas(rows, preserve_index=False), path, row_group_size=row_group_size
    )
    return path


def entries(folder: Path) -> list[str]:
    """What a folder holds, but the SQLite database (and its WAL files)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("lm.db"))


def read_output(path: Path) -> pd.DataFrame:
    parts = sorted(path.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def test_every_row_is_scored_logged_and_the_run_audited(
    registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(registry, fitted, flights)
    rows = hostile_input(flights)
    source = write_input(tmp_path / "in.parquet", rows)
    options = ScoreOptions(batch_size=700, partition_rows=2500)
    logs, output = tmp_path / "logs", tmp_path / "out"
    result = score(registry, logs, "flights", source, output, options=options)

    assert (result.rows, result.scored, result.rejected, result.errors) == (6000, 5999, 1, 0)
    assert result.partitions == 3
    out = read_output(tmp_path / "out")
    assert out["flight_id"].tolist() == rows["flight_id"].tolist()  # input order, every row
    # The server's validation of the same rows, and its rule: reject on a structural flag.
    checked = validate(registry.get("flights").signature, rows[list(FEATURES)])
    flags = [checked.row_flags(i) for i in range(len(rows))]
    rejected = [any(f.partition(":")[0] in STRUCTURAL for f in row) for row in flags]
    status = [
        "rejected" if r else "flagged" if f else "ok" for r, f in zip(rejected, flags, strict=True)
    ]
    assert out["flags"].map(list).tolist() == flags
    assert out["status"].tolist() == status
    assert out.loc[10, "status"] == "rejected" and list(out.loc[10, "flags"]) == ["null:carrier"]
    assert "unseen_category:origin" in out.loc[4321, "flags"]
    assert result.flagged == status.count("flagged") > 1000
    assert result.violations["null:carrier"] == 1
    scored = out["status"] != "rejected"
    proba = fitted.predict_proba(rows.loc[scored, list(FEATURES)])
    np.testing.assert_allclose(out.loc[scored, ["proba_0", "proba_1"]], proba, rtol=1e-12)
    assert out.loc[scored, "prediction"].tolist() == proba.argmax(axis=1).tolist()
    assert out.loc[~scored, ["prediction", "prediction_id", "proba_1"]].isna().all().all()

    # The log holds exactly the scored rows, as the monitor and feedback read them.
    log = LogReader(tmp_path / "logs").window("flights").to_pandas().set_index("prediction_id")
    ids = out.loc[scored, "prediction_id"]
    assert sorted(log.index) == sorted(ids)
    by_id = out.loc[scored].set_index("prediction_id").loc[log.index]
    np.testing.assert_array_equal(log["o.proba.1"], by_id["proba_1"])
    np.testing.assert_array_equal(log["o.label"], by_id["prediction"])
    np.testing.assert_array_equal(log["f.distance"], by_id["distance"])
    assert set(log["arm"]) == {"batch"} and set(log["version"]) == {1}
    assert log.loc[out.loc[20, "prediction_id"], "flags"].tolist() == ["out_of_range:distance"]

    # Feedback joins by prediction id.
    with LabelLog(tmp_path / "logs") as labels:
        labels.append("flights", [(ids.iloc[0], 1, datetime.now(UTC), "test")])
    joined = LogReader(tmp_path / "logs").window("flights", with_labels=True)
    assert joined.filter(pa.compute.is_valid(joined["label"]))["prediction_id"].to_pylist() == [
        ids.iloc[0]
    ]

    # One audit event with the lineage of the run.
    event = registry.audit("flights")[-1]
    assert event.action == "batch.scored"
    assert event.details["fingerprint"] == open_input(source).fingerprint
    assert event.details["version"] == 1 and event.details["engine"] == "local"
    assert event.details["output"] == str((tmp_path / "out").absolute())
    assert (event.details["rows"], event.details["scored"], event.details["rejected"]) == (
        6000, 5999, 1
    )  # fmt: skip
    assert event.reason is not None and "5,999 of 6,000 rows of in.parquet" in event.reason
    summary = json.loads((tmp_path / "out" / "_livemodel_score.json").read_text())
    assert summary["run_id"] == result.run_id
    assert entries(tmp_path) == ["artifacts", "in.parquet", "logs", "out"]
    assert not list((tmp_path / "logs").rglob("*.staged"))


def test_the_monitor_and_feedback_work_on_batch_predictions(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    rows = scoring_input(flights)
    source = write_input(tmp_path / "in.parquet", rows)
    score(sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out")
    out = read_output(tmp_path / "out")
    labelled = out.iloc[::3]  # feedback for a third of the rows, by prediction id
    truth = rows["late"].iloc[::3]
    now = datetime.now(UTC)
    with LabelLog(tmp_path / "logs") as labels:
        ids = labelled["prediction_id"]
        labels.append("flights", [(p, int(y), now, "x") for p, y in zip(ids, truth, strict=True)])
    monitor = Monitor(sqlite_registry, LogReader(tmp_path / "logs"))
    times = LogReader(tmp_path / "logs").window("flights", columns=["time"])["time"]
    day = times[0].as_py().replace(hour=0, minute=0, second=0, microsecond=0)
    if times[-1].as_py() >= day + timedelta(days=1):
        pytest.skip("the job ran across midnight")  # a window per day; scoring takes ~1 s
    run = monitor.run("flights", since=day, until=day + timedelta(days=1), window="1d")
    (window,) = run.windows
    assert (window.n_rows, window.n_labelled) == (len(rows), len(labelled))
    got = {r.metric: r.value for r in window.by_calculator(REALIZED)}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, labelled["prediction"]))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, labelled["proba_1"]))


def test_chunks_and_partitions_do_not_change_the_result(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", hostile_input(flights), row_group_size=500)
    tables = []
    for i, (batch, partition) in enumerate([(65_536, 10**6), (333, 1200), (1, 500)]):
        if batch == 1:
            source = write_input(tmp_path / "in.parquet", hostile_input(flights).iloc[:600], 500)
        options = ScoreOptions(batch_size=batch, partition_rows=partition, run_id="fixed")
        score(sqlite_registry, tmp_path / f"logs{i}", "flights", source, tmp_path / f"out{i}",
              options=options)  # fmt: skip
        tables.append(read_output(tmp_path / f"out{i}"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0].iloc[:600], tables[2])
    logs = [
        LogReader(tmp_path / f"logs{i}").window("flights").drop(["time"]).to_pandas()
        for i in range(2)
    ]
    pd.testing.assert_frame_equal(
        *(log.sort_values("prediction_id", ignore_index=True) for log in logs)
    )


def test_the_log_holds_what_the_server_would_log(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    rows = hostile_input(flights).iloc[:400]
    options = ScoreOptions(validation=ModelOptions(review_threshold=0.7))
    source = write_input(tmp_path / "in.parquet", rows)
    score(sqlite_registry, tmp_path / "batch", "flights", source, tmp_path / "out", options=options)
    out = read_output(tmp_path / "out")
    # The server: validate the records, predict the admitted rows, log each as a record.
    handle = load_handle(sqlite_registry, "flights@production")
    records = rows[list(FEATURES)].to_dict("records")
    checked = validate(handle.version.signature, records)
    keep = np.flatnonzero(out["status"] != "rejected")
    outputs = handle.predict(checked.frame.iloc[keep])
    logged = []
    for at, row in enumerate(keep.tolist()):
        answer = row_outputs(handle, outputs, at)
        flags = checked.row_flags(row)
        if max(answer["proba"].values()) < 0.7:
            flags = [*flags, "low_confidence"]
        features = {k: (None if pd.isna(v) else v) for k, v in checked.frame.iloc[row].items()}
        logged.append(
            PredictionRecord(out.loc[row, "prediction_id"], "flights", 1, features, answer,
                             datetime.now(UTC), None, flags, "batch")
        )  # fmt: skip
    with PredictionLog(tmp_path / "served", LogOptions(compact=False)) as log:
        log.append(logged)
    compact(tmp_path / "served", "flights")
    served = LogReader(tmp_path / "served").window("flights").drop(["time"]).to_pandas()
    batch = LogReader(tmp_path / "batch").window("flights").drop(["time"]).to_pandas()
    order = {"by": "prediction_id", "ignore_index": True}
    pd.testing.assert_frame_equal(batch.sort_values(**order), served.sort_values(**order))  # type: ignore[arg-type]
    assert served["flags"].map(lambda f: "low_confidence" in f).any()


def test_a_failed_run_leaves_no_output_no_log_and_no_event(
    sqlite_registry: Registry,
    fitted: Any,
    flights: pd.DataFrame,
    faults: Any,
    tmp_path: Path,
    *,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register(sqlite_registry, faults.Faulty(fitted), flights)
    rows = scoring_input(flights)
    rows.loc[5000:5100, "dep_delay"] = RAISE  # the last partition: the model fails widely
    source = write_input(tmp_path / "in.parquet", rows)
    options = ScoreOptions(partition_rows=2000, batch_size=500)
    before = len(sqlite_registry.audit("flights"))
    with pytest.raises(ModelError, match="failed on more than"):
        score(
            sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out", options=options
        )
    assert entries(tmp_path) == ["artifacts", "in.parquet", "logs"]
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]
    assert LogReader(tmp_path / "logs").window("flights").num_rows == 0
    assert len(sqlite_registry.audit("flights")) == before
    # a few failing rows are errors, not a failed run
    rows.loc[5000:5100, "dep_delay"] = rows.loc[4000:4100, "dep_delay"].to_numpy()
    rows.loc[[3, 4444], "dep_delay"] = RAISE
    write_input(source, rows)
    with caplog.at_level("ERROR", logger="livemodel.batch"):
        result = score(sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out")
    assert (result.errors, result.scored) == (2, 5998)
    out = read_output(tmp_path / "out")
    assert [list(out.loc[i, "flags"])[-1] for i in (3, 4444)] == ["model_error"] * 2
    # each failure is in the log with the model's own error, and counted in the summary
    assert result.failures == {"RuntimeError": 2}
    summary = json.loads((tmp_path / "out" / "_livemodel_score.json").read_text())
    assert summary["failures"] == {"RuntimeError": 2}
    lines = [r.getMessage() for r in caplog.records if r.name == "livemodel.batch"]
    for row in (3, 4444):
        assert any(
            f"failed on input row {row}: RuntimeError: the model failed on purpose" in line
            for line in lines
        ), lines
    assert any("failed on 2 row(s)" in line for line in lines), lines


@contextlib.contextmanager
def small_disk() -> Iterator[None]:
    """Files can grow to 96 KiB only, as on a nearly full disk (writes fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_write_failing_midway_fails_the_run_cleanly(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", pd.concat([scoring_input(flights)] * 4))
    options = ScoreOptions(batch_size=1000)  # written chunk by chunk, behind the scoring
    before = len(sqlite_registry.audit("flights"))
    with small_disk(), pytest.raises(StoreError, match=r"^cannot write"):
        score(sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out",
              options=options)  # fmt: skip
    assert entries(tmp_path) == ["artifacts", "in.parquet", "logs"]
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]
    assert len(sqlite_registry.audit("flights")) == before


def test_without_log_nothing_is_logged(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", scoring_input(flights).iloc[:100])
    result = score(sqlite_registry, None, "flights@1", source, tmp_path / "out")
    assert result.scored == 100 and not result.logged
    assert not (tmp_path / "logs").exists()


def test_an_existing_output_is_replaced_only_when_asked(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", scoring_input(flights).iloc[:100])
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ConflictError, match="exists: choose another or --overwrite"):
        score(sqlite_registry, None, "flights", source, out)
    assert (out / "precious.txt").read_text() == "keep me"
    score(sqlite_registry, None, "flights", source, out, options=ScoreOptions(overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["_livemodel_score.json", "part-00000.parquet"]
    assert entries(tmp_path) == ["artifacts", "in.parquet", "out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file, not a directory"):
        score(sqlite_registry, None, "flights", source, tmp_path / "file",
              options=ScoreOptions(overwrite=True))  # fmt: skip


def test_an_output_another_run_wrote_meanwhile_is_left_alone(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", scoring_input(flights).iloc[:100])
    out = tmp_path / "out"

    def meanwhile(rows: int) -> None:
        out.mkdir(exist_ok=True)
        (out / "theirs.txt").write_text("another run")

    with pytest.raises(ConflictError, match="exists"):
        score(sqlite_registry, tmp_path / "logs", "flights", source, out, progress=meanwhile)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert entries(tmp_path) == ["artifacts", "in.parquet", "logs", "out"]
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]


def test_data_corrupt_past_the_footer_fails_the_run_cleanly(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame, tmp_path: Path
) -> None:
    register(sqlite_registry, fitted, flights)
    source = write_input(tmp_path / "in.parquet", scoring_input(flights))
    data = bytearray(source.read_bytes())
    third = len(data) // 3
    data[third : third + 2000] = b"\xab" * 2000  # data pages; the footer is intact
    source.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"cannot read .*in.parquet' \(row groups"):
        score(sqlite_registry, tmp_path / "logs", "flights", source, tmp_path / "out")
    assert entries(tmp_path) == ["artifacts", "in.parquet", "logs"]
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]


def test_a_regression_model_writes_values(
    sqlite_registry: Registry, flights: pd.DataFrame, tmp_path: Path
) -> None:
    numeric = [c for c in NUMERIC if c != "dep_delay"]
    train = flights.iloc[:4000][[*numeric, "dep_delay"]].dropna()
    model = LinearRegression().fit(train[numeric], train["dep_delay"])
    sqlite_registry.register("delay", model, train, target="dep_delay", alias="production")
    rows = flights.iloc[4000:4500][numeric].dropna().reset_index(drop=True)
    source = write_input(tmp_path / "in.parquet", rows)
    score(sqlite_registry, tmp_path / "logs", "delay", source, tmp_path / "out",
          options=ScoreOptions(validation=ModelOptions(validation="flag")))  # fmt: skip
    out = read_output(tmp_path / "out")
    np.testing.assert_allclose(out["prediction"], model.predict(rows), rtol=1e-12)
    assert "proba_0" not in out.columns
    log = LogReader(tmp_path / "logs").window("delay")
    assert log["o.value"].type == pa.float64() and log.num_rows == len(rows)


@pytest.mark.parametrize(
    ("change", "message", "error"),
    [
        ({"rows": lambda r: r.drop(columns=["carrier"])}, "lacks feature column(s) 'carrier'",
         SchemaError),
        ({"rows": lambda r: r.assign(distance=r["distance"].astype(str))},
         "column 'distance' is large_string in the input but the model expects float", SchemaError),
        ({"keep": ("flight_id", "nope")}, "cannot keep column 'nope'", InvalidInputError),
        ({"rows": lambda r: r.assign(prediction=1)}, "has the name of an output column",
         InvalidInputError),
        ({"keep": ("flight_id", "status")}, "cannot keep column 'status'", InvalidInputError),
        ({"model": "nope"}, "unknown model 'nope'", NotFoundError),
        ({"model": "flights@7"}, "no version 7", NotFoundError),
        ({"model": "flights@staging"}, "staging", NotFoundError),
        ({"model": "../x"}, "invalid model name", InvalidInputError),
        ({"engine": "spark"}, "unknown engine 'spark'", InvalidInputError),
        ({"output": lambda p: p / "in" / "out"}, "would overwrite or sit in the input",
         InvalidInputError),
        ({"output": lambda p: p}, "would overwrite or sit in the input", InvalidInputError),
        ({"output": lambda p: Path("/proc/nope/out")}, "cannot write the output",
         InvalidInputError),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_before_anything_is_written(
    sqlite_registry: Registry,
    fitted: Any,
    flights: pd.DataFrame,
    tmp_path: Path,
    *,
    change: dict[str, Any],
    message: str,
    error: type[Exception],
) -> None:
    register(sqlite_registry, fitted, flights)
    rows = change.get("rows", lambda r: r)(scoring_input(flights).iloc[:50])
    (tmp_path / "in").mkdir()
    write_input(tmp_path / "in" / "a.parquet", rows)
    output = change.get("output", lambda p: p / "out")(tmp_path)
    options = ScoreOptions(keep=change.get("keep"))
    model, engine = change.get("model", "flights"), change.get("engine", "local")
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        score(sqlite_registry, tmp_path / "logs", model, tmp_path / "in", output, engine=engine,
              options=options)  # fmt: skip
    assert entries(tmp_path) == ["artifacts", "in"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int from 1 to 1,000,000"),
        ({"batch_size": 10**9}, "batch_size must be"),
        ({"batch_size": 1.5}, "batch_size must be"),
        ({"partition_rows": -1}, "partition_rows must be"),
        ({"run_id": "a-b"}, "run_id must be"),
        ({"run_id": "x" * 65}, "run_id must be"),
        ({"keep": "flight_id"}, "keep must be a sequence"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ScoreOptions(**options)


def test_results_say_what_they_did(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    result = ScoreResult(
        run_id="r", model="m", version=1, engine="local", input="i", fingerprint="f",
        output="o", partitions=1, rows=10, scored=9, flagged=1, rejected=1, errors=0,
        violations={}, failures={}, logged=True, started=now,
        finished=now + timedelta(seconds=2),
    )  # fmt: skip
    data = result.to_dict()
    assert data["seconds"] == 2.0 and data["started"] == now.isoformat()
    json.dumps(data)
