"""One chunk of a batch job: validate, predict, and lay out the output and the log records.

:func:`score_chunk` is pure (no I/O): an Arrow record batch of the input in, the rows of
the output and the log records out. It follows the model server
(:class:`~livemodel.serving.engine.ModelEndpoint`) row for row, each row standing for a
request of its own:

* The chunk is validated with :func:`~livemodel.schema.validation.validate`, the
  server's own check, and every row gets the server's flags (``null:dep_delay``...).
* With ``validation = "reject"`` a row with a violation of a rejecting kind is
  **rejected**: not predicted, not logged, but written to the output with status
  ``rejected`` and its flags, so nothing disappears silently. With ``"flag"`` it is
  predicted and its flags are logged.
* A row the model answers with NaN or infinity (flag ``nan_output``) or cannot answer
  at all (``model_error``: the call raised, and bisecting the chunk found the row) is an
  **error**: written with no prediction and not logged, as the server refuses such a
  request when it has no fallback. Fallbacks (default output, previous version) are for
  availability while serving and do not apply here. A model failing on more than 10 + 1%
  of a chunk's rows is broken and fails the job (:class:`ModelError`).
* ``review_threshold`` adds ``low_confidence`` as the server does.

Every predicted row gets the prediction id ``<run id><row number as 16 hex digits>``:
unique (the run id is random, the row number unique within the run), and the same
whichever engine or partitioning computed it, so two runs with the same run id can be
compared row by row and a rerun can be matched to the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from livemodel.errors import ModelError
from livemodel.schema.signature import ColumnType, Signature
from livemodel.schema.validation import ValidationResult, ViolationKind, validate
from livemodel.serving.handles import BatchOutputs, ModelHandle, concat_outputs
from livemodel.serving.options import ModelOptions
from livemodel.store.logbatch import prediction_table

__all__ = ["OUTPUT_COLUMNS", "ChunkCounts", "ScoredChunk", "output_fields", "score_chunk"]

#: Columns every output has, after the kept input columns (then ``proba_<class>`` ones).
OUTPUT_COLUMNS = ("prediction_id", "status", "flags", "prediction")
ARM = "batch"
MAX_EXAMPLES = 20
_FLAGS = pa.list_(pa.string())
_STATUSES = pa.array(["ok", "flagged", "rejected", "error"], pa.string())
_OK, _FLAGGED, _REJECTED, _ERROR = (np.int8(i) for i in range(4))
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)  # the 16 hex digits of a row, first first
_MAX_ROWS = 16**16


@dataclass
class ChunkCounts:
    """What happened to the rows of a chunk (or, merged, of a whole job)."""

    rows: int = 0
    scored: int = 0  # predicted (and logged unless logging is off)
    flagged: int = 0  # scored with at least one flag
    rejected: int = 0
    errors: int = 0
    violations: dict[str, int] = field(default_factory=dict)  # "kind:column" -> cells
    #: error rows per cause: the exception's type, or ``nan_output``
    failures: dict[str, int] = field(default_factory=dict)
    #: the first error rows, for the log: (input row, cause, the exception's message)
    examples: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, other: ChunkCounts) -> None:
        self.rows += other.rows
        self.scored += other.scored
        self.flagged += other.flagged
        self.rejected += other.rejected
        self.errors += other.errors
        for key, n in other.violations.items():
            self.violations[key] = self.violations.get(key, 0) + n
        for key, n in other.failures.items():
            self.failures[key] = self.failures.get(key, 0) + n
        self.examples.extend(other.examples[: max(0, MAX_EXAMPLES - len(self.examples))])


@dataclass(frozen=True)
class ScoredChunk:
    output: pa.Table
    log: pa.Table | None  # None when no row was scored
    counts: ChunkCounts


def output_fields(handle: ModelHandle) -> list[pa.Field]:
    """The output columns a model adds to the kept input columns."""
    fields = [
        pa.field("prediction_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("flags", _FLAGS),
        pa.field("prediction", _prediction_type(handle)),
    ]
    fields += [pa.field(f"proba_{c}", pa.float64()) for c in handle.classes or ()]
    return fields


def score_chunk(
    handle: ModelHandle,
    options: ModelOptions,
    batch: pa.RecordBatch,
    *,
    keep: tuple[str, ...],
    first_row: int,
    run_id: str,
    time_us: int,
) -> ScoredChunk:
    """Score one chunk whose first row is input row ``first_row`` (see the module doc)."""
    signature = handle.version.signature
    n = batch.num_rows
    present = [c for c in signature.names if c in batch.schema.names]
    frame = batch.select(present).to_pandas() if present else pd.DataFrame(index=range(n))
    result = validate(signature, frame)
    names, hits = result.flag_matrix()
    rejected: np.ndarray = np.zeros(n, dtype=bool)
    if options.validation == "reject" and names:
        rejecting = [name.partition(":")[0] in options.reject_kinds for name in names]
        rejected = np.asarray(hits[:, np.asarray(rejecting, dtype=bool)].any(axis=1))
    admitted = np.flatnonzero(~rejected)
    outputs, failed = None, np.zeros(0, dtype=bool)
    causes: dict[int, tuple[str, str]] = {}  # admitted position -> (type, message)
    if admitted.size:
        outputs, failed = _predict(handle, result.frame.iloc[admitted], causes)
    ok = np.zeros(n, dtype=bool)
    extra = np.full(n, None, dtype=object)  # flags added after prediction
    extra[admitted[failed]] = "model_error"
    if outputs is not None:
        answered = outputs.ok_rows() & ~failed
        ok[admitted[answered]] = True
        extra[admitted[~answered & ~failed]] = "nan_output"
        if options.review_threshold is not None and outputs.proba is not None:
            unsure = answered & (
                np.nan_to_num(outputs.proba).max(axis=1) < options.review_threshold
            )
            extra[admitted[unsure]] = "low_confidence"
    flags = _flag_lists(names, hits, extra)
    flagged = ok & (hits.any(axis=1) | (extra != None))  # noqa: E711 - elementwise
    status = np.where(rejected, _REJECTED, np.where(ok, np.where(flagged, _FLAGGED, _OK), _ERROR))
    ids = _ids(run_id, first_row, n, ok)
    columns = _output_columns(handle, outputs, admitted, ok, n)
    out = {name: batch.column(name) for name in keep}
    out.update(prediction_id=ids, status=_STATUSES.take(status), flags=flags)
    out.update(columns)
    output = pa.Table.from_pydict(out)
    counts = ChunkCounts(
        rows=n,
        scored=int(ok.sum()),
        flagged=int(flagged.sum()),
        rejected=int(rejected.sum()),
        errors=int((~ok & ~rejected).sum()),
        violations=_violations(result),
    )
    _count_failures(counts, first_row, admitted, causes, extra)
    log = None
    if counts.scored:
        rows = None if counts.scored == n else pa.array(np.flatnonzero(ok))
        log = prediction_table(
            ids=_take(ids, rows),
            time_us=time_us,
            model=handle.name,
            version=handle.number,
            flags=_take(flags, rows),
            arm=ARM,
            features=_features(signature, result, rows),
            outputs={k: _take(v, rows) for k, v in _log_outputs(handle, columns).items()},
        )
    return ScoredChunk(output, log, counts)


def _take(array: pa.Array, rows: pa.Array | None) -> pa.Array:
    """The ``rows`` of ``array``; all of them when ``rows`` is None."""
    return array if rows is None else array.take(rows)


def _violations(result: ValidationResult) -> dict[str, int]:
    """Cells per ``kind:column``; a missing column counts every row (the server's counts
    say 1 per batch, which would depend on the chunk size)."""
    return {
        f"{kind}:{column}": result.n_rows if kind is ViolationKind.MISSING_COLUMN else count
        for (column, kind), count in result.counts.items()
    }


def _count_failures(
    counts: ChunkCounts,
    first_row: int,
    admitted: np.ndarray,
    causes: dict[int, tuple[str, str]],
    extra: np.ndarray,
) -> None:
    """Error rows per cause, and the first few with their input row and message."""
    for position, (kind, message) in sorted(causes.items()):
        counts.failures[kind] = counts.failures.get(kind, 0) + 1
        if len(counts.examples) < MAX_EXAMPLES:
            counts.examples.append((first_row + int(admitted[position]), kind, message))
    for row in np.flatnonzero(extra == "nan_output"):
        counts.failures["nan_output"] = counts.failures.get("nan_output", 0) + 1
        if len(counts.examples) < MAX_EXAMPLES:
            counts.examples.append((first_row + int(row), "nan_output", "NaN or infinity"))


def _predict(
    handle: ModelHandle, frame: pd.DataFrame, causes: dict[int, tuple[str, str]]
) -> tuple[BatchOutputs | None, np.ndarray]:
    """Outputs for the rows of ``frame``, and a mask of the rows the model failed on
    (``causes`` gets each one's exception type and message).

    When the call over the chunk raises, the chunk is bisected until the failing rows are
    found, as the server retries a failed batch request by request; a model failing on
    more than 10 + 1% of a chunk's rows is broken, and fails the job.
    """
    n = len(frame)
    limit = 10 + n // 100
    parts: list[tuple[int, int, BatchOutputs | None]] = []
    failed = np.zeros(n, dtype=bool)
    stack = [(0, n)]
    while stack:
        start, stop = stack.pop()
        try:
            parts.append((start, stop, handle.predict(frame.iloc[start:stop])))
            continue
        except Exception as exc:  # a user's model may raise anything
            if stop - start > 1:
                middle = (start + stop) // 2
                stack += [(middle, stop), (start, middle)]
                continue
            failed[start] = True
            causes[start] = (type(exc).__name__, " ".join(str(exc).split())[:500])
            if failed.sum() > limit:
                raise ModelError(
                    f"model {handle.version.ref} failed on more than {limit} of {n} rows: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        parts.append((start, stop, None))
    if failed.all():
        return None, failed
    parts.sort(key=lambda p: p[0])
    outputs = concat_outputs([p[2] for p in parts], [p[1] - p[0] for p in parts])
    return outputs, failed


def _flag_lists(names: list[str], hits: np.ndarray, extra: np.ndarray) -> pa.Array:
    """One list of flags per row: validation flags in row_flags order, then ``extra``."""
    n = len(extra)
    rows, cols = np.nonzero(hits)  # row-major: each row's flags in column order
    label = np.asarray(names, dtype=object)[cols] if names else np.zeros(0, dtype=object)
    added = np.flatnonzero(extra != None)  # noqa: E711 - elementwise
    order = np.argsort(np.concatenate([rows * 2, added * 2 + 1]), kind="stable")
    values = np.concatenate([label, extra[added]])[order]
    counts = np.bincount(rows, minlength=n) + np.bincount(added, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.string()), _FLAGS)


def _ids(run_id: str, first_row: int, n: int, ok: np.ndarray) -> pa.Array:
    """``f"{run_id}{first_row + i:016x}"`` for the rows ``i`` where ``ok``, else null.

    Built as Arrow buffers (the run id's bytes, then 16 hex digits per row) rather than
    formatted row by row, which cost as much as writing the chunk.
    """
    if first_row < 0 or first_row + n > _MAX_ROWS:
        raise ValueError(f"row numbers must be from 0 to 16**16: {first_row} + {n}")
    rows = np.arange(first_row, first_row + n, dtype=np.uint64)[ok]
    digits = _HEX[(rows[:, None] >> _SHIFTS) & np.uint64(15)]
    prefix = np.frombuffer(run_id.encode(), dtype=np.uint8)
    chars = np.hstack([np.broadcast_to(prefix, (len(rows), len(prefix))), digits])
    offsets = np.zeros(n + 1, dtype=np.int32)  # a null row has no characters
    np.cumsum(np.where(ok, chars.shape[1], 0), out=offsets[1:])
    validity = None if len(rows) == n else pa.py_buffer(np.packbits(ok, bitorder="little"))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()), validity, n - len(rows)
    )


def _prediction_type(handle: ModelHandle) -> pa.DataType:
    if handle.classes is not None:
        return _label_type(handle.classes)
    task = handle.version.signature.task
    if task is not None and task.kind != "regression" and task.classes:
        return _label_type(task.classes)  # a classifier without predict_proba: labels only
    return pa.float64()


def _label_type(classes: tuple[Any, ...]) -> pa.DataType:
    kinds = {type(c) for c in classes}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def _output_columns(
    handle: ModelHandle, outputs: BatchOutputs | None, admitted: np.ndarray, ok: np.ndarray, n: int
) -> dict[str, pa.Array]:
    """``prediction`` and ``proba_<class>`` for every row, null where not answered."""
    kind = _prediction_type(handle)
    columns: dict[str, pa.Array] = {}
    raw = None
    if outputs is not None:
        raw = outputs.labels if outputs.labels is not None else outputs.values
    if raw is None or not ok.any():
        columns["prediction"] = pa.nulls(n, kind)
    else:
        answers = raw[ok[admitted]]  # the rows answered, in order
        if pa.types.is_string(kind):
            answers = np.array([None if v is None else str(v) for v in answers], dtype=object)
        try:
            answered = pa.array(answers, kind, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ModelError(
                f"model {handle.version.ref} predicted values that are not {kind}: {exc}"
            ) from exc
        # each row's place among the answered ones; null (so a null prediction) elsewhere
        places = pa.array(np.cumsum(ok) - 1, pa.int64(), mask=~ok)
        columns["prediction"] = answered.take(places)
    for i, cls in enumerate(handle.classes or ()):
        proba = np.full(n, np.nan)
        if outputs is not None and outputs.proba is not None:
            proba[admitted] = outputs.proba[:, i]
        proba[~ok] = np.nan
        columns[f"proba_{cls}"] = pa.array(proba, pa.float64(), from_pandas=True)
    return columns


def _log_outputs(handle: ModelHandle, columns: Mapping[str, pa.Array]) -> dict[str, pa.Array]:
    """The output columns under the log's names: ``label``/``value``, ``proba.<class>``."""
    numeric = not handle.decides_labels and pa.types.is_floating(columns["prediction"].type)
    logged = {"value" if numeric else "label": columns["prediction"]}
    for cls in handle.classes or ():
        logged[f"proba.{cls}"] = columns[f"proba_{cls}"]
    return logged


def _features(
    signature: Signature, result: ValidationResult, rows: pa.Array | None
) -> dict[str, Any]:
    """The coerced feature values of ``rows`` as the server logs them (wrong types null)."""
    frame = result.frame if rows is None else result.frame.iloc[rows.to_numpy()]
    out: dict[str, pa.Array] = {}
    for column in signature.columns:
        series = frame[column.name]
        if column.type is ColumnType.DATETIME:
            text = [None if pd.isna(v) else v.isoformat() for v in series]
            out[column.name] = pa.array(text, pa.string())
            continue
        kind = {
            ColumnType.INTEGER: pa.int64(),
            ColumnType.FLOAT: pa.float64(),
            ColumnType.BOOLEAN: pa.bool_(),
            ColumnType.CATEGORICAL: pa.string(),
        }[column.type]
        out[column.name] = pa.array(series, kind, from_pandas=True)
    return out
