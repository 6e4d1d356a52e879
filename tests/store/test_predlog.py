"""Prediction records: validation, encoding, and a write → read round trip on real files."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livemodel.errors import ConfigError, InvalidInputError
from livemodel.store.logreader import LogReader
from livemodel.store.logwriter import LogOptions, PredictionLog
from livemodel.store.predlog import PredictionRecord, check_model_name, prediction_line

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rec(model: str = "m", version: int = 1, **kw: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "prediction_id": uuid.uuid4().hex,
        "model": model,
        "version": version,
        "features": {"x": 1.5, "city": "Zürich"},
        "outputs": {"label": "yes", "proba": {"yes": 0.75, "no": 0.25}},
        "time": T0,
        "latency_ms": 2.5,
    }
    fields.update(kw)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def line(record: PredictionRecord) -> dict[str, object]:
    out = orjson.loads(prediction_line(record))
    assert isinstance(out, dict)
    return out


# -- encoding ---------------------------------------------------------------------------


def test_line_is_one_json_object_ending_in_newline() -> None:
    raw = prediction_line(rec(flags=["range:x"], arm="shadow"))
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    obj = orjson.loads(raw)
    assert obj["ts"] == 1714564800000000  # 2024-05-01T12:00Z in µs
    assert obj["version"] == 1 and obj["flags"] == ["range:x"] and obj["arm"] == "shadow"
    assert obj["outputs"] == {"label": "yes", "proba": {"yes": 0.75, "no": 0.25}}


def test_non_utc_time_is_converted_exactly() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert line(rec(time=datetime(2024, 5, 1, 14, 0, 0, 7, tzinfo=plus2)))["ts"] == (
        1714564800000007
    )


def test_nan_is_null_and_infinity_is_null_with_a_flag() -> None:
    obj = line(rec(features={"a": float("nan"), "b": float("inf"), "c": np.float32("-inf")}))
    assert obj["features"] == {"a": None, "b": None, "c": None}
    assert obj["flags"] == ["nonfinite:f.b", "nonfinite:f.c"]


def test_numpy_pandas_and_dates_are_normalised() -> None:
    feats = {
        "i": np.int64(3),
        "f": np.float64(0.5),
        "b": np.bool_(True),
        "na": pd.NA,
        "nat": pd.NaT,
        "d": date(2024, 1, 2),
        "t": pd.Timestamp("2024-01-02T03:04:05Z"),
    }
    assert line(rec(features=feats))["features"] == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "na": None,
        "nat": None,
        "d": "2024-01-02",
        "t": "2024-01-02T03:04:05+00:00",
    }


@pytest.mark.parametrize(
    ("features", "named"),
    [
        ({"blob": b"\x00\x01"}, "f.blob"),
        ({"obj": object()}, "f.obj"),
        ({"lst": [1, 2]}, "f.lst"),  # features are scalars
        ({"big": 2**64}, "f.big"),
        ({"dec": __import__("decimal").Decimal("1.5")}, "f.dec"),
        ({"": 1}, "keys must be non-empty"),
        ({1: 1}, "keys must be non-empty"),
    ],
)
def test_unserializable_features_are_refused_naming_the_field(
    features: dict[object, object], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named.replace(".", r"\.")):
        prediction_line(rec(features=features))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"prediction_id": ""}, "prediction id"),
        ({"prediction_id": 7}, "prediction id"),
        ({"prediction_id": "x" * 257}, "prediction id"),
        ({"version": -1}, "version"),
        ({"version": True}, "version"),
        ({"version": "1"}, "version"),
        ({"time": datetime(2024, 1, 1)}, "timezone-aware"),  # naive on purpose
        ({"time": "2024-01-01"}, "timezone-aware"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"flags": "oops"}, "flags"),
        ({"flags": [1]}, "flag"),
        ({"arm": ""}, "arm"),
        ({"features": [("x", 1)]}, "features must be a mapping"),
        ({"outputs": None}, "outputs must be a mapping"),
        ({"outputs": {"p": {"x": b"raw"}}}, r"o\.p\.x"),
        ({"features": {"s": "\ud800"}}, "cannot be encoded"),  # lone surrogate
    ],
)
def test_malformed_records_are_refused(change: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        prediction_line(rec(**change))


def test_deeply_nested_outputs_are_refused() -> None:
    deep: dict[str, object] = {"v": 1}
    for _ in range(10):
        deep = {"k": deep}
    with pytest.raises(InvalidInputError, match="nested deeper"):
        prediction_line(rec(outputs=deep))


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", "x\x00", " m", "m" * 129, None, 3]
)
def test_unsafe_model_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid model name"):
        check_model_name(name)
    if isinstance(name, str):
        with pytest.raises(InvalidInputError, match="invalid model name"):
            prediction_line(rec(model=name))


@pytest.mark.parametrize("name", ["m", "churn-model_v2.1", "A" * 128])
def test_safe_model_names_pass(name: str) -> None:
    assert check_model_name(name) == name


def test_a_bad_record_in_a_batch_writes_nothing(tmp_path: Path) -> None:
    with PredictionLog(tmp_path) as log:
        with pytest.raises(InvalidInputError, match="f.bad"):
            log.append([rec(), rec(features={"bad": b"x"})])
        with pytest.raises(InvalidInputError, match="sequence"):
            log.append(rec())  # type: ignore[arg-type]
        assert log.stats().records == 0
    assert not (tmp_path / "m").exists()


def test_url_roots_are_refused() -> None:
    with pytest.raises(ConfigError, match="local directory"):
        PredictionLog("s3://bucket/log")
    with pytest.raises(ConfigError, match="local directory"):
        LogReader("")


# -- round trip -------------------------------------------------------------------------


def test_round_trip_two_models_two_versions(tmp_path: Path) -> None:
    long = "ü" * 100_000
    records = [
        rec("a", 1, time=T0, features={"x": 1, "s": "plain"}),
        rec("a", 2, time=T0 + timedelta(minutes=1), features={"x": 2.5, "s": long, "new": True}),
        rec("a", 1, time=T0 + timedelta(minutes=2), features={"x": None, "s": "日本語 🚀"}),
        rec("b", 1, time=T0, features={"y": float("nan")}, outputs={"value": 3.25}),
        rec("b", 1, time=T0 + timedelta(hours=1), outputs={"nested": {"deep": {"v": [1, 2]}}}),
    ]
    with PredictionLog(tmp_path, LogOptions(compact=False)) as log:
        log.append(records[:2])
        log.append(records[2:])
    reader = LogReader(tmp_path)
    assert reader.models() == ["a", "b"]

    a = reader.window("a")
    assert a["prediction_id"].to_pylist() == [r.prediction_id for r in records[:3]]
    assert a["version"].to_pylist() == [1, 2, 1]
    assert a["f.x"].type == pa.float64() and a["f.x"].to_pylist() == [1.0, 2.5, None]
    assert a["f.s"].to_pylist() == ["plain", long, "日本語 🚀"]
    assert a["f.new"].to_pylist() == [None, True, None]
    assert a["o.proba.yes"].to_pylist() == [0.75] * 3
    assert a["time"].type == pa.timestamp("us", tz="UTC")
    assert a["time"].to_pylist()[1] == T0 + timedelta(minutes=1)
    assert a["latency_ms"].to_pylist() == [2.5] * 3

    assert reader.window("a", version=1)["f.s"].to_pylist() == ["plain", "日本語 🚀"]
    assert reader.window("a", version=3).num_rows == 0
    window = reader.window("a", start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=2))
    assert window["version"].to_pylist() == [2]

    b = reader.window("b")
    assert b["f.y"].to_pylist() == [None, None]  # NaN stored as null
    assert b["o.value"].to_pylist() == [3.25, None]
    assert b["o.nested.deep.v"].to_pylist() == [None, "[1,2]"]  # lists read as JSON text
    assert "f.s" not in b.column_names  # columns of model a do not leak into b


def test_round_trip_is_the_same_after_compaction(tmp_path: Path) -> None:
    records = [
        rec(features={"x": i, "tag": f"t{i}"}, time=T0 + timedelta(seconds=i)) for i in range(50)
    ]
    with PredictionLog(tmp_path, LogOptions(compact=False)) as log:
        log.append(records)
    before = LogReader(tmp_path).window("m")
    from livemodel.store.logsegments import compact

    made = compact(tmp_path, "m")
    assert [p.suffix for p in made] == [".parquet"]
    assert not list((tmp_path / "m" / "predictions").glob("*.jsonl"))
    after = LogReader(tmp_path).window("m")
    assert after.to_pylist() == before.to_pylist()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(scalars, min_size=1, max_size=8))
def test_any_scalar_feature_column_reads_back(
    tmp_path_factory: pytest.TempPathFactory, values: list[object]
) -> None:
    root = tmp_path_factory.mktemp("prop")
    records = [rec(features={"v": v}, time=T0 + timedelta(seconds=i)) for i, v in enumerate(values)]
    with PredictionLog(root, LogOptions(compact=False)) as log:
        log.append(records)
    got = LogReader(root).window("m")["f.v"].to_pylist()
    kinds = {type(v) for v in values if v is not None}
    for want, have in zip(values, got, strict=True):
        if want is None:
            assert have is None
        elif kinds == {int, float}:
            assert have == float(want)  # type: ignore[arg-type]
        elif len(kinds) == 1:
            assert have == want
        else:  # mixed kinds read as JSON text
            assert have == (want if isinstance(want, str) else orjson.dumps(want).decode())
