"""The retraining frame: labelled rows of the prediction log, selected, split and pinned.

:func:`read_labelled` reads every prediction of a model (all versions) with its latest
label known at ``now``, typed by the champion's signature. :func:`select_rows` (pure)
keeps the ``recent`` labelled rows (a duration before ``now`` or a row count), reserves the
most recent ``holdout`` share of them for the gate, and adds a seeded random sample of
older labelled rows so that they make up ``older_share`` of the training rows.
:func:`pin` stores both frames as Parquet artifacts; training always uses the frame read
back from those bytes, so a replay from the artifact sees exactly the same frame
(values and dtypes) as the original run.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from livemodel.errors import IntegrityError, InvalidInputError, NotFoundError, StatisticsError
from livemodel.loop.policy import DataSettings
from livemodel.registry.lineage import data_fingerprint
from livemodel.schema.signature import ColumnSchema, ColumnType, Signature
from livemodel.store.artifacts import ArtifactRef, ArtifactStore
from livemodel.store.logreader import LogReader

__all__ = ["PinnedSnapshot", "Selection", "load_pinned", "pin", "read_labelled", "select_rows"]

TIME = "__time"
ID = "__id"


@dataclass(frozen=True)
class Selection:
    """Training and holdout frames (features and target, oldest first) and how they came."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    query: Mapping[str, Any]


@dataclass(frozen=True)
class PinnedSnapshot:
    """The frames as stored (read back from their Parquet bytes) and their references."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    info: Mapping[str, Any]


def read_labelled(
    reader: LogReader,
    model: str,
    signature: Signature,
    *,
    now: datetime,
    since: datetime | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Labelled predictions of ``model`` before ``now`` (labels observed by ``now``).

    Columns: ``__time``, ``__id``, the signature's features (typed by it) and the target;
    sorted by time then prediction id. Also returns counts of the rows left out.
    """
    task = signature.task
    if task is None:
        raise InvalidInputError(f"model {model!r} has no target: it cannot be retrained")
    columns = ["time", "prediction_id", *(f"f.{n}" for n in signature.names)]
    try:
        table = reader.window(model, start=since, end=now, columns=columns, with_labels=True)
    except NotFoundError:
        table = pa.table({c: pa.array([], pa.null()) for c in [*columns, "label", "label_time"]})
    raw = table.to_pandas()
    frame = pd.DataFrame(
        {
            TIME: pd.to_datetime(raw["time"], utc=True),
            ID: raw["prediction_id"].astype(object).astype(str),
        }
    )
    for col in signature.columns:
        frame[col.name] = _typed(col, raw[f"f.{col.name}"])
    target, unmatched = _target(raw["label"], task.kind, task.classes)
    frame[task.target] = target
    known = frame[task.target].notna().to_numpy()
    label_time = pd.to_datetime(raw["label_time"], utc=True)
    observed = (label_time.isna() | (label_time <= now)).to_numpy()
    counts = {
        "predictions": len(frame),
        "unlabelled": int((~known).sum() - unmatched),
        "labels_not_matching_a_class": unmatched,
        "labels_after_now": int((known & ~observed).sum()),
    }
    kept = frame[known & observed].sort_values([TIME, ID], kind="stable")
    if task.kind != "regression" and all(
        isinstance(c, int) and not isinstance(c, bool) for c in task.classes or ()
    ):
        kept[task.target] = kept[task.target].astype("int64")
    return kept.reset_index(drop=True), counts


def select_rows(labelled: pd.DataFrame, settings: DataSettings, *, now: datetime) -> Selection:
    """Recent rows (minus the holdout) plus a seeded sample of older rows; see the module."""
    if TIME not in labelled.columns or ID not in labelled.columns:
        raise InvalidInputError("select_rows takes the frame of read_labelled")
    n = len(labelled)
    if isinstance(settings.recent, timedelta):
        recent_start = now - settings.recent
        is_recent = (labelled[TIME] >= recent_start).to_numpy()
        recent_rule = f"labelled predictions since {recent_start.isoformat()}"
    else:
        is_recent = np.arange(n) >= n - settings.recent
        recent_rule = f"the last {settings.recent} labelled predictions"
    recent = labelled[is_recent]
    older = labelled[~is_recent]
    n_holdout = math.ceil(settings.holdout * len(recent))
    holdout = recent.iloc[len(recent) - n_holdout :]
    recent_train = recent.iloc[: len(recent) - n_holdout]
    if settings.max_rows is not None:
        keep = max(1, math.floor(settings.max_rows * (1.0 - settings.older_share)))
        recent_train = recent_train.iloc[max(0, len(recent_train) - keep) :]
    wanted_older = round(settings.older_share / (1.0 - settings.older_share) * len(recent_train))
    if settings.max_rows is not None:
        wanted_older = min(wanted_older, settings.max_rows - len(recent_train))
    n_older = min(max(wanted_older, 0), len(older))
    rng = np.random.default_rng(settings.seed)
    picked = np.sort(rng.choice(len(older), size=n_older, replace=False)).astype(np.intp)
    train = pd.concat([older.iloc[picked], recent_train]).sort_values([TIME, ID], kind="stable")
    if holdout.empty:
        raise StatisticsError(f"no recent labelled rows ({recent_rule}) to train and gate on")
    if len(train) < settings.min_rows:
        raise StatisticsError(
            f"only {len(train)} labelled rows to train on ({len(recent_train)} recent, "
            f"{n_older} older); data.min_rows is {settings.min_rows}"
        )
    query = {
        "source": "prediction log joined with the latest label known at 'now'",
        "now": now.isoformat(),
        "recent": recent_rule,
        "holdout": f"the most recent {settings.holdout:g} of the recent rows",
        "older_share": settings.older_share,
        "max_rows": settings.max_rows,
        "seed": settings.seed,
        "rows": {"labelled": n, "recent": len(recent), "older_available": len(older),
                 "older": n_older, "train": len(train), "holdout": len(holdout)},
        "train_range": _range(train),
        "holdout_range": _range(holdout),
    }  # fmt: skip
    drop = [TIME, ID]
    return Selection(
        train=train.drop(columns=drop).reset_index(drop=True),
        holdout=holdout.drop(columns=drop).reset_index(drop=True),
        query=query,
    )


