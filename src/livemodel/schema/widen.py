"""Widening a signature so that it accepts whatever another signature accepts.

A retrained model is registered with the signature of the data it was trained on; a short
or lucky window can lack the nulls, categories or extremes its parent saw, and the new
signature would then reject or flag requests the parent served. :func:`widen_signature`
merges the parent's signature into the new one, column by column:

* a column present in both with the same type is ``nullable`` if either is, its ``min``
  is the smaller and its ``max`` the larger (``None``, unbounded, if either is), and its
  ``categories`` are the sorted union (``None``, unrestricted, if either is, or when the
  union has more than ``max_categories`` values: :func:`infer_signature`'s convention);
* a column in only one signature, or whose types differ, and the task stay as the new
  signature has them.

It is pure: whether the *model* can take a null is for the caller to check (the registry
does, see :meth:`livemodel.registry.registry.Registry.register`).

>>> import pandas as pd
>>> from livemodel.schema.signature import infer_signature
>>> parent = infer_signature(pd.DataFrame({"x": [1.0, None, 9.0], "c": ["a", "b", "a"]}))
>>> new = infer_signature(pd.DataFrame({"x": [2.0, 5.0], "c": ["b", "z"]}))
>>> wide = widen_signature(new, parent)
>>> x, c = wide.columns
>>> (x.nullable, x.min, x.max), c.categories
((True, 1.0, 9.0), ('a', 'b', 'z'))
"""

from __future__ import annotations

from dataclasses import replace

from livemodel.errors import InvalidInputError
from livemodel.schema.signature import ColumnSchema, Signature

__all__ = ["widen_column", "widen_signature"]


def widen_signature(
    signature: Signature, accepts: Signature, *, max_categories: int = 1000
) -> Signature:
    """``signature`` widened to accept every value ``accepts`` accepts (module docstring)."""
    for value, what in ((signature, "signature"), (accepts, "accepts")):
        if not isinstance(value, Signature):
            raise InvalidInputError(f"{what} must be a Signature, got {type(value).__name__}")
    if isinstance(max_categories, bool) or not isinstance(max_categories, int):
        raise InvalidInputError(f"max_categories must be an int, got {max_categories!r}")
    if max_categories < 0:
        raise InvalidInputError(f"max_categories must be >= 0, got {max_categories}")
    other = {c.name: c for c in accepts.columns}
    columns = tuple(
        widen_column(col, other[col.name], max_categories=max_categories)
        if col.name in other
        else col
        for col in signature.columns
    )
    return Signature(columns=columns, task=signature.task)


def widen_column(
    column: ColumnSchema, accepts: ColumnSchema, *, max_categories: int = 1000
) -> ColumnSchema:
    """``column`` widened by ``accepts`` when both have the same type, else ``column``."""
    if accepts.type is not column.type:
        return column
    categories = None
    if column.categories is not None and accepts.categories is not None:
        union = sorted({*column.categories, *accepts.categories})
        categories = tuple(union) if len(union) <= max_categories else None
    return replace(
        column,
        nullable=column.nullable or accepts.nullable,
        min=_lower(column.min, accepts.min),
        max=_upper(column.max, accepts.max),
        categories=categories,
    )


def _lower(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else min(a, b)


def _upper(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)
