"""Per-column data-quality rates of a batch, from the same checks validation runs.

Monitoring calls :func:`quality_summary` once per window. Every rate is a fraction of the
window's ``n`` rows; with ``n == 0`` all rates are ``None`` (undefined, never NaN). Rates
that cannot apply are ``0.0`` (no categorical column is ever out of range). A column
missing from the batch has ``missing_rate == 1.0``. ``missing_rate`` counts every null,
allowed by the signature or not; wrong-typed cells count only as type violations.

>>> import pandas as pd
>>> from livemodel.schema.signature import infer_signature
>>> sig = infer_signature(pd.DataFrame({"x": [0.0, 10.0]}))
>>> report = quality_summary(sig, [{"x": 5.0}, {"x": None}, {"x": 50.0}, {"x": "?"}])
>>> col = report.column("x")
>>> col.missing_rate, col.out_of_range_rate, col.type_violation_rate
(0.25, 0.25, 0.25)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from livemodel.errors import SchemaError
from livemodel.schema.coercion import BoolArray, ColumnCheck
from livemodel.schema.signature import Signature
from livemodel.schema.validation import ValidationResult, validate

__all__ = ["ColumnQuality", "QualityReport", "quality_summary"]


@dataclass(frozen=True)
class ColumnQuality:
    """Quality rates of one signature column over ``n`` rows (``None`` when ``n == 0``)."""

    name: str
    n: int
    present: bool
    missing_rate: float | None
    out_of_range_rate: float | None
    unseen_category_rate: float | None
    type_violation_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "present": self.present,
            "missing_rate": self.missing_rate,
            "out_of_range_rate": self.out_of_range_rate,
            "unseen_category_rate": self.unseen_category_rate,
            "type_violation_rate": self.type_violation_rate,
        }


@dataclass(frozen=True)
class QualityReport:
    """Quality of one batch or window: one entry per signature column, in its order."""

    n: int
    columns: tuple[ColumnQuality, ...]
    unexpected_columns: tuple[str, ...]
    valid_rate: float | None

    def column(self, name: str) -> ColumnQuality:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaError(f"no column {name!r} in this quality report")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "columns": [c.to_dict() for c in self.columns],
            "unexpected_columns": list(self.unexpected_columns),
            "valid_rate": self.valid_rate,
        }


def quality_summary(
    signature: Signature,
    batch_or_result: ValidationResult | pd.DataFrame | list[dict[str, Any]],
) -> QualityReport:
    """Quality rates of a batch (validated here) or of an existing :class:`ValidationResult`.

    An empty batch gives ``n == 0`` and ``None`` rates instead of the
    :class:`~livemodel.errors.InvalidInputError` :func:`validate` raises; any other
    malformed batch still raises it.
    """
    if isinstance(batch_or_result, ValidationResult):
        result = batch_or_result
        names = tuple(c.schema.name for c in result.checks)
        if names != signature.names:
            raise SchemaError("this validation result was made against another signature")
    elif _is_empty(batch_or_result):
        empty = tuple(
            ColumnQuality(c.name, 0, False, None, None, None, None) for c in signature.columns
        )
        return QualityReport(0, empty, (), None)
    else:
        result = validate(signature, batch_or_result)
    columns = tuple(_column_quality(check) for check in result.checks)
    valid_rate = float(np.mean(result.valid))
    return QualityReport(result.n_rows, columns, result.unexpected_columns, valid_rate)


def _is_empty(batch: Any) -> bool:
    if isinstance(batch, pd.DataFrame | list | tuple):
        return len(batch) == 0
    return False


def _column_quality(check: ColumnCheck) -> ColumnQuality:
    n = len(check.null)

    def rate(mask: BoolArray) -> float:
        return float(np.count_nonzero(mask)) / n

    return ColumnQuality(
        name=check.schema.name,
        n=n,
        present=check.present,
        missing_rate=rate(check.null),
        out_of_range_rate=rate(check.out_of_range),
        unseen_category_rate=rate(check.unseen),
        type_violation_rate=rate(check.wrong_type),
    )
