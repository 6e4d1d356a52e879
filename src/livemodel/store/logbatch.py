"""Prediction log segments written whole, in Parquet, by batch jobs (``livemodel score``).

A batch job predicts millions of rows. Encoding each as a JSON line only for compaction
to decode it again would cost more than the predictions, so each partition of a job
streams its records straight into one Parquet segment in the layout compaction produces
(:func:`prediction_table` builds and checks it: the columns of
:func:`~livemodel.store.logdecode.fixed_types`, then ``f.<feature>`` and ``o.<output
path>`` columns of bool, int64, float64 or string). :class:`~livemodel.store.logreader.
LogReader` reads such a segment like any compacted one.

A job is all-or-nothing in two phases. Each partition writes its segment as
``<stem>.parquet.staged`` (fsynced; readers and compaction ignore the suffix) with a
:class:`StagedSegment`; when every partition succeeded the driver calls :func:`publish`,
which renames each to ``<stem>.parquet`` (atomic, then the directory is fsynced), or
:func:`discard` on failure. A ``.staged`` file older than any running job belongs to a
job that died between the phases and may be deleted. Stems follow the segment naming of
:mod:`livemodel.store.predlog`, with a token unique to the job and the partition number
as sequence (:func:`batch_stem`), so no two writers ever share a file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from livemodel.errors import InvalidInputError, StoreError
from livemodel.store.logdecode import fixed_types
from livemodel.store.logsegments import PARQUET_SUFFIX, fsync_path, local_root, segment_stem
from livemodel.store.predlog import PREDICTIONS, check_model_name

__all__ = [
    "STAGED_SUFFIX",
    "StagedSegment",
    "batch_stem",
    "dictionary_columns",
    "discard",
    "prediction_table",
    "publish",
    "staged_segments",
]

STAGED_SUFFIX: Final = PARQUET_SUFFIX + ".staged"
_ROW_GROUP_ROWS: Final = 131_072
_MAX_ID_CHARS: Final = 256
_VALUE_TYPES: Final = (pa.bool_(), pa.int64(), pa.float64(), pa.string(), pa.null())
_METADATA: Final = {"livemodel.format": "1", "livemodel.kind": PREDICTIONS}
_UNIQUE: Final = frozenset({"prediction_id"})
_CONTINUOUS: Final = frozenset({"FLOAT", "DOUBLE"})


def batch_stem(token: str, partition: int) -> str:
    """The segment stem of ``partition`` of the batch job ``token`` (letters and digits)."""
    if not token.isascii() or not token.isalnum():
        raise InvalidInputError(f"a batch token must be letters and digits, got {token!r}")
    start_us = time.time_ns() // 1_000
    return segment_stem(os.getpid(), start_us, f"batch{token}", partition)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of ``schema`` worth dictionary-encoding.

    All but floating-point columns and ``prediction_id``: a float column (features,
    probabilities) or a column of ids has about as many distinct values as rows, so a
    dictionary would be as large as the data and would never fall back to plain encoding
    within a chunk (its page limit is 1 MiB), which doubled the time to write a batch
    job's output and log and made the files larger. Categories, labels, flags and
    constant columns shrink to almost nothing with one. Pass the result as
    ``use_dictionary`` to :class:`pyarrow.parquet.ParquetWriter`.
    """
    buffer = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), buffer)  # the leaf paths as Parquet names them
    parquet = pq.read_metadata(pa.BufferReader(buffer.getvalue())).schema
    leaves = (parquet.column(i) for i in range(len(parquet)))
    return [c.path for c in leaves if c.physical_type not in _CONTINUOUS and c.path not in _UNIQUE]


def prediction_table(
    *,
    ids: pa.Array,
    time_us: int,
    model: str,
    version: int,
    flags: pa.Array,
    arm: str | None,
    features: Mapping[str, pa.Array],
    outputs: Mapping[str, pa.Array],
) -> pa.Table:
    """Predictions as a table in the layout of a compacted segment.

    ``features`` are keyed by feature name and ``outputs`` by output path (``label``,
    ``proba.<class>``, ``value``); each is an array of bool, int64, float64 or string
    (or all nulls). As in a JSON-lines segment, NaN is stored as null and ±inf as null
    plus the flag ``nonfinite:<column>``. Raises :class:`InvalidInputError` naming the
    first problem; every record gets ``time_us``, ``version`` and ``arm``.
    """
    check_model_name(model)
    n = len(ids)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInputError(f"version must be an int >= 0: {version!r}")
    if not pa.types.is_string(ids.type) or ids.null_count:
        raise InvalidInputError("prediction ids must be non-null strings")
    lengths = pc.min_max(pc.utf8_length(ids)).as_py() if n else {"min": 1, "max": 1}
    if not 1 <= lengths["min"] <= lengths["max"] <= _MAX_ID_CHARS:
        raise InvalidInputError(f"prediction ids must be 1-{_MAX_ID_CHARS} characters")
    if flags.type != pa.list_(pa.string()) or len(flags) != n:
        raise InvalidInputError("flags must be one list of strings per prediction")
    fixed = fixed_types(PREDICTIONS)
    columns: dict[str, pa.Array] = {
        "prediction_id": ids,
        "time": pa.array(np.full(n, time_us, dtype=np.int64)).cast(fixed["time"]),
        "model": pa.repeat(pa.scalar(model, pa.string()), n),
        "version": pa.array(np.full(n, version, dtype=np.int64)),
        "latency_ms": pa.nulls(n, pa.float64()),
        "flags": flags,
        "arm": pa.repeat(pa.scalar(arm, pa.string()), n),
    }
    values: dict[str, pa.Array] = {}
    nonfinite: list[tuple[str, np.ndarray]] = []
    for prefix, group in (("f", features), ("o", outputs)):
        for key, array in group.items():
            name = f"{prefix}.{_key(key)}"
            if name in values:
                raise InvalidInputError(f"column {name!r} is given twice")
            values[name], infinite = _value_column(name, array, n)
            if infinite is not None:
                nonfinite.append((name, infinite))
    if nonfinite:
        columns["flags"] = _with_nonfinite(flags, nonfinite)
    columns.update(sorted(values.items()))
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"feature and output names must be non-empty strings: {key!r}")
    return key


