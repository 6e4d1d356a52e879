"""The mergeable summary of a window, and the pure function that makes one from a chunk.

A window is never held in memory: :func:`summarize_chunk` turns one chunk of rows into a
:class:`WindowSummary` per segment, and summaries merge (``a.merge(b)``) into the
window's. A summary holds

* profiles of the features (with the target) and of the model outputs, in the
  reference's specs (so :func:`~livemodel.stats.drift.compare_profiles` applies);
* counts of cells of the wrong type, of labels that match no class, of absent columns;
* two bounded uniform row samples (all rows, and labelled rows) for the methods that
  need rows: a *bottom-k* sample keeps the ``capacity`` rows with the smallest hash of
  their identity (prediction id), so the sample of a union is the bottom-k of the
  samples of its parts, whatever the order or the partitioning.

:func:`summarize_chunk` depends only on its arguments (a :class:`ChunkPlan` of plain
data and a chunk), so it can run per partition anywhere (e.g. Ray) with the results
merged on one machine; merging is exact for counts, histograms, categories and samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from livemodel.errors import InvalidInputError
from livemodel.monitor.reference import PREDICTION, MonitorReference
from livemodel.monitor.results import ALL
from livemodel.stats.columns import category_key, factorize_categories
from livemodel.stats.profile import Profile, ProfileSpec

__all__ = ["ChunkPlan", "RowSample", "SegmentPlan", "WindowSummary", "summarize_chunk"]

OTHER = "(other)"
MISSING = "(missing)"
SAMPLE_ROWS = 100_000
Keys = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class SegmentPlan:
    """Segments of one column: one per listed value, the rest in ``(other)``."""

    column: str
    values: tuple[Any, ...]

    def keys(self, series: pd.Series[Any]) -> npt.NDArray[np.object_]:
        """The segment key (``column=value``) of every row."""
        codes, uniques = factorize_categories(series)
        known = {category_key(v): v for v in self.values}
        names = [
            f"{self.column}={known[u]}" if u in known else f"{self.column}={OTHER}" for u in uniques
        ]
        lookup = np.array([*names, f"{self.column}={MISSING}"], dtype=object)
        return np.asarray(lookup[codes], dtype=object)  # code -1 picks the last: missing


@dataclass(frozen=True)
class ChunkPlan:
    """Everything :func:`summarize_chunk` needs, as plain picklable data."""

    feature_spec: ProfileSpec
    output_spec: ProfileSpec | None
    features: tuple[str, ...]
    datetime_columns: frozenset[str]
    target: str | None
    task: str | None
    classes: tuple[Any, ...] | None
    proba_columns: tuple[str, ...]
    segments: tuple[SegmentPlan, ...] = ()
    sample_rows: int = SAMPLE_ROWS

    @classmethod
    def of(
        cls,
        reference: MonitorReference,
        segments: Sequence[SegmentPlan] = (),
        sample_rows: int = SAMPLE_ROWS,
    ) -> ChunkPlan:
        if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
            raise InvalidInputError(f"sample_rows must be a positive int, got {sample_rows!r}")
        return cls(
            feature_spec=reference.profile.spec,
            output_spec=None if reference.output_profile is None else reference.output_profile.spec,
            features=reference.features,
            datetime_columns=reference.datetime_columns,
            target=reference.target,
            task=reference.task,
            classes=reference.classes,
            proba_columns=reference.proba_columns,
            segments=tuple(segments),
            sample_rows=sample_rows,
        )

    @property
    def sample_columns(self) -> list[str]:
        outputs = [] if self.output_spec is None else [PREDICTION, *self.proba_columns]
        return [*self.features, *([self.target] if self.target else []), *outputs]

    def log_columns(self) -> list[str]:
        """Columns to read from the prediction log (labels are joined separately).

        ``version`` is read although unused: ``LogReader`` filters on it and, with a
        projection, only reads the columns it is given (plus time and id)."""
        out = ["prediction_id", "version", *(f"f.{name}" for name in self.features)]
        out.append("o.value" if self.task == "regression" else "o.label")
        if self.classes is not None and self.proba_columns:
            out += [f"o.proba.{c}" for c in self.classes]
        return out


@dataclass(frozen=True)
class RowSample:
    """At most ``capacity`` rows: those with the smallest keys (a uniform random sample).

    Rows are kept in no particular order (selection by ``argpartition``; once a sample
    is full, only rows with a key below its largest can enter, so merging a chunk into a
    full sample copies only those); :meth:`rows` returns them ordered by key, so every
    partitioning and merge order gives the same frame."""

    frame: pd.DataFrame
    keys: Keys
    capacity: int

    @classmethod
    def of(cls, frame: pd.DataFrame, keys: Keys, capacity: int) -> RowSample:
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) > capacity:
            keep = np.sort(np.argpartition(keys, capacity - 1)[:capacity])
            return cls(frame.iloc[keep].reset_index(drop=True), keys[keep], capacity)
        return cls(frame.reset_index(drop=True), keys, capacity)

    @property
    def full(self) -> bool:
        return len(self.keys) >= self.capacity

    def merge(self, other: RowSample) -> RowSample:
        if not len(other.keys):
            return self
        if not len(self.keys):
            return other
        a, b = (self, other) if self.full or not other.full else (other, self)
        if a.full:  # only rows below a's largest key can enter
            enter = b.keys < a.keys.max()
            if not enter.any():
                return a
            b = RowSample(b.frame[enter], b.keys[enter], b.capacity)
        both = pd.concat([a.frame, b.frame], ignore_index=True)
        return RowSample.of(both, np.concatenate([a.keys, b.keys]), self.capacity)

    def rows(self) -> pd.DataFrame:
        order = np.argsort(self.keys, kind="stable")
        return self.frame.iloc[order].reset_index(drop=True)


@dataclass(frozen=True)
class WindowSummary:
    """Mergeable summary of the rows of a window (or of one segment of it)."""

    n_rows: int
    n_labelled: int
    features: Profile
    outputs: Profile | None
    rows: RowSample
    labelled: RowSample
    type_errors: Mapping[str, int] = field(default_factory=dict)
    absent_rows: Mapping[str, int] = field(default_factory=dict)
    label_errors: int = 0
    unexpected: frozenset[str] = frozenset()

    @classmethod
    def empty(cls, plan: ChunkPlan) -> WindowSummary:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in plan.sample_columns})
        sample = RowSample.of(frame, np.empty(0, dtype=np.uint64), plan.sample_rows)
        outputs = None if plan.output_spec is None else Profile.empty(plan.output_spec)
        return cls(0, 0, Profile.empty(plan.feature_spec), outputs, sample, sample)

    def merge(self, other: WindowSummary) -> WindowSummary:
        outputs = None
        if self.outputs is not None and other.outputs is not None:
            outputs = self.outputs.merge(other.outputs)
        return WindowSummary(
            n_rows=self.n_rows + other.n_rows,
            n_labelled=self.n_labelled + other.n_labelled,
            features=self.features.merge(other.features),
            outputs=outputs,
            rows=self.rows.merge(other.rows),
            labelled=self.labelled.merge(other.labelled),
            type_errors=_add(self.type_errors, other.type_errors),
            absent_rows=_add(self.absent_rows, other.absent_rows),
            label_errors=self.label_errors + other.label_errors,
            unexpected=self.unexpected | other.unexpected,
        )


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> Mapping[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def merge_all(
    parts: Mapping[str, WindowSummary], more: Mapping[str, WindowSummary]
) -> dict[str, WindowSummary]:
    """Merge two per-segment summary maps."""
    out = dict(parts)
    for key, summary in more.items():
        out[key] = out[key].merge(summary) if key in out else summary
    return out


# -- the pure per-chunk function ----------------------------------------------------------
def summarize_chunk(plan: ChunkPlan, frame: pd.DataFrame, keys: Keys) -> dict[str, WindowSummary]:
    """Summaries of one canonical chunk: ``ALL`` and one per segment value present.

    ``keys`` identify the rows (a stable hash of the prediction id) for the row samples.
    Absent columns read as missing and are counted; extra columns are reported.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError("a chunk must be a pandas DataFrame")
    if len(keys) != len(frame):
        raise InvalidInputError("a chunk needs one key per row")
    wanted = plan.sample_columns
    absent = {c: len(frame) for c in wanted if c not in frame.columns}
    extra = frozenset(
        str(c) for c in frame.columns if c not in wanted and not str(c).startswith("__")
    )
    data = frame.reindex(columns=wanted).reset_index(drop=True)
    for name in absent:
        data[name] = pd.Series([None] * len(data), dtype=object)
    bad_cells = _coerce_features(plan, data)
    bad_labels = np.zeros(len(data), dtype=bool)
    if plan.target is not None:
        data[plan.target], bad_labels = align_labels(data[plan.target], plan)
    if plan.output_spec is not None and plan.task in ("binary", "multiclass"):
        data[PREDICTION], _ = align_labels(data[PREDICTION], plan)
    everything = np.ones(len(data), dtype=bool)
    out = {ALL: _summary(plan, whole=data, all_keys=keys, rows=everything, bad_cells=bad_cells,
                         bad_labels=bad_labels, absent=absent, extra=extra)}  # fmt: skip
    for segment in plan.segments:
        if segment.column not in data.columns:
            raise InvalidInputError(f"segment column {segment.column!r} is not a feature")
        seg_keys = segment.keys(data[segment.column])
        for key in pd.unique(seg_keys).tolist():
            rows = np.asarray(seg_keys == key, dtype=bool)
            out[str(key)] = _summary(
                plan, whole=data, all_keys=keys, rows=rows, bad_cells=bad_cells,
                bad_labels=bad_labels, absent={}, extra=frozenset(),
            )  # fmt: skip
    return out