def pin(selection: Selection, artifacts: ArtifactStore) -> PinnedSnapshot:
    """Store both frames as Parquet; return them as read back, with refs and fingerprints."""
    info: dict[str, Any] = {"format": "parquet", "query": dict(selection.query)}
    frames: dict[str, pd.DataFrame] = {}
    for part, frame in (("train", selection.train), ("holdout", selection.holdout)):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        ref = artifacts.put(buffer.getvalue())
        stored = _read_parquet(artifacts.get(ref))
        frames[part] = stored
        info[part] = {
            "artifact": ref.to_dict(),
            "fingerprint": data_fingerprint(stored),
            "rows": len(stored),
            "columns": list(stored.columns),
        }
    return PinnedSnapshot(train=frames["train"], holdout=frames["holdout"], info=info)


def load_pinned(info: Mapping[str, Any], artifacts: ArtifactStore) -> PinnedSnapshot:
    """The frames of a pinned snapshot, checked against their recorded fingerprints."""
    frames: dict[str, pd.DataFrame] = {}
    for part in ("train", "holdout"):
        try:
            entry = info[part]
            ref = ArtifactRef.from_dict(dict(entry["artifact"]))
            expected = str(entry["fingerprint"])
        except (KeyError, TypeError) as exc:
            raise IntegrityError(f"malformed snapshot record: no {part} artifact") from exc
        frame = _read_parquet(artifacts.get(ref))
        actual = data_fingerprint(frame)
        if actual != expected:
            raise IntegrityError(
                f"the {part} snapshot reads back with fingerprint {actual[:12]}..., not the "
                f"recorded {expected[:12]}... (pandas/pyarrow changed how it is read?)"
            )
        frames[part] = frame
    return PinnedSnapshot(train=frames["train"], holdout=frames["holdout"], info=dict(info))


def _read_parquet(data: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise IntegrityError(f"a snapshot artifact is not readable Parquet: {exc}") from exc


def _range(frame: pd.DataFrame) -> list[str] | None:
    if frame.empty:
        return None
    return [frame[TIME].iloc[0].isoformat(), frame[TIME].iloc[-1].isoformat()]


def _typed(col: ColumnSchema, values: pd.Series) -> pd.Series:
    """A log column in the dtype training used for this column type."""
    if col.type in (ColumnType.INTEGER, ColumnType.FLOAT):
        numbers = pd.to_numeric(values.astype(object), errors="coerce").astype("float64")
        numbers[~np.isfinite(numbers.to_numpy())] = np.nan
        if col.type is ColumnType.INTEGER and numbers.notna().all():
            whole = numbers.to_numpy()
            if np.array_equal(whole, np.round(whole)):
                return numbers.astype("int64")
        return numbers
    if col.type is ColumnType.BOOLEAN:
        mapped = values.astype(object).map(_boolean)
        return mapped.astype(bool) if mapped.notna().all() else mapped.astype("float64")
    if col.type is ColumnType.DATETIME:
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    text = values.astype(object).where(values.notna(), None)
    return pd.Series([None if v is None else str(v) for v in text], index=values.index, dtype="str")


def _boolean(value: object) -> float | None:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return float(value.lower() == "true")
    if isinstance(value, int | float) and value in (0, 1):
        return float(value)
    return None


def _target(values: pd.Series, kind: str, classes: tuple[Any, ...] | None) -> tuple[pd.Series, int]:
    """Labels as the task's classes (or floats); None where missing or matching no class."""
    present = values.notna().to_numpy()
    if kind == "regression" or classes is None:
        numbers = pd.to_numeric(values.astype(object), errors="coerce").astype("float64")
        numbers[~np.isfinite(numbers.to_numpy())] = np.nan
        return numbers, int((present & numbers.isna().to_numpy()).sum())
    by_text = {str(c): c for c in classes}
    by_number = {float(c): c for c in classes if isinstance(c, int | float)}

    def match(value: object) -> object:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return by_number.get(float(value))
        found = by_text.get(str(value))
        if found is None and isinstance(value, str):
            try:
                return by_number.get(float(value))
            except ValueError:
                return None
        return found

    matched = pd.Series([match(v) for v in values.astype(object)], index=values.index, dtype=object)
    return matched, int((present & matched.isna().to_numpy()).sum())


def utc(value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(f"times must be timezone-aware datetimes, got {value!r}")
    return value.astimezone(UTC)
