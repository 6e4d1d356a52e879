"""Labels: late, out of order, duplicated; last write wins, history kept; joins and ids."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from livemodel.errors import InvalidInputError
from livemodel.store.labels import LabelLog, LabelRecord
from livemodel.store.logreader import LogReader
from livemodel.store.logsegments import compact
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

T0 = datetime(2024, 5, 1, tzinfo=UTC)
NO_COMPACT = LogOptions(compact=False)


def predict(root: Path, n: int, model: str = "m") -> list[str]:
    records = [
        PredictionRecord(
            uuid.uuid4().hex, model, 1, {"x": float(i)}, {"label": 0}, T0 + timedelta(seconds=i)
        )
        for i in range(n)
    ]
    with PredictionLog(root, NO_COMPACT) as log:
        log.append(records)
    return [r.prediction_id for r in records]


def test_late_out_of_order_duplicated_labels_last_write_wins(tmp_path: Path) -> None:
    ids = predict(tmp_path, 5)
    week = T0 + timedelta(days=7)
    with LabelLog(tmp_path, NO_COMPACT) as labels:
        labels.append("m", [(ids[3], 1, week, "crm"), (ids[0], 0, T0, "crm")])
        labels.append("m", [LabelRecord(ids[3], 1, week, "crm")])  # an exact duplicate
        # A correction observed *earlier* but written later still wins: write order rules.
        labels.append("m", [(ids[3], 0, T0 + timedelta(days=1), "audit")])
    with LabelLog(tmp_path, NO_COMPACT) as other_process:
        other_process.append("m", [(ids[1], 1, T0, "crm"), (ids[1], 0, T0, "crm-fix")])

    latest = {r["prediction_id"]: r for r in LabelLog(tmp_path).latest("m").to_pylist()}
    assert {k: v["label"] for k, v in latest.items()} == {ids[0]: 0, ids[1]: 0, ids[3]: 0}
    assert latest[ids[3]]["label_source"] == "audit"
    assert latest[ids[3]]["label_time"] == T0 + timedelta(days=1)

    history = LabelLog(tmp_path).history("m").to_pylist()
    assert [(h["label"], h["label_source"]) for h in history if h["prediction_id"] == ids[3]] == [
        (1, "crm"),
        (1, "crm"),
        (0, "audit"),
    ]
    assert len(history) == 6
    written = [h["written_time"] for h in history if h["prediction_id"] == ids[3]]
    assert written == sorted(written) and len(set(written)) == 3

    window = LogReader(tmp_path).window("m", with_labels=True)
    assert window["label"].to_pylist() == [0, 0, None, 0, None]
    assert window["label_source"].to_pylist() == ["crm", "crm-fix", None, "audit", None]
    # Compaction changes nothing.
    compact(tmp_path, "m")
    assert LogReader(tmp_path).window("m", with_labels=True).to_pylist() == window.to_pylist()


def test_labels_stream_with_predictions(tmp_path: Path) -> None:
    ids = predict(tmp_path, 300)
    with LabelLog(tmp_path) as labels:
        labels.append("m", [(i, "yes", T0, "s") for i in ids[::3]])
    batches = list(LogReader(tmp_path).iter_batches("m", with_labels=True, batch_size=50))
    labelled = sum(b.column("label").drop_null().__len__() for b in batches)
    assert labelled == 100 and sum(b.num_rows for b in batches) == 300


def test_known_ids_reports_which_ids_were_predicted(tmp_path: Path) -> None:
    ids = predict(tmp_path, 20)
    compact(tmp_path, "m")  # known ids are found in Parquet ...
    more = predict(tmp_path, 3)  # ... and in JSON lines
    labels = LabelLog(tmp_path)
    asked = [ids[0], more[2], "never-predicted", ids[0]]
    assert labels.known_ids("m", asked) == {ids[0], more[2]}
    assert labels.known_ids("m", []) == set()
    assert labels.known_ids("other-model", ids) == set()
    with pytest.raises(InvalidInputError, match="prediction id"):
        labels.known_ids("m", [ids[0], 5])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="invalid model name"):
        labels.known_ids("../m", ids)


def test_label_types(tmp_path: Path) -> None:
    with LabelLog(tmp_path, NO_COMPACT) as labels:
        labels.append("ints", [("a", np.int64(3), T0, "s"), ("b", True, T0, "s")])
        labels.append("floats", [("a", np.float32(0.5), T0, "s"), ("b", 2, T0, "s")])
    assert LabelLog(tmp_path).latest("floats")["label"].to_pylist() == [0.5, 2.0]
    assert LabelLog(tmp_path).latest("ints")["label"].to_pylist() == ["3", "true"]  # mixed


def test_labels_of_changing_type_across_segments_read_as_text(tmp_path: Path) -> None:
    for value in (1, "cat"):
        with LabelLog(tmp_path, NO_COMPACT) as labels:
            labels.append("m", [(f"id-{value}", value, T0, "s")])
    assert LabelLog(tmp_path).latest("m")["label"].to_pylist() == ["1", "cat"]


def test_async_label_append(tmp_path: Path) -> None:
    async def main(labels: LabelLog) -> None:
        await asyncio.gather(
            *(labels.append_async("m", [(f"p{i}", i, T0, "s")]) for i in range(50))
        )

    with LabelLog(tmp_path) as labels:
        asyncio.run(main(labels))
        assert labels.stats().records == 50
    assert len(LabelLog(tmp_path).latest("m")) == 50


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([("p", 1, T0)], "prediction_id, label, time, source"),
        (["p,1"], "prediction_id, label, time, source"),
        ("p1", "sequence"),
        ([("", 1, T0, "s")], "prediction id"),
        ([(None, 1, T0, "s")], "prediction id"),
        ([("p", None, T0, "s")], "label of p"),
        ([("p", math.nan, T0, "s")], "label of p"),
        ([("p", math.inf, T0, "s")], "label of p"),
        ([("p", b"yes", T0, "s")], "label of p"),
        ([("p", "", T0, "s")], "label of p"),
        ([("p", 2**64, T0, "s")], "label of p"),
        ([("p", [1], T0, "s")], "label of p"),
        ([("p", 1, datetime(2024, 1, 1), "s")], "timezone-aware"),  # naive on purpose
        ([("p", 1, T0, "")], "source"),
        ([("p", 1, T0, None)], "source"),
        ([("p", 1, T0, "s"), ("q", object(), T0, "s")], "label of q"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(
    tmp_path: Path, labels: object, message: str
) -> None:
    with LabelLog(tmp_path) as log:
        with pytest.raises(InvalidInputError, match=message):
            log.append("m", labels)  # type: ignore[arg-type]
        assert log.stats().records == 0
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("model", ["", "../x", "a/b", "..", "x/../../etc"])
def test_unsafe_model_names_are_refused_for_labels(tmp_path: Path, model: str) -> None:
    with LabelLog(tmp_path) as log, pytest.raises(InvalidInputError, match="invalid model name"):
        log.append(model, [("p", 1, T0, "s")])
    assert list(tmp_path.iterdir()) == []