def _value_column(name: str, array: pa.Array, n: int) -> tuple[pa.Array, np.ndarray | None]:
    if not isinstance(array, pa.Array) or len(array) != n:
        raise InvalidInputError(f"column {name!r} must be an Arrow array of {n} values")
    if array.type not in _VALUE_TYPES:
        raise InvalidInputError(
            f"column {name!r} is {array.type}: log columns are bool, int64, float64 or string"
        )
    if array.type != pa.float64() or n == 0:
        return array, None
    if not pc.any(pc.invert(pc.is_finite(array))).as_py():  # NaN or ±inf (a null is neither)
        return array, None
    data = array.to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(data)
    infinite = np.isinf(data)
    mask = pa.array(bad | np.asarray(array.is_null()), pa.bool_())
    cleaned = pc.if_else(mask, pa.scalar(None, pa.float64()), array)
    return cleaned, infinite if infinite.any() else None


def _with_nonfinite(flags: pa.Array, nonfinite: Sequence[tuple[str, np.ndarray]]) -> pa.Array:
    rows = flags.to_pylist()
    for name, infinite in nonfinite:
        for i in np.flatnonzero(infinite).tolist():
            rows[i] = [*(rows[i] or ()), f"nonfinite:{name}"]
    return pa.array(rows, pa.list_(pa.string()))


class StagedSegment:
    """One Parquet prediction segment being written; invisible to readers until published.

    The first table written fixes the schema; later ones must cast to it.
    """

    def __init__(self, root: str | os.PathLike[str], model: str, stem: str) -> None:
        directory = local_root(root) / check_model_name(model) / PREDICTIONS
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the log directory {directory}: {exc}") from exc
        self.path = directory / (stem + STAGED_SUFFIX)
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (from :func:`prediction_table`) to the segment."""
        if self._closed:
            raise StoreError(f"log segment {self.path} is already closed")
        try:
            if self._writer is None:
                schema = table.schema.with_metadata(_METADATA)
                self._writer = pq.ParquetWriter(
                    self.path,
                    schema,
                    compression="zstd",
                    use_dictionary=dictionary_columns(schema),
                )
            else:
                table = table.cast(self._writer.schema)
            self._writer.write_table(table, row_group_size=_ROW_GROUP_ROWS)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            self.abort()
            raise InvalidInputError(
                f"predictions do not fit log segment {self.path}: {exc}"
            ) from exc
        except OSError as exc:
            self.abort()
            raise StoreError(f"cannot write log segment {self.path}: {exc}") from exc
        self.rows += table.num_rows

    def close(self) -> Path | None:
        """Finish and fsync the staged file; its path, or None when nothing was written."""
        self._closed = True
        if self._writer is None:
            return None
        try:
            self._writer.close()
            self._writer = None
            fsync_path(self.path)
        except OSError as exc:
            self.abort()
            raise StoreError(f"cannot write log segment {self.path}: {exc}") from exc
        return self.path

    def abort(self) -> None:
        """Drop whatever was written."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
            self._writer = None
        self.path.unlink(missing_ok=True)


def staged_segments(root: str | os.PathLike[str], model: str, token: str) -> list[Path]:
    """The staged segments of the batch job ``token`` (e.g. left by a failed partition)."""
    directory = local_root(root) / check_model_name(model) / PREDICTIONS
    return sorted(directory.glob(f"*_batch{token}_*{STAGED_SUFFIX}"))


def publish(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Make staged segments readable: rename each to ``.parquet``, then fsync directories."""
    done: list[Path] = []
    directories: set[Path] = set()
    for staged in map(Path, paths):
        if not staged.name.endswith(STAGED_SUFFIX):
            raise InvalidInputError(f"{staged} is not a staged log segment")
        target = staged.with_name(staged.name.removesuffix(STAGED_SUFFIX) + PARQUET_SUFFIX)
        try:
            staged.replace(target)
        except OSError as exc:
            raise StoreError(f"cannot publish log segment {staged}: {exc}") from exc
        directories.add(target.parent)
        done.append(target)
    for directory in directories:
        fsync_path(directory)
    return done


def discard(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Delete staged segments (a failed job); missing files are fine."""
    for staged in map(Path, paths):
        if staged.name.endswith(STAGED_SUFFIX):
            staged.unlink(missing_ok=True)
