"""Monitoring results as plain frozen data: one :class:`MetricResult` per number.

Every calculator returns a tuple of :class:`MetricResult`; a window's results are a
:class:`WindowResult`. A value is a finite float or ``None`` with a ``reason`` (never NaN),
and ``details`` is JSON-safe, so results go to the database, to ``--json`` and to a
dashboard unchanged. Nothing here renders anything.

Calculator and metric names:

``data_drift`` / ``output_drift``
    per column, one row per method (``ks``, ``chi2``, ``wasserstein``, ``psi``,
    ``jensen_shannon``) and a ``drift`` verdict row (value 1.0 drifted, 0.0 not, None
    undefined); ``alert`` on the verdict row means drifted.
``data_quality``
    per column ``missing_rate``, ``out_of_range_rate``, ``unseen_category_rate``,
    ``type_violation_rate``; ``label_type_violation_rate`` on the target.
``realized_performance`` / ``estimated_performance``
    one row per metric (``accuracy``, ``roc_auc``, ..., ``mae``, ``rmse``) with its band.
``multivariate_drift``
    ``pca_reconstruction_error`` with its band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["ALL", "CalculatorName", "MetricResult", "WindowResult", "finite", "json_safe"]

#: The segment key of a whole window (segment keys are ``column=value``).
ALL = "*"

CalculatorName = str
DATA_DRIFT = "data_drift"
OUTPUT_DRIFT = "output_drift"
DATA_QUALITY = "data_quality"
REALIZED = "realized_performance"
ESTIMATED = "estimated_performance"
MULTIVARIATE = "multivariate_drift"
CALCULATORS = (DATA_DRIFT, DATA_QUALITY, OUTPUT_DRIFT, REALIZED, ESTIMATED, MULTIVARIATE)


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number, else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON (and PostgreSQL's JSONB) accepts: NaN/inf become None,
    numpy scalars and arrays become Python values, other objects their text."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class MetricResult:
    """One number of one calculator on one window (and segment).

    ``lower``/``upper`` bound what is expected (a sampling band, a drift threshold),
    ``threshold`` is the value compared against (a significance level, an effect-size
    threshold, the reference's performance), ``alert`` whether this number calls for
    attention, ``n`` the sample size it was computed on.
    """

    calculator: str
    metric: str
    column: str | None
    value: float | None
    lower: float | None = None
    upper: float | None = None
    threshold: float | None = None
    alert: bool = False
    n: int = 0
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("value", "lower", "upper", "threshold"):
            object.__setattr__(self, name, finite(getattr(self, name)))
        object.__setattr__(self, "alert", bool(self.alert))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "details", json_safe(dict(self.details)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "calculator": self.calculator,
            "metric": self.metric,
            "column": self.column,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "threshold": self.threshold,
            "alert": self.alert,
            "n": self.n,
            "reason": self.reason,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class WindowResult:
    """Every result of one window of one segment (``segment == ALL`` for the whole)."""

    model: str
    version: int
    window: str
    start: datetime
    end: datetime
    segment: str
    n_rows: int
    n_labelled: int
    results: tuple[MetricResult, ...]

    def by_calculator(self, calculator: str) -> tuple[MetricResult, ...]:
        return tuple(r for r in self.results if r.calculator == calculator)

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Input columns whose drift verdict is positive."""
        return tuple(
            r.column
            for r in self.results
            if r.calculator == DATA_DRIFT and r.metric == "drift" and r.alert and r.column
        )

    @property
    def alerts(self) -> tuple[MetricResult, ...]:
        return tuple(r for r in self.results if r.alert)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "window": self.window,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "segment": self.segment,
            "n_rows": self.n_rows,
            "n_labelled": self.n_labelled,
            "drifted_columns": list(self.drifted_columns),
            "results": [r.to_dict() for r in self.results],
        }
