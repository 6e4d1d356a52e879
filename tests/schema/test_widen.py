"""Widening a signature by another: nulls, ranges, categories, what is left alone, and the
property that the widened signature accepts every row either one accepts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from livemodel.errors import InvalidInputError
from livemodel.schema.signature import (
    ColumnSchema,
    ColumnType,
    Signature,
    TaskSchema,
    infer_signature,
)
from livemodel.schema.validation import validate
from livemodel.schema.widen import widen_column, widen_signature

INT, FLT, BOOL, CAT, DT = (
    ColumnType.INTEGER,
    ColumnType.FLOAT,
    ColumnType.BOOLEAN,
    ColumnType.CATEGORICAL,
    ColumnType.DATETIME,
)


def sig(*columns: ColumnSchema, task: TaskSchema | None = None) -> Signature:
    return Signature(columns=columns, task=task)


@pytest.mark.parametrize(
    ("new", "old", "expected"), [(False, False, False), (False, True, True), (True, False, True),
                                 (True, True, True)],
)  # fmt: skip
def test_a_column_is_nullable_if_either_is(new: bool, old: bool, expected: bool) -> None:
    wide = widen_column(ColumnSchema("x", FLT, new), ColumnSchema("x", FLT, old))
    assert wide.nullable is expected


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        ((0.0, 5.0), (-2.0, 3.0), (-2.0, 5.0)),
        ((0.0, 5.0), (1.0, 9.5), (0.0, 9.5)),
        ((0.0, 5.0), (1.0, 2.0), (0.0, 5.0)),
        ((0.0, 5.0), (None, 2.0), (None, 5.0)),  # unbounded below in the parent: stays so
        ((None, 5.0), (1.0, 7.0), (None, 7.0)),
        ((0.0, None), (1.0, 7.0), (0.0, None)),
        ((None, None), (1.0, 7.0), (None, None)),
    ],
)
def test_the_range_covers_both(
    new: tuple[float | None, float | None],
    old: tuple[float | None, float | None],
    expected: tuple[float | None, float | None],
) -> None:
    for kind in (INT, FLT, DT):
        wide = widen_column(
            ColumnSchema("x", kind, False, *new), ColumnSchema("x", kind, False, *old)
        )
        assert (wide.min, wide.max) == expected


def test_categories_are_the_sorted_union_or_unrestricted() -> None:
    def cats(values: tuple[str, ...] | None) -> ColumnSchema:
        return ColumnSchema("c", CAT, False, categories=values)

    assert widen_column(cats(("b", "z")), cats(("a", "b"))).categories == ("a", "b", "z")
    assert widen_column(cats(()), cats(("a",))).categories == ("a",)
    assert widen_column(cats(("a",)), cats(None)).categories is None
    assert widen_column(cats(None), cats(("a",))).categories is None
    # more than max_categories: unrestricted, as infer_signature does it
    assert widen_column(cats(("a", "b")), cats(("c",)), max_categories=2).categories is None
    assert widen_column(cats(("a", "b")), cats(("b",)), max_categories=2).categories == ("a", "b")


def test_the_union_is_what_inference_gives_for_both_frames_together() -> None:
    """Same order and values as infer_signature on the concatenated training frames."""
    old = pd.DataFrame({"c": ["ö", "B", None, "a"], "x": [3, -1, 7, 2], "f": [0.5, np.nan, 2, 1]})
    new = pd.DataFrame({"c": ["b", "a", "Z", "a"], "x": [0, 4, 9, 1], "f": [1.5, -3, 2, 1]})
    wide = widen_signature(infer_signature(new), infer_signature(old))
    assert wide == infer_signature(pd.concat([new, old], ignore_index=True))
    assert wide.column("c").categories == ("B", "Z", "a", "b", "ö")


def test_types_that_differ_and_columns_in_one_only_stay_as_the_new_signature_has_them() -> None:
    new = sig(
        ColumnSchema("x", INT, False, 0.0, 5.0),
        ColumnSchema("only_new", FLT, False, 1.0, 2.0),
        ColumnSchema("c", CAT, False, categories=("a",)),
    )
    old = sig(
        ColumnSchema("only_old", FLT, True),
        ColumnSchema("c", CAT, True, categories=("b",)),
        ColumnSchema("x", FLT, True, -9.0, 9.0),  # FLOAT where the new one is INTEGER
    )
    wide = widen_signature(new, old)
    assert wide.names == ("x", "only_new", "c")  # the new order; only_old is not added
    assert wide.column("x") == new.column("x")
    assert wide.column("only_new") == new.column("only_new")
    assert wide.column("c") == ColumnSchema("c", CAT, True, categories=("a", "b"))


def test_the_task_is_the_new_signatures() -> None:
    column = ColumnSchema("x", FLT, False, 0.0, 1.0)
    new_task = TaskSchema("binary", "late", (0, 1))
    old_task = TaskSchema("multiclass", "late", (0, 1, 2))
    assert widen_signature(sig(column, task=new_task), sig(column, task=old_task)).task == new_task
    assert widen_signature(sig(column), sig(column, task=old_task)).task is None
    assert widen_signature(sig(column, task=new_task), sig(column)).task == new_task


def test_widening_by_itself_or_a_narrower_signature_changes_nothing() -> None:
    frame = pd.DataFrame({"x": [1, 5, None], "c": ["a", "b", None], "d": [True, False, True]})
    base = infer_signature(frame)
    assert widen_signature(base, base) == base
    assert widen_signature(base, infer_signature(frame.iloc[:1])) == base


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (({"columns": []},), {}, "accepts must be a Signature, got dict"),
        ((None,), {}, "accepts must be a Signature, got NoneType"),
        (("sig",), {}, "accepts must be a Signature, got str"),
        ((), {"max_categories": -1}, "max_categories must be >= 0"),
        ((), {"max_categories": True}, "max_categories must be an int"),
    ],
)
def test_bad_arguments_are_invalid_input(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    base = sig(ColumnSchema("x", FLT, False))
    with pytest.raises(InvalidInputError, match=message):
        widen_signature(base, *(args or (base,)), **kwargs)
    with pytest.raises(InvalidInputError, match="signature must be a Signature, got list"):
        widen_signature([], base)  # type: ignore[arg-type]


# --- the widened signature accepts every row either signature accepts -------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LETTERS = st.text(alphabet="abcxyz", min_size=1, max_size=2)


@st.composite
def bounds(draw: st.DrawFn) -> tuple[float | None, float | None]:
    lo = draw(st.none() | st.integers(-1_000, 1_000))
    hi = draw(st.none() | st.integers(-1_000, 1_000))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


@st.composite
def column(draw: st.DrawFn, name: str, kind: ColumnType) -> ColumnSchema:
    nullable = draw(st.booleans())
    if kind in (INT, FLT, DT):
        return ColumnSchema(name, kind, nullable, *draw(bounds()))
    if kind is CAT:
        categories = draw(st.none() | st.frozensets(_LETTERS, max_size=4))
        return ColumnSchema(
            name,
            kind,
            nullable,
            categories=None if categories is None else tuple(sorted(categories)),
        )
    return ColumnSchema(name, kind, nullable)


@st.composite
def signature_pairs(draw: st.DrawFn) -> tuple[Signature, Signature]:
    kinds = draw(st.lists(st.sampled_from([INT, FLT, BOOL, CAT, DT]), min_size=1, max_size=5))
    names = [f"c{i}" for i in range(len(kinds))]
    new = sig(*(draw(column(n, k)) for n, k in zip(names, kinds, strict=True)))
    old_columns = [draw(column(n, k)) for n, k in zip(names, kinds, strict=True)]
    return new, sig(*draw(st.permutations(old_columns)))


def value(data: st.DataObject, schema: ColumnSchema) -> Any:
    """A value ``schema`` accepts (None only where it is nullable)."""
    if schema.nullable and data.draw(st.booleans()):
        return None
    lo = -1_000 if schema.min is None else int(schema.min)
    hi = 1_000 if schema.max is None else int(schema.max)
    if schema.type is INT:
        return data.draw(st.integers(lo, hi))
    if schema.type is FLT:
        return data.draw(st.floats(float(lo), float(hi), allow_nan=False))
    if schema.type is DT:
        return _EPOCH + dt.timedelta(seconds=data.draw(st.integers(lo, hi)))
    if schema.type is BOOL:
        return data.draw(st.booleans())
    if schema.categories is None:
        return data.draw(_LETTERS)
    assume(schema.categories)
    return data.draw(st.sampled_from(schema.categories))


@settings(max_examples=150, deadline=None)
@given(pair=signature_pairs(), data=st.data())
def test_the_widened_signature_accepts_every_row_either_accepts(
    pair: tuple[Signature, Signature], data: st.DataObject
) -> None:
    new, old = pair
    wide = widen_signature(new, old)
    for source in (new, old):
        rows = [{c.name: value(data, c) for c in source.columns} for _ in range(3)]
        assert validate(source, rows).n_violations == 0  # the generator is right
        result = validate(wide, rows)
        assert result.n_violations == 0, result.summary()
    assert wide.names == new.names
