"""What a batch admits: the signature's rejecting violations per request, and the
validated features of each row as the prediction log records them."""

from __future__ import annotations

from typing import Any

import pandas as pd

from livemodel.schema.validation import ValidationResult

__all__ = ["feature_rows", "rejecting_flags", "rejection_message"]


def rejecting_flags(
    result: ValidationResult, start: int, stop: int, reject: set[str]
) -> list[dict[str, str]]:
    """Each (field, problem) of a rejecting kind among rows ``start:stop``, first row first."""
    bad: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for row in range(start, stop):
        if result.valid[row]:
            continue
        for flag in result.row_flags(row):
            kind, _, column = flag.partition(":")
            if kind in reject and (kind, column) not in seen:
                seen.add((kind, column))
                bad.append({"field": column, "problem": kind, "row": str(row - start)})
    return bad


def rejection_message(bad: list[dict[str, str]]) -> str:
    """The 422's message: how many problems, the first five named."""
    shown = "; ".join(f"{b['field']}: {b['problem'].replace('_', ' ')}" for b in bad[:5])
    more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
    return f"{len(bad)} problem(s) with the input: {shown}{more}"


def feature_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The validated frame's rows as the log's feature mappings (missing values None)."""
    names = [str(c) for c in frame.columns]
    arrays = []
    for name in names:
        values = frame[name].to_numpy(dtype=object)
        missing = frame[name].isna().to_numpy()
        if missing.any():
            values[missing] = None
        arrays.append(values)
    return [dict(zip(names, values, strict=True)) for values in zip(*arrays, strict=True)]
