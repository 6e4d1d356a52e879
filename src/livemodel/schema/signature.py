"""Model signatures: the columns (and task) a model was trained on, inferred from a frame.

A :class:`Signature` is plain, JSON-safe data stored with every model version; serving
validates requests against it and monitoring reads its ranges and categories.

Conventions worth knowing:

* ``ColumnSchema.min``/``max`` are finite floats over the non-null training values, or
  ``None`` when undefined (all null, non-numeric type) or unbounded (an infinity was seen
  on that side). Integers above 2**53 are rounded like every other float.
* DATETIME ranges are **epoch seconds (UTC)**; tz-naive datetimes are read as UTC.
* ``categories`` is the sorted tuple of training values, or ``None`` when there are more
  than ``max_categories`` (too many to enumerate: unseen-category checks are then off).
  For a pandas ``category`` column the *declared* categories are used, so a category the
  user declared but that happens to be absent from the sample is not reported as unseen.

>>> import pandas as pd
>>> sig = infer_signature(pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "a"]}), target="y")
>>> sig.names, sig.column("x").max, sig.task.kind, sig.task.classes
(('x',), 3.0, 'binary', ('a', 'b'))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from livemodel.errors import InvalidInputError, SchemaError

__all__ = [
    "MAX_CLASSES",
    "ColumnSchema",
    "ColumnType",
    "Signature",
    "TaskSchema",
    "epoch_seconds",
    "infer_signature",
]

#: A target with more distinct integer values than this is inferred as regression.
MAX_CLASSES = 100

TaskKind = Literal["binary", "multiclass", "regression"]
ClassLabel = str | int | float | bool
_TASK_KINDS: tuple[TaskKind, ...] = ("binary", "multiclass", "regression")


class ColumnType(StrEnum):
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"


@dataclass(frozen=True)
class ColumnSchema:
    """One feature column: its type, whether training saw nulls, its range or categories."""

    name: str
    type: ColumnType
    nullable: bool
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise SchemaError(f"{where}: min/max must be finite numbers or None")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SchemaError(f"{where}: min {self.min} is greater than max {self.max}")
        if self.categories is not None and self.type is not ColumnType.CATEGORICAL:
            raise SchemaError(f"{where}: only categorical columns have categories")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
        }


@dataclass(frozen=True)
class TaskSchema:
    """What the model predicts; ``classes`` are sorted JSON-safe scalars (None for regression)."""

    kind: TaskKind
    target: str
    classes: tuple[ClassLabel, ...] | None

    def __post_init__(self) -> None:
        if self.kind not in _TASK_KINDS:
            raise SchemaError(f"task kind must be one of {_TASK_KINDS}, got {self.kind!r}")
        if self.kind == "regression":
            if self.classes is not None:
                raise SchemaError("a regression task has no classes")
        elif self.classes is None or len(self.classes) < 2:
            raise SchemaError(f"a {self.kind} task needs at least 2 classes")
        elif self.kind == "binary" and len(self.classes) != 2:
            raise SchemaError(f"a binary task has exactly 2 classes, got {len(self.classes)}")

    def to_dict(self) -> dict[str, Any]:
        classes = None if self.classes is None else list(self.classes)
        return {"kind": self.kind, "target": self.target, "classes": classes}


@dataclass(frozen=True)
class Signature:
    """The feature columns (in training order) and the task of a model."""

    columns: tuple[ColumnSchema, ...]
    task: TaskSchema | None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicate column names in signature: {dupes[:5]}")
        if self.task is not None and self.task.target in names:
            raise SchemaError(f"target {self.task.target!r} is also a feature column")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaError(f"no column {name!r} in signature (columns: {_preview(self.names)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "task": None if self.task is None else self.task.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature from :meth:`to_dict` output; unknown keys are ignored."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"signature must be a mapping, got {type(data).__name__}")
        raw_columns = _require(data, "columns", list, "signature")
        columns = tuple(_column_from_dict(c, i) for i, c in enumerate(raw_columns))
        raw_task = data.get("task")
        task = None if raw_task is None else _task_from_dict(raw_task)
        return cls(columns=columns, task=task)


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise SchemaError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise SchemaError(f"{where}: {key!r} has the wrong type {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _column_from_dict(raw: Any, index: int) -> ColumnSchema:
    where = f"signature column {index}"
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where}: must be a mapping, got {type(raw).__name__}")
    name = _require(raw, "name", str, where)
    where = f"signature column {name!r}"
    type_name = _require(raw, "type", str, where)
    try:
        col_type = ColumnType(type_name)
    except ValueError:
        raise SchemaError(f"{where}: unknown type {type_name!r}") from None
    nullable = _require(raw, "nullable", bool, where)
    bounds = [raw.get(key) for key in ("min", "max")]
    for bound in bounds:
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise SchemaError(f"{where}: min/max must be numbers or null")
    categories = raw.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise SchemaError(f"{where}: categories must be a list of strings or null")
        categories = tuple(categories)
    return ColumnSchema(
        name=name,
        type=col_type,
        nullable=nullable,
        min=None if bounds[0] is None else float(bounds[0]),
        max=None if bounds[1] is None else float(bounds[1]),
        categories=categories,
    )


def _task_from_dict(raw: Any) -> TaskSchema:
    if not isinstance(raw, Mapping):
        raise SchemaError(f"signature task must be a mapping, got {type(raw).__name__}")
    kind = _require(raw, "kind", str, "signature task")
    target = _require(raw, "target", str, "signature task")
    classes = raw.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not all(
            isinstance(c, str | int | float) and not (isinstance(c, float) and not math.isfinite(c))
            for c in classes
        ):
            raise SchemaError("signature task: classes must be a list of finite scalars or null")
        classes = tuple(classes)
    return TaskSchema(kind=cast(TaskKind, kind), target=target, classes=classes)


def _preview(names: tuple[str, ...] | list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def epoch_seconds(values: pd.Series) -> npt.NDArray[np.float64]:
    """Seconds since 1970-01-01 UTC of a datetime Series (naive read as UTC); NaT -> NaN.

    Shared by inference and validation so a training extreme compares equal to itself.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    micros = values.to_numpy(dtype="datetime64[us]").astype(np.int64)
    seconds: npt.NDArray[np.float64] = micros / 1e6
    seconds[values.isna().to_numpy()] = np.nan
    return seconds


