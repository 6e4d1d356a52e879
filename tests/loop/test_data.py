"""The retraining frame: reading the labelled log, selecting rows, pinning them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.errors import IntegrityError, InvalidInputError, StatisticsError
from livemodel.loop.data import ID, TIME, load_pinned, pin, read_labelled, select_rows
from livemodel.loop.policy import DataSettings, parse_loop
from livemodel.registry.lineage import data_fingerprint
from livemodel.schema.signature import infer_signature
from livemodel.store.artifacts import ArtifactStore
from livemodel.store.labels import LabelLog
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def data_settings(**table: Any) -> DataSettings:
    table = {"min_rows": 10, **table}
    return parse_loop({"models": {"m": {"train": "a:b", "data": table}}}).models["m"].data


def labelled(n_old: int = 100, n_recent: int = 100) -> pd.DataFrame:
    """``n_old`` rows 40-70 days ago and ``n_recent`` rows in the last 30 days, shuffled."""
    old = [NOW - timedelta(days=70) + timedelta(hours=7 * i) for i in range(n_old)]
    recent = [NOW - timedelta(days=29) + timedelta(hours=6 * i) for i in range(n_recent)]
    times = old + recent
    frame = pd.DataFrame({
        TIME: pd.to_datetime(times, utc=True),
        ID: [f"id{i:04d}" for i in range(len(times))],
        "x": np.arange(len(times), dtype=np.float64),
        "y": np.arange(len(times)) % 2,
    })  # fmt: skip
    return frame.sample(frac=1.0, random_state=1).sort_values([TIME, ID]).reset_index(drop=True)


def test_recent_rows_minus_the_newest_holdout_plus_a_share_of_older_rows() -> None:
    frame = labelled()
    chosen = select_rows(frame, data_settings(), now=NOW)
    assert list(chosen.train.columns) == ["x", "y"] == list(chosen.holdout.columns)
    # recent = x 100..199; the holdout is the newest 20 of them
    assert chosen.holdout["x"].tolist() == [float(v) for v in range(180, 200)]
    recent_train = chosen.train[chosen.train["x"] >= 100]
    older = chosen.train[chosen.train["x"] < 100]
    assert recent_train["x"].tolist() == [float(v) for v in range(100, 180)]
    assert len(older) == round(0.3 / 0.7 * 80)  # older rows make up 30% of training
    assert len(older) / len(chosen.train) == pytest.approx(0.3, abs=0.01)
    assert chosen.train["x"].is_monotonic_increasing  # oldest first, like the log
    assert set(chosen.train["x"]).isdisjoint(chosen.holdout["x"])
    rows = chosen.query["rows"]
    assert (rows["recent"], rows["older"], rows["holdout"], rows["train"]) == (100, 34, 20, 114)


def test_the_older_sample_is_seeded() -> None:
    frame = labelled()
    first = select_rows(frame, data_settings(seed=1), now=NOW).train
    again = select_rows(frame, data_settings(seed=1), now=NOW).train
    other = select_rows(frame, data_settings(seed=2), now=NOW).train
    pd.testing.assert_frame_equal(first, again)
    assert first["x"].tolist() != other["x"].tolist()


def test_recent_as_a_row_count_and_the_caps() -> None:
    frame = labelled()
    by_rows = select_rows(frame, data_settings(recent=50, older_share=0.0), now=NOW)
    assert by_rows.holdout["x"].tolist() == [float(v) for v in range(190, 200)]
    assert by_rows.train["x"].tolist() == [float(v) for v in range(150, 190)]
    capped = select_rows(frame, data_settings(max_rows=40), now=NOW)
    assert len(capped.train) <= 40
    assert capped.train["x"].max() == 179.0  # the newest training rows are kept
    few_old = select_rows(labelled(n_old=5), data_settings(older_share=0.9), now=NOW)
    assert (few_old.train["x"] < 5).sum() == 5  # all the older rows there are


def test_too_little_data_is_a_statistics_error() -> None:
    with pytest.raises(StatisticsError, match=r"only \d+ labelled rows to train on"):
        select_rows(labelled(), data_settings(min_rows=1000), now=NOW)
    with pytest.raises(StatisticsError, match="no recent labelled rows"):
        select_rows(labelled(n_recent=0), data_settings(min_rows=2), now=NOW)
    with pytest.raises(StatisticsError):
        select_rows(labelled(0, 0), data_settings(), now=NOW)
    with pytest.raises(InvalidInputError, match="read_labelled"):
        select_rows(pd.DataFrame({"x": [1]}), data_settings(), now=NOW)


def write_log(root: Path) -> None:
    rows: list[tuple[str, dict[str, Any], object, datetime | None]] = [
        ("a", {"n": 1, "f": 0.5, "c": "AA"}, 1, NOW - timedelta(hours=1)),
        ("b", {"n": 2, "f": None, "c": "BB"}, "0", NOW - timedelta(hours=1)),  # label as text
        ("c", {"n": 3, "f": "oops", "c": None}, 7, NOW - timedelta(hours=1)),  # no such class
        ("d", {"n": 4, "f": 1.5, "c": "AA"}, 1, NOW + timedelta(hours=1)),  # labelled later
        ("e", {"n": 5, "f": 2.5, "c": "CC"}, None, None),  # never labelled
        ("f", {"n": 6, "f": 3.5, "c": "BB"}, 0, NOW - timedelta(minutes=1)),
    ]
    options = LogOptions(compact=False)
    with PredictionLog(root, options) as log:
        log.append([
            PredictionRecord(prediction_id=pid, model="m", version=1, features=features,
                             outputs={"label": 0}, time=NOW - timedelta(hours=10 - i))
            for i, (pid, features, _, _) in enumerate(rows)
        ])  # fmt: skip
    with LabelLog(root, options) as labels:
        labels.append("m", [(pid, label, t, "test") for pid, _, label, t in rows if t])


def signature() -> Any:
    train = pd.DataFrame({"n": [1, 2, 3], "f": [0.1, 0.2, 0.3], "c": ["AA", "BB", "AA"],
                          "y": [0, 1, 1]})  # fmt: skip
    return infer_signature(train, "y")


def test_read_labelled_types_columns_and_drops_what_cannot_train(tmp_path: Path) -> None:
    write_log(tmp_path)
    frame, counts = read_labelled(LogReader(tmp_path), "m", signature(), now=NOW)
    assert frame[ID].tolist() == ["a", "b", "f"]
    assert frame["y"].tolist() == [1, 0, 0] and frame["y"].dtype == np.int64
    assert frame["n"].dtype == np.int64
    assert frame["f"].dtype == np.float64 and np.isnan(frame["f"].iloc[1])
    assert frame["c"].tolist() == ["AA", "BB", "BB"]
    assert counts == {"predictions": 6, "unlabelled": 1, "labels_not_matching_a_class": 1,
                      "labels_after_now": 1}  # fmt: skip
    since = read_labelled(LogReader(tmp_path), "m", signature(), now=NOW,
                          since=NOW - timedelta(hours=5))[0]  # fmt: skip
    assert since[ID].tolist() == ["f"]


def test_read_labelled_of_a_model_without_a_log(tmp_path: Path) -> None:
    frame, counts = read_labelled(LogReader(tmp_path), "m", signature(), now=NOW)
    assert frame.empty and counts["predictions"] == 0
    assert list(frame.columns) == [TIME, ID, "n", "f", "c", "y"]


def test_pin_round_trips_and_refuses_tampering(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    chosen = select_rows(labelled(), data_settings(), now=NOW)
    pinned = pin(chosen, store)
    pd.testing.assert_frame_equal(pinned.train, chosen.train)
    assert pinned.info["train"]["fingerprint"] == data_fingerprint(pinned.train)
    assert pinned.info["query"]["rows"]["train"] == len(pinned.train)
    loaded = load_pinned(pinned.info, store)
    pd.testing.assert_frame_equal(loaded.holdout, pinned.holdout)

    wrong = {**pinned.info, "train": {**pinned.info["train"], "fingerprint": "0" * 64}}
    with pytest.raises(IntegrityError, match="fingerprint"):
        load_pinned(wrong, store)
    with pytest.raises(IntegrityError, match="no holdout artifact"):
        load_pinned({"train": pinned.info["train"]}, store)
    path = tmp_path / "artifacts" / pinned.info["train"]["artifact"]["key"]
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(IntegrityError, match="tampered"):
        load_pinned(pinned.info, store)


@settings(max_examples=60, deadline=None)
@given(
    n_old=st.integers(0, 80),
    n_recent=st.integers(1, 80),
    holdout=st.floats(0.05, 0.9),
    older_share=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_selection_properties(
    n_old: int, n_recent: int, holdout: float, older_share: float, seed: int
) -> None:
    """The holdout is the newest recent rows, never trained on; older rows are sampled from
    before the recent window in the asked share, as far as there are any."""
    frame = labelled(n_old, n_recent)
    spec = data_settings(holdout=holdout, older_share=older_share, seed=seed, min_rows=2)
    try:
        chosen = select_rows(frame, spec, now=NOW)
    except StatisticsError:
        assert n_recent - math.ceil(holdout * n_recent) < 2 or n_recent == 0
        return
    train_x, hold_x = set(chosen.train["x"]), set(chosen.holdout["x"])
    assert train_x.isdisjoint(hold_x)
    assert len(hold_x) == math.ceil(holdout * n_recent)
    assert sorted(hold_x) == [float(v) for v in range(n_old + n_recent - len(hold_x),
                                                      n_old + n_recent)]  # fmt: skip
    recent_train = n_recent - len(hold_x)
    older = [x for x in train_x if x < n_old]
    assert len(older) == min(round(older_share / (1 - older_share) * recent_train), n_old)
    assert len(train_x) == recent_train + len(older)
    assert chosen.train["x"].is_monotonic_increasing
    again = select_rows(frame, spec, now=NOW)
    pd.testing.assert_frame_equal(chosen.train, again.train)
