"""Parquet segments written whole by batch jobs read exactly like compacted JSON lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from livemodel.errors import InvalidInputError
from livemodel.store.labels import LabelLog
from livemodel.store.logbatch import (
    StagedSegment,
    batch_stem,
    discard,
    prediction_table,
    publish,
    staged_segments,
)
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact, list_segments
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

T0 = datetime(2024, 5, 1, tzinfo=UTC)
T_US = int(T0.timestamp() * 1_000_000)
INF = float("inf")

FEATURES: dict[str, list[Any]] = {
    "amount": [1.5, float("nan"), INF, None],
    "count": [1, 2, None, 4],
    "city": ["a", None, "b", "c"],
    "vip": [True, False, None, True],
}
LABELS = ["x", "y", "x", "y"]
PROBA_X = [0.9, 0.2, 0.6, 0.1]
IDS = ["p0", "p1", "p2", "p3"]
FLAGS: list[list[str]] = [[], ["null:amount"], [], ["low_confidence"]]


def arrays() -> tuple[dict[str, pa.Array], dict[str, pa.Array]]:
    features = {
        "amount": pa.array(FEATURES["amount"], pa.float64(), from_pandas=False),
        "count": pa.array(FEATURES["count"], pa.int64()),
        "city": pa.array(FEATURES["city"], pa.string()),
        "vip": pa.array(FEATURES["vip"], pa.bool_()),
    }
    outputs = {
        "label": pa.array(LABELS, pa.string()),
        "proba.x": pa.array(PROBA_X, pa.float64()),
        "proba.y": pa.array([1 - p for p in PROBA_X], pa.float64()),
    }
    return features, outputs


def batch_table(model: str = "m", arm: str | None = "batch") -> pa.Table:
    features, outputs = arrays()
    return prediction_table(
        ids=pa.array(IDS),
        time_us=T_US,
        model=model,
        version=3,
        flags=pa.array(FLAGS, pa.list_(pa.string())),
        arm=arm,
        features=features,
        outputs=outputs,
    )


def write_batch(root: Path, table: pa.Table, token: str = "abc", partition: int = 0) -> Path:
    segment = StagedSegment(root, "m", batch_stem(token, partition))
    segment.write(table)
    staged = segment.close()
    assert staged is not None
    return staged


def test_a_batch_segment_reads_like_a_compacted_one(tmp_path: Path) -> None:
    served, batch = tmp_path / "served", tmp_path / "batch"
    records = [
        PredictionRecord(
            IDS[i],
            "m",
            3,
            {k: v[i] for k, v in FEATURES.items()},
            {"label": LABELS[i], "proba": {"x": PROBA_X[i], "y": 1 - PROBA_X[i]}},
            T0,
            None,
            FLAGS[i],
            "batch",
        )
        for i in range(4)
    ]
    with PredictionLog(served, LogOptions(compact=False)) as log:
        log.append(records)
    compact(served, "m")
    assert [s.state for s in list_segments(served / "m" / "predictions")] == ["parquet"]
    publish([write_batch(batch, batch_table())])
    expected = LogReader(served).window("m")
    got = LogReader(batch).window("m")
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()
    # NaN is null; inf is null plus a flag naming the column, as in JSON lines
    assert got["f.amount"].to_pylist() == [1.5, None, None, None]
    assert got["flags"].to_pylist()[2] == ["nonfinite:f.amount"]


def test_staged_segments_are_invisible_until_published(tmp_path: Path) -> None:
    first = write_batch(tmp_path, batch_table(), partition=0)
    second = write_batch(tmp_path, batch_table().slice(0, 0), partition=1)
    reader = LogReader(tmp_path)
    assert reader.window("m").num_rows == 0
    assert staged_segments(tmp_path, "m", "abc") == sorted([first, second])
    assert staged_segments(tmp_path, "m", "other") == []
    published = publish([first])
    assert [p.suffix for p in published] == [".parquet"]
    assert reader.window("m")["prediction_id"].to_pylist() == IDS
    assert reader.known_ids("m", ["p1", "nope"]) == {"p1"}
    discard([second])
    assert staged_segments(tmp_path, "m", "abc") == []


def test_batch_predictions_join_their_labels(tmp_path: Path) -> None:
    publish([write_batch(tmp_path, batch_table())])
    with LabelLog(tmp_path) as labels:
        labels.append("m", [("p1", "y", T0 + timedelta(days=1), "crm")])
    window = LogReader(tmp_path).window("m", with_labels=True)
    assert window["label"].to_pylist() == [None, "y", None, None]


def test_an_empty_segment_is_not_written(tmp_path: Path) -> None:
    segment = StagedSegment(tmp_path, "m", batch_stem("abc", 0))
    assert segment.close() is None
    assert staged_segments(tmp_path, "m", "abc") == []


def test_a_chunk_of_another_schema_is_refused_and_nothing_stays(tmp_path: Path) -> None:
    segment = StagedSegment(tmp_path, "m", batch_stem("abc", 0))
    segment.write(batch_table())
    features, outputs = arrays()
    features["count"] = pa.array(["a", "b", "c", "d"])
    other = prediction_table(
        ids=pa.array(IDS),
        time_us=T_US,
        model="m",
        version=3,
        flags=pa.array(FLAGS, pa.list_(pa.string())),
        arm=None,
        features=features,
        outputs=outputs,
    )
    with pytest.raises(InvalidInputError, match="do not fit log segment"):
        segment.write(other)
    assert staged_segments(tmp_path, "m", "abc") == []


def bad_table(**change: object) -> None:
    features, outputs = arrays()
    args: dict[str, object] = {
        "ids": pa.array(IDS),
        "time_us": T_US,
        "model": "m",
        "version": 1,
        "flags": pa.array(FLAGS, pa.list_(pa.string())),
        "arm": "batch",
        "features": features,
        "outputs": outputs,
    }
    args.update(change)
    prediction_table(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ids": pa.array(["p0", None, "p2", "p3"])}, "non-null strings"),
        ({"ids": pa.array([1, 2, 3, 4])}, "non-null strings"),
        ({"ids": pa.array(["p0", "", "p2", "p3"])}, "1-256 characters"),
        ({"ids": pa.array(["p0", "x" * 257, "p2", "p3"])}, "1-256 characters"),
        ({"model": "../etc"}, "invalid model name"),
        ({"version": -1}, "version must be"),
        ({"version": True}, "version must be"),
        ({"flags": pa.array([["a"]] * 3, pa.list_(pa.string()))}, "one list of strings"),
        ({"flags": pa.array(["a"] * 4)}, "one list of strings"),
        ({"features": {"x": pa.array([1, 2])}}, "array of 4 values"),
        ({"features": {"x": [1, 2, 3, 4]}}, "array of 4 values"),
        ({"features": {"x": pa.array([[1]] * 4)}}, "bool, int64, float64 or string"),
        ({"features": {"x": pa.array([1, 2, 3, 4], pa.int32())}}, "bool, int64, float64"),
        ({"features": {"": pa.array([1, 2, 3, 4])}}, "non-empty strings"),
    ],
)
def test_malformed_predictions_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        bad_table(**change)


@pytest.mark.parametrize("token", ["", "a_b", "a-b", "ä", "a/b"])
def test_batch_tokens_are_letters_and_digits(token: str) -> None:
    with pytest.raises(InvalidInputError, match="letters and digits"):
        batch_stem(token, 0)


def test_publish_refuses_what_is_not_staged(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    path.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="not a staged log segment"):
        publish([path])
