"""Batch inference over Parquet with the server's validation, logging and lineage.

>>> result = score(registry, "logs", "flights@production",          # doctest: +SKIP
...                "transactions/", "scored/", engine="ray")
>>> result.scored, result.rejected                                    # doctest: +SKIP

The input (a Parquet file or directory, see :mod:`livemodel.batch.source`) is split into
partitions of whole row groups; every partition is scored by the pure
:func:`~livemodel.batch.partition.score_partition`, here or as Ray Data tasks
(:func:`~livemodel.engine.map_partitions`), so both engines write the same rows.

Output: a directory of Parquet part files, ``part-00000.parquet`` on, one per partition
in input order, rows in input order within each (read it with ``pd.read_parquet(dir)``,
DuckDB ``read_parquet('dir/*.parquet')``, Spark...). Columns: the kept input columns
(all of them unless ``keep`` names some), then ``prediction_id``, ``status`` (``ok``,
``flagged``, ``rejected``, ``error``), ``flags`` (why), ``prediction`` and, for
classifiers, ``proba_<class>``. Every input row is in the output; rejected and error
rows have no prediction and no id. ``_livemodel_score.json`` beside the parts (ignored by
Parquet readers, like every ``_`` file) holds the run's summary.

All or nothing: parts are written to a hidden sibling directory and log segments are
staged; only when every partition succeeded are the segments published and the
directory renamed to ``output``. A failed run leaves neither output nor log records, so
running it again neither loses nor doubles anything. Then one audit event
(``batch.scored``) records the model version, the input and its fingerprint, the output,
the engine and the counts.

With the Ray engine every worker must see the input, output and log paths (one machine,
or a shared filesystem) and the artifact store.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from livemodel.batch.chunk import OUTPUT_COLUMNS, ChunkCounts
from livemodel.batch.partition import (
    JobSpec,
    ModelSource,
    PartitionResult,
    PartitionTask,
    job_output_schema,
    remember,
    score_partition,
)
from livemodel.batch.source import ParquetInput, check_feature_types, open_input, plan
from livemodel.engine import check_engine, map_partitions, ray_module
from livemodel.errors import ConflictError, InvalidInputError, StoreError
from livemodel.registry.registry import Registry
from livemodel.serving.handles import ModelHandle, load_handle
from livemodel.serving.options import ModelOptions
from livemodel.store.logbatch import discard, publish, staged_segments
from livemodel.store.logsegments import local_root

__all__ = ["MAX_BATCH_SIZE", "ScoreOptions", "ScoreResult", "score"]

MAX_BATCH_SIZE = 1_000_000
_log = logging.getLogger("livemodel.batch")
ACTION = "batch.scored"
SUMMARY_FILE = "_livemodel_score.json"


@dataclass(frozen=True)
class ScoreOptions:
    """How to score: which columns to keep, chunk and partition sizes, validation.

    ``validation`` is the model's serving options (``[serving.models.NAME]``), so a batch
    rejects and flags exactly what the server would. ``run_id`` (letters and digits)
    prefixes the prediction ids; a random one by default.
    """

    keep: tuple[str, ...] | None = None
    batch_size: int = 65_536
    partition_rows: int = 1_048_576
    overwrite: bool = False
    validation: ModelOptions = field(default_factory=ModelOptions)
    ray_address: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name, top in (("batch_size", MAX_BATCH_SIZE), ("partition_rows", 2**40)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise InvalidInputError(f"{name} must be an int from 1 to {top:,}: {value!r}")
        if self.keep is not None and (
            isinstance(self.keep, str) or not all(isinstance(k, str) and k for k in self.keep)
        ):
            raise InvalidInputError("keep must be a sequence of column names")
        run = self.run_id
        if run is not None and not (
            isinstance(run, str) and run.isascii() and run.isalnum() and len(run) <= 64
        ):
            raise InvalidInputError(f"run_id must be 1-64 letters and digits: {run!r}")


@dataclass(frozen=True)
class ScoreResult:
    """What a run did; :meth:`to_dict` is what the audit event and ``--json`` show."""

    run_id: str
    model: str
    version: int
    engine: str
    input: str
    fingerprint: str
    output: str
    partitions: int
    rows: int
    scored: int
    flagged: int
    rejected: int
    errors: int
    violations: dict[str, int]
    #: error rows per cause (the model's exception type, or ``nan_output``)
    failures: dict[str, int]
    logged: bool
    started: datetime
    finished: datetime

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(started=self.started.isoformat(), finished=self.finished.isoformat())
        data["seconds"] = round(self.seconds, 3)
        return data


def score(
    registry: Registry,
    log_root: str | os.PathLike[str] | None,
    model: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    engine: str = "local",
    options: ScoreOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score ``input`` with ``model`` (``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``).

    Predictions are logged under ``log_root`` (``None``: not logged). ``progress`` gets
    the number of rows of each chunk done (local engine only). Bad input, an unknown
    model and a failing model are :class:`~livemodel.errors.LivemodelError` s raised
    before anything is published.
    """
    if check_engine(engine) == "ray":
        ray_module()  # no Ray, no work: say how to install it before reading anything
    options = options or ScoreOptions()
    started = datetime.now(UTC)
    source = open_input(input)
    handle = load_handle(registry, model)
    rejecting = set()
    if options.validation.validation == "reject":
        rejecting = {str(k) for k in options.validation.reject_kinds}
    check_feature_types(handle.version.signature, source.schema, rejecting)
    keep = _keep(source, options.keep, handle)
    features = [c for c in handle.version.signature.names if c in source.schema.names]
    out = _output_path(output, source, options.overwrite)
    run_id = options.run_id or uuid.uuid4().hex[:16]
    logs = None if log_root is None else local_root(log_root).absolute()
    staging = out.parent / f".{out.name}.{run_id}.tmp"
    job = JobSpec(
        run_id=run_id,
        model=ModelSource(handle.version, handle.classes, registry.artifacts),
        options=options.validation,
        keep=keep,
        read=tuple(dict.fromkeys([*features, *keep])),
        output_schema=job_output_schema(pa.schema([source.schema.field(k) for k in keep]), handle),
        output_dir=str(staging),
        log_root=None if logs is None else str(logs),
        batch_size=options.batch_size,
    )
    tasks = [PartitionTask(job, part) for part in plan(source, options.partition_rows)]
    remember(handle)  # the local engine uses the loaded model as is
    fn = functools.partial(score_partition, progress=progress) if engine == "local" else None
    _make_staging(staging, out)
    try:
        results = map_partitions(
            fn or score_partition, tasks, engine=engine, address=options.ray_address
        )
        failed = next((r.error for r in results if r.error is not None), None)
        if failed is not None:
            raise failed
        counts = ChunkCounts()
        for r in results:
            counts.add(r.counts)
        _log_failures(run_id, handle, counts)
        result = ScoreResult(
            run_id=run_id,
            model=handle.name,
            version=handle.number,
            engine=engine,
            input=source.path,
            fingerprint=source.fingerprint,
            output=str(out),
            partitions=len(tasks),
            rows=counts.rows,
            scored=counts.scored,
            flagged=counts.flagged,
            rejected=counts.rejected,
            errors=counts.errors,
            violations=dict(sorted(counts.violations.items(), key=lambda kv: -kv[1])),
            failures=dict(sorted(counts.failures.items(), key=lambda kv: -kv[1])),
            logged=logs is not None,
            started=started,
            finished=datetime.now(UTC),
        )
        (staging / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=2))
        _output_path(output, source, options.overwrite)  # another run may have written it
        publish(_segments(results))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if logs is not None:
            discard(staged_segments(logs, handle.name, run_id))
        raise
    _replace(staging, out, run_id)
    registry.record_event(handle.name, ACTION, reason=_reason(result), details=result.to_dict())
    return result


