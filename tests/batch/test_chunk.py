"""One chunk: the server's validation and reject/flag rule, the model's own predictions,
failures and flags, and log records laid out as the log expects."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from livemodel.batch.chunk import _ids, score_chunk
from livemodel.demo.flights import FEATURES
from livemodel.errors import ModelError
from livemodel.registry.registry import Registry
from livemodel.schema.validation import validate
from livemodel.serving.handles import ModelHandle, load_handle
from livemodel.serving.options import STRUCTURAL, ModelOptions

from .conftest import NAN, RAISE, register, scoring_input

RUN = "0123456789abcdef"
T_US = 1_700_000_000_000_000


@pytest.fixture
def handle(sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame) -> ModelHandle:
    register(sqlite_registry, fitted, flights)
    return load_handle(sqlite_registry, "flights@production")


def chunk_of(frame: pd.DataFrame) -> pa.RecordBatch:
    return pa.RecordBatch.from_pandas(frame, preserve_index=False)


def hostile(flights: pd.DataFrame) -> pd.DataFrame:
    """Eight rows: clean, then one problem each (and two in the last)."""
    rows = scoring_input(flights).iloc[:8].copy()
    rows["sched_hour"] = rows["sched_hour"].astype("float64")
    rows.loc[1, "carrier"] = None  # null, never null in training: rejecting
    rows.loc[2, "distance"] = 99_999.0  # out of range: flagged
    rows.loc[3, "carrier"] = "ZZ"  # unseen category: flagged
    rows.loc[4, "sched_hour"] = 3.5  # not an integer: wrong type, rejecting
    rows.loc[5, "temp"] = None  # null, but temp was nullable in training: fine
    rows.loc[6, "dep_delay"] = float("inf")  # out of range; the model cannot take it
    rows.loc[7, ["origin", "sched_hour"]] = ["XYZ", None]  # unseen + null
    return rows


def test_flags_and_rejections_are_the_servers(handle: ModelHandle, flights: pd.DataFrame) -> None:
    rows = hostile(flights)
    scored = score_chunk(
        handle, ModelOptions(), chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    out = scored.output.to_pydict()
    server = validate(handle.version.signature, rows[list(FEATURES)])
    validation = [[f for f in flags if f != "model_error"] for flags in out["flags"]]
    assert validation == [server.row_flags(i) for i in range(len(rows))]
    # The server rejects a request when a flag's kind is one of the rejecting kinds.
    rejected = [any(f.partition(":")[0] in STRUCTURAL for f in flags) for flags in out["flags"]]
    assert [s == "rejected" for s in out["status"]] == rejected
    assert out["status"] == [
        "ok", "rejected", "flagged", "flagged", "rejected", "ok", "error", "rejected"
    ]  # fmt: skip
    assert out["flags"][7] == ["null:sched_hour", "unseen_category:origin"]
    # The model raises on inf: bisecting finds the row, as the server retries per request.
    assert out["flags"][6] == ["out_of_range:dep_delay", "model_error"]
    counts = scored.counts
    assert counts.rows == 8
    assert (counts.scored, counts.flagged, counts.rejected, counts.errors) == (4, 2, 3, 1)
    assert scored.counts.violations == {
        "null:carrier": 1,
        "out_of_range:distance": 1,
        "unseen_category:carrier": 1,
        "wrong_type:sched_hour": 1,
        "out_of_range:dep_delay": 1,
        "unseen_category:origin": 1,
        "null:sched_hour": 1,
    }
    # Rejected and failed rows are in the output, with their reasons, but have no
    # prediction or id.
    for i, status in enumerate(out["status"]):
        predicted = status in ("ok", "flagged")
        assert (out["prediction"][i] is not None) is predicted
        assert (out["prediction_id"][i] is not None) is predicted
    assert scored.log is not None and scored.log.num_rows == 4


def test_flag_mode_predicts_every_row_and_logs_its_flags(
    handle: ModelHandle, flights: pd.DataFrame
) -> None:
    rows = hostile(flights)
    options = ModelOptions(validation="flag")
    scored = score_chunk(
        handle, options, chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    out = scored.output.to_pydict()
    assert scored.counts.rejected == 0 and scored.counts.scored == 7
    assert out["status"] == ["ok", *["flagged"] * 4, "ok", "error", "flagged"]
    assert scored.log is not None
    assert scored.log["flags"].to_pylist() == out["flags"][:6] + out["flags"][7:]


def test_predictions_are_the_models_own(
    handle: ModelHandle, fitted: Any, flights: pd.DataFrame
) -> None:
    rows = scoring_input(flights).iloc[:3000]
    scored = score_chunk(
        handle,
        ModelOptions(validation="flag"),
        chunk_of(rows),
        keep=("flight_id",),
        first_row=5000,
        run_id=RUN,
        time_us=T_US,
    )
    out = scored.output.to_pandas()
    proba = fitted.predict_proba(rows[list(FEATURES)])
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), proba, rtol=1e-12)
    assert out["prediction"].tolist() == fitted.classes_[proba.argmax(axis=1)].tolist()
    assert out["flight_id"].tolist() == rows["flight_id"].tolist()
    assert out["prediction_id"].tolist() == [f"{RUN}{5000 + i:016x}" for i in range(len(rows))]
    assert scored.output.column_names == [
        "flight_id", "prediction_id", "status", "flags", "prediction", "proba_0", "proba_1"
    ]  # fmt: skip


def test_log_records_hold_the_coerced_features_and_the_outputs(
    handle: ModelHandle, flights: pd.DataFrame
) -> None:
    rows = hostile(flights)
    scored = score_chunk(
        handle, ModelOptions(), chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    log = scored.log
    assert log is not None
    kept = [0, 2, 3, 5]
    out = scored.output.take(pa.array(kept))
    assert log["prediction_id"].to_pylist() == out["prediction_id"].to_pylist()
    assert log["o.label"].to_pylist() == out["prediction"].to_pylist()
    assert log["o.proba.1"].to_pylist() == out["proba_1"].to_pylist()
    assert set(log["arm"].to_pylist()) == {"batch"}
    assert set(log["version"].to_pylist()) == {handle.number}
    assert log["f.carrier"].to_pylist() == rows["carrier"].iloc[kept].tolist()
    assert log["f.sched_hour"].type == pa.int64()
    assert log["f.temp"].to_pylist()[3] is None  # the null stays null
    assert log["f.distance"].to_pylist()[1] == 99_999.0
    assert log["flags"].to_pylist() == out["flags"].to_pylist()


def test_rows_the_model_cannot_answer_are_errors(
    handle: ModelHandle, fitted: Any, flights: pd.DataFrame, faults: Any
) -> None:
    faulty = dataclasses.replace(handle, model=faults.Faulty(handle.model))
    rows = scoring_input(flights).iloc[:1000].copy()
    rows.loc[[2, 5], "dep_delay"] = NAN
    rows.loc[[7, 500, 999], "dep_delay"] = RAISE
    scored = score_chunk(
        faulty, ModelOptions(validation="flag"), chunk_of(rows), keep=(), first_row=0,
        run_id=RUN, time_us=T_US,
    )  # fmt: skip
    out = scored.output.to_pydict()
    for i in range(len(rows)):
        error = i in (2, 5, 7, 500, 999)
        assert (out["status"][i] == "error") is error
        assert (out["prediction"][i] is None) is error
        assert (out["prediction_id"][i] is None) is error
    assert [out["flags"][i][-1] for i in (2, 5, 7, 500, 999)] == [
        "nan_output", "nan_output", "model_error", "model_error", "model_error"
    ]  # fmt: skip
    assert scored.counts.errors == 5 and scored.counts.scored == 995
    assert scored.log is not None and scored.log.num_rows == 995
    # the rows around a failing one still get the model's own answer
    expected = fitted.predict_proba(rows[list(FEATURES)].iloc[[6, 8, 501]])[:, 1]
    np.testing.assert_allclose([out["proba_1"][i] for i in (6, 8, 501)], expected, rtol=1e-12)


def test_a_model_failing_on_many_rows_fails_the_job(
    handle: ModelHandle, flights: pd.DataFrame, faults: Any
) -> None:
    faulty = dataclasses.replace(handle, model=faults.Faulty(handle.model))
    rows = scoring_input(flights).iloc[:300].copy()
    rows["dep_delay"] = RAISE  # out of range too, which flags but does not reject
    with pytest.raises(ModelError, match=r"failed on more than 13 of 300 rows: .*on purpose"):
        score_chunk(
            faulty, ModelOptions(), chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
        )


def test_low_confidence_is_flagged_like_the_server(
    handle: ModelHandle, fitted: Any, flights: pd.DataFrame
) -> None:
    rows = scoring_input(flights).iloc[:2000]
    options = ModelOptions(validation="flag", review_threshold=0.7)
    scored = score_chunk(
        handle, options, chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    unsure = fitted.predict_proba(rows[list(FEATURES)]).max(axis=1) < 0.7
    assert 0 < unsure.sum() < len(rows)
    flags = scored.output["flags"].to_pylist()
    assert [bool(f) and f[-1] == "low_confidence" for f in flags] == unsure.tolist()


def test_a_missing_column_in_flag_mode_is_flagged_on_every_row(
    handle: ModelHandle, flights: pd.DataFrame
) -> None:
    rows = scoring_input(flights).iloc[:50].drop(columns=["humid"])
    options = ModelOptions(validation="flag")
    scored = score_chunk(
        handle, options, chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    flags = scored.output["flags"].to_pylist()
    assert all(f[0] == "missing_column:humid" for f in flags)
    assert scored.counts.violations["missing_column:humid"] == 50
    assert scored.log is not None and scored.log["f.humid"].null_count == 50


def test_prediction_ids_are_unique_hex_of_the_run_and_row(
    handle: ModelHandle, flights: pd.DataFrame
) -> None:
    rows = scoring_input(flights).iloc[:100]
    scored = score_chunk(
        handle, ModelOptions(), chunk_of(rows), keep=(), first_row=2**40, run_id=RUN, time_us=T_US
    )
    ids = scored.output["prediction_id"].to_pylist()
    assert len(set(ids)) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def spelled_out_ids(run_id: str, first_row: int, ok: np.ndarray) -> list[str | None]:
    """The definition of a prediction id, one row at a time."""
    return [f"{run_id}{first_row + i:016x}" if keep else None for i, keep in enumerate(ok)]


@settings(max_examples=300, deadline=None)
@given(
    run_id=st.text(alphabet="0123456789abcdefXYZ", max_size=64),
    first_row=st.one_of(
        st.integers(0, 2**33),
        st.integers(2**32 - 100, 2**32 + 100),
        st.integers(2**40, 2**63),
        st.integers(16**16 - 1000, 16**16 - 200),
    ),
    ok=st.lists(st.booleans(), max_size=200),
)
def test_prediction_ids_are_the_run_and_the_row_in_hex(
    run_id: str, first_row: int, ok: list[bool]
) -> None:
    mask = np.asarray(ok, dtype=bool)
    ids = _ids(run_id, first_row, len(ok), mask)
    ids.validate(full=True)
    assert ids.type == pa.string()
    assert ids.to_pylist() == spelled_out_ids(run_id, first_row, mask)


def test_string_labels_are_the_models_and_null_where_not_answered(
    sqlite_registry: Registry, fitted: Any, flights: pd.DataFrame
) -> None:
    train = flights.iloc[:4000].copy()
    train["late"] = np.where(train["late"] == 1, "late", "on time")
    model = clone(fitted).fit(train[list(FEATURES)], train["late"])
    sqlite_registry.register("words", model, train, target="late", alias="production")
    handle = load_handle(sqlite_registry, "words@production")
    rows = hostile(flights)
    scored = score_chunk(
        handle, ModelOptions(), chunk_of(rows), keep=(), first_row=0, run_id=RUN, time_us=T_US
    )
    out = scored.output.to_pydict()
    assert scored.output.schema.field("prediction").type == pa.string()
    answered = [s in ("ok", "flagged") for s in out["status"]]
    expected = model.predict(rows[list(FEATURES)].iloc[[i for i, a in enumerate(answered) if a]])
    assert [p for p, a in zip(out["prediction"], answered, strict=True) if a] == list(expected)
    assert [p for p, a in zip(out["prediction"], answered, strict=True) if not a] == [None] * 4
    assert out["prediction_id"] == spelled_out_ids(RUN, 0, np.asarray(answered))
    assert scored.log is not None
    assert scored.log["o.label"].to_pylist() == list(expected)