def _summary(
    plan: ChunkPlan,
    *,
    whole: pd.DataFrame,
    all_keys: Keys,
    rows: npt.NDArray[np.bool_],
    bad_cells: Mapping[str, npt.NDArray[np.bool_]],
    bad_labels: npt.NDArray[np.bool_],
    absent: Mapping[str, int],
    extra: frozenset[str],
) -> WindowSummary:
    data = whole if rows.all() else whole[rows].reset_index(drop=True)
    keys = all_keys[rows]
    type_errors = {c: int(mask[rows].sum()) for c, mask in bad_cells.items()}
    label_errors = int(bad_labels[rows].sum())
    features = Profile.empty(plan.feature_spec).update(data[list(plan.feature_spec.names)])
    outputs = None
    if plan.output_spec is not None:
        outputs = Profile.empty(plan.output_spec).update(data[list(plan.output_spec.names)])
    labelled_rows = (
        data[plan.target].notna().to_numpy(dtype=bool)
        if plan.target is not None
        else np.zeros(len(data), dtype=bool)
    )
    sample_data = data[plan.sample_columns]
    return WindowSummary(
        n_rows=len(data),
        n_labelled=int(labelled_rows.sum()),
        features=features,
        outputs=outputs,
        rows=RowSample.of(sample_data, keys, plan.sample_rows),
        labelled=RowSample.of(sample_data[labelled_rows], keys[labelled_rows], plan.sample_rows),
        type_errors={k: v for k, v in type_errors.items() if v},
        absent_rows=dict(absent),
        label_errors=label_errors,
        unexpected=extra,
    )