def _log_failures(run_id: str, handle: ModelHandle, counts: ChunkCounts) -> None:
    """The rows the model failed on, in the log: the first ones with the model's own
    message (rows by their number in the input), then the count per cause."""
    if not counts.errors:
        return
    where = f"batch run {run_id}: model {handle.name!r} version {handle.number}"
    for row, kind, message in counts.examples:
        _log.error("%s failed on input row %d: %s: %s", where, row, kind, message)
    _log.error("%s failed on %d row(s): %s", where, counts.errors, counts.failures)


def _keep(
    source: ParquetInput, keep: tuple[str, ...] | None, handle: ModelHandle
) -> tuple[str, ...]:
    names = source.schema.names
    chosen = tuple(names) if keep is None else tuple(dict.fromkeys(keep))
    missing = [k for k in chosen if k not in names]
    if missing:
        raise InvalidInputError(f"cannot keep column {missing[0]!r}: the input has no such column")
    taken = {*OUTPUT_COLUMNS, *(f"proba_{c}" for c in handle.classes or ())}
    clash = [k for k in chosen if k in taken]
    if clash:
        raise InvalidInputError(
            f"the input column {clash[0]!r} has the name of an output column: "
            "leave it out with --keep (keep=...)"
        )
    return chosen


def _output_path(output: str | os.PathLike[str], source: ParquetInput, overwrite: bool) -> Path:
    out = Path(output).absolute()
    given = Path(source.path)
    if out == given or out in given.parents or given in out.parents:
        raise InvalidInputError(f"the output {str(out)!r} would overwrite or sit in the input")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConflictError(f"the output {str(out)!r} exists: choose another or --overwrite")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"the output {str(out)!r} is a file, not a directory")
    return out


def _make_staging(staging: Path, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidInputError(f"cannot write the output to {str(out)!r}: {reason}") from exc


def _segments(results: list[PartitionResult]) -> list[str]:
    return [r.segment for r in results if r.segment is not None]


def _replace(staging: Path, out: Path, run_id: str) -> None:
    """Rename the finished parts to ``out``, moving an old output aside until then."""
    old = out.with_name(f".{out.name}.{run_id}.old")
    try:
        if out.exists():
            out.rename(old)
        staging.rename(out)
    except OSError as exc:
        raise StoreError(f"cannot move the output into place at {str(out)!r}: {exc}") from exc
    shutil.rmtree(old, ignore_errors=True)


def _reason(result: ScoreResult) -> str:
    return (
        f"scored {result.scored:,} of {result.rows:,} rows of {Path(result.input).name} with "
        f"version {result.version} ({result.engine}); {result.rejected:,} rejected, "
        f"{result.errors:,} errors -> {result.output}"
    )[:2000]