def infer_signature(
    frame: pd.DataFrame,
    target: str | None = None,
    *,
    max_categories: int = 1000,
    task: str | None = None,
) -> Signature:
    """Describe the feature columns of ``frame`` (all but ``target``) and the task.

    Task rules: a bool, string or integer target with 2 distinct values is binary, with
    3..:data:`MAX_CLASSES` multiclass; an integer target with more is regression (a string
    one is an error); a float target is binary when its values are exactly two integral
    numbers (0.0/1.0), else regression. ``task`` overrides the inferred kind ("binary",
    "multiclass" or "regression"). An ``object`` column of only bools is BOOLEAN.

    Raises :class:`SchemaError` for frames or columns a signature cannot describe, and
    :class:`InvalidInputError` for bad arguments.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(max_categories, bool) or not isinstance(max_categories, int):
        raise InvalidInputError(f"max_categories must be an int, got {max_categories!r}")
    if max_categories < 0:
        raise InvalidInputError(f"max_categories must be >= 0, got {max_categories}")
    names = list(frame.columns)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise SchemaError(f"column names must be strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SchemaError(f"duplicate column names: {_preview(dupes)}")
    if target is not None and target not in names:
        raise SchemaError(f"target {target!r} is not a column (columns: {_preview(names)})")
    if task is not None and target is None:
        raise InvalidInputError("task= needs a target column")
    features = [n for n in names if n != target]
    if len(frame) == 0 or not features:
        raise SchemaError(
            f"cannot infer a signature from an empty frame "
            f"({len(frame)} rows, {len(features)} feature columns)"
        )
    columns = tuple(_infer_column(frame[n], n, max_categories) for n in features)
    task_schema = None if target is None else _infer_task(frame[target], target, task)
    return Signature(columns=columns, task=task_schema)


def _infer_column(series: pd.Series, name: str, max_categories: int) -> ColumnSchema:
    dtype = series.dtype
    nullable = bool(series.isna().any())
    api = pd.api.types
    if api.is_bool_dtype(dtype):
        return ColumnSchema(name, ColumnType.BOOLEAN, nullable)
    if api.is_integer_dtype(dtype) or api.is_float_dtype(dtype):
        col_type = ColumnType.INTEGER if api.is_integer_dtype(dtype) else ColumnType.FLOAT
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        lo, hi = _finite_bounds(values)
        return ColumnSchema(name, col_type, nullable, min=lo, max=hi)
    if api.is_datetime64_any_dtype(dtype):
        lo, hi = _finite_bounds(epoch_seconds(series))
        return ColumnSchema(name, ColumnType.DATETIME, nullable, min=lo, max=hi)
    if isinstance(dtype, pd.CategoricalDtype):
        declared = dtype.categories
        if len(declared) and api.infer_dtype(declared, skipna=True) != "string":
            raise SchemaError(
                f"column {name!r}: category values must be strings, "
                f"got {type(declared[0]).__name__} (e.g. {declared[0]!r})"
            )
        return _categorical(name, nullable, [str(c) for c in declared], max_categories)
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype):
        return _infer_object(series, name, nullable, max_categories)
    raise SchemaError(f"column {name!r}: dtype {dtype} cannot be described by a signature")


def _infer_object(series: pd.Series, name: str, nullable: bool, max_cat: int) -> ColumnSchema:
    non_null = series.dropna()
    if len(non_null) == 0:
        raise SchemaError(f"column {name!r}: all values are null, so its type is unknown")
    kind = pd.api.types.infer_dtype(non_null, skipna=True)
    if kind == "boolean":
        return ColumnSchema(name, ColumnType.BOOLEAN, nullable)
    if kind != "string":
        offender = next(v for v in non_null if not isinstance(v, str))
        raise SchemaError(
            f"column {name!r}: text columns must hold only strings, "
            f"found {type(offender).__name__} values"
        )
    uniques = pd.unique(non_null.to_numpy(dtype=object))
    return _categorical(name, nullable, uniques, max_cat)


def _categorical(name: str, nullable: bool, uniques: Any, max_cat: int) -> ColumnSchema:
    categories = tuple(sorted(str(u) for u in uniques)) if len(uniques) <= max_cat else None
    return ColumnSchema(name, ColumnType.CATEGORICAL, nullable, categories=categories)


def _finite_bounds(values: npt.NDArray[np.float64]) -> tuple[float | None, float | None]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        return None, None
    lo, hi = float(present.min()), float(present.max())
    # An infinity in training means "unbounded on that side", not a bound of inf.
    return (lo if math.isfinite(lo) else None), (hi if math.isfinite(hi) else None)


def _infer_task(series: pd.Series, target: str, override: str | None) -> TaskSchema:
    if override is not None and override not in _TASK_KINDS:
        raise InvalidInputError(f"task must be one of {_TASK_KINDS}, got {override!r}")
    values = series.dropna()
    if len(values) == 0:
        raise SchemaError(f"target {target!r} is entirely null")
    label_kind = _label_kind(values, target)
    if label_kind == "float":
        numbers = values.to_numpy(dtype=np.float64)
        integral = bool(np.all(np.isfinite(numbers) & (numbers == np.round(numbers))))
    else:
        integral = label_kind == "integer"
    uniques = pd.unique(values.to_numpy(dtype=object))
    n_classes = len(uniques)
    if override is None:
        if label_kind == "float":
            kind: TaskKind = "binary" if integral and n_classes == 2 else "regression"
        elif label_kind == "integer" and n_classes > MAX_CLASSES:
            kind = "regression"
        elif n_classes > MAX_CLASSES:
            raise SchemaError(
                f"target {target!r} has {n_classes} distinct {label_kind} values: too many "
                f"classes (at most {MAX_CLASSES}); pass task= to force one"
            )
        else:
            kind = "binary" if n_classes <= 2 else "multiclass"
    else:
        kind = override
    if n_classes < 2:
        raise SchemaError(f"target {target!r} has a single value ({uniques[0]!r})")
    if kind == "regression":
        if label_kind not in ("integer", "float"):
            raise SchemaError(f"target {target!r} holds {label_kind} values: not a regression")
        return TaskSchema("regression", target, None)
    if kind == "binary" and n_classes != 2:
        raise SchemaError(f"target {target!r} has {n_classes} classes, a binary task needs 2")
    classes = tuple(sorted(_python_scalar(u) for u in uniques))
    return TaskSchema(kind, target, classes)


def _label_kind(values: pd.Series, target: str) -> str:
    api = pd.api.types
    if api.is_bool_dtype(values.dtype):
        return "boolean"
    if api.is_integer_dtype(values.dtype):
        return "integer"
    if api.is_float_dtype(values.dtype):
        return "float"
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if isinstance(values.dtype, pd.StringDtype) or api.is_object_dtype(values.dtype):
        kind = api.infer_dtype(values, skipna=True)
        mapping = {"string": "string", "boolean": "boolean", "integer": "integer"}
        if kind in mapping:
            return mapping[kind]
        if kind == "floating":
            return "float"
    raise SchemaError(f"target {target!r}: dtype {values.dtype} is not a label a task can use")


def _python_scalar(value: Any) -> ClassLabel:
    """A JSON-safe python scalar for a class label (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    return cast(ClassLabel, value)