def _coerce_features(plan: ChunkPlan, data: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """Numeric (and datetime) columns coerced in place; returns the cells that could not be."""
    errors: dict[str, npt.NDArray[np.bool_]] = {}
    for col in plan.feature_spec.columns:
        if col.kind != "numeric" or col.name not in data.columns or col.name == plan.target:
            continue  # the target is aligned (and its errors counted) by align_labels
        series = data[col.name]
        if col.name in plan.datetime_columns:
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                continue
            converted = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        elif pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
            series.dtype
        ):
            continue
        else:
            converted = pd.to_numeric(series.astype(object), errors="coerce")
        errors[col.name] = (series.notna() & converted.isna()).to_numpy(dtype=bool)
        data[col.name] = converted
    return errors


def align_labels(
    values: pd.Series[Any], plan: ChunkPlan
) -> tuple[pd.Series[Any], npt.NDArray[np.bool_]]:
    """Labels as the task's classes (or floats for regression); None where missing or of
    a value no class matches (``"1"`` matches class ``1``). Returns them and the mask of
    non-missing values that matched nothing."""
    present = values.notna().to_numpy(dtype=bool)
    if plan.task == "regression":
        numbers = pd.to_numeric(values.astype(object), errors="coerce").astype(np.float64)
        numbers[~np.isfinite(numbers.to_numpy())] = np.nan
        return numbers, present & numbers.isna().to_numpy()
    if plan.classes is None:
        return values, np.zeros(len(values), dtype=bool)
    by_text = {str(c): c for c in plan.classes}
    by_key = {category_key(c): c for c in plan.classes}
    codes, uniques = factorize_categories(values)
    matched = [_match(u, by_key, by_text) for u in uniques]
    lookup = np.array([*matched, None], dtype=object)
    aligned = pd.Series(lookup[codes], index=values.index, dtype=object)
    return aligned, present & aligned.isna().to_numpy()


def _match(value: Any, by_key: dict[Any, Any], by_text: dict[str, Any]) -> Any:
    """The class ``value`` stands for: equal, equal as text, or equal as a number."""
    found = by_key.get(value, by_text.get(str(value)))
    if found is None and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        found = by_key.get(number)
    return found


# -- the prediction log in canonical form -----------------------------------------------
def log_chunk(plan: ChunkPlan, batch: pa.RecordBatch | pa.Table) -> dict[str, WindowSummary]:
    """:func:`summarize_chunk` of a batch read from the prediction log (with labels)."""
    frame, keys = canonical_log_frame(plan, batch)
    return summarize_chunk(plan, frame, keys)


def canonical_log_frame(
    plan: ChunkPlan, batch: pa.RecordBatch | pa.Table
) -> tuple[pd.DataFrame, Keys]:
    """Rename log columns (``f.x``, ``o.label``, ``o.proba.c``, ``label``) canonically."""
    table = batch.to_pandas()
    out = pd.DataFrame(index=table.index)
    for name in plan.features:
        out[name] = table[f"f.{name}"] if f"f.{name}" in table.columns else None
    if plan.target is not None:
        out[plan.target] = table["label"] if "label" in table.columns else None
    if plan.output_spec is not None:
        source = "o.value" if plan.task == "regression" else "o.label"
        out[PREDICTION] = table[source] if source in table.columns else None
        if plan.classes is not None:
            for cls, column in zip(plan.classes, plan.proba_columns, strict=False):
                src = f"o.proba.{cls}"
                out[column] = table[src] if src in table.columns else np.nan
    ids = table["prediction_id"].astype(str).to_numpy(dtype=object)
    return out.reset_index(drop=True), row_keys(ids)


def row_keys(ids: npt.NDArray[Any]) -> Keys:
    """A stable 64-bit hash of each row identity (same in every process and run)."""
    return np.asarray(pd.util.hash_array(np.asarray(ids, dtype=object)), dtype=np.uint64)
