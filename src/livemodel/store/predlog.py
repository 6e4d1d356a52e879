"""Prediction and label log: records, their validation, and the on-disk format.

This module specifies the format and encodes records; :mod:`.logdecode` decodes them
into Arrow, :mod:`.logsegments` manages segment files (and compaction),
:mod:`.logwriter` writes (:class:`~livemodel.store.logwriter.PredictionLog`),
:mod:`.logreader` queries (:class:`~livemodel.store.logreader.LogReader`) and
:mod:`.labels` holds the label log.

On-disk format, version 1
-------------------------
::

    <root>/<model>/predictions/<segment>     one prediction per line
    <root>/<model>/labels/<segment>          one label per line

``<model>`` matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` (no separators, no ``..``).
Every writer (one per process and log object) writes only its own segments, so
replicas never contend on a file. A segment is named
``<host>_<pid>_<start µs since epoch>_<token>_<seq>`` followed by its state suffix:

``.open.jsonl``
    being written, or abandoned by a writer that died. Its last line may be torn.
``.jsonl``
    closed (renamed atomically by its writer on rotation or ``close()``).
``.parquet``
    a closed segment compacted to Parquet (zstd) with flattened columns (see below);
    written to ``.parquet.tmp`` then renamed, after which the ``.jsonl`` is deleted.
    Readers prefer ``.parquet`` over ``.jsonl`` over ``.open.jsonl`` for one name.

A JSON-lines segment holds UTF-8 JSON objects, each ending in ``\\n``. A writer hands
whole lines (a group-committed batch) to the operating system with ``write()`` on the
``O_APPEND`` file before it acknowledges them, and abandons a segment after a failed
write, so a partial line can only be a segment's last. Bytes after the last ``\\n`` are
such a torn write and are ignored by readers; any other line that is not a valid record
makes the segment corrupt (``StoreError`` naming the file). ``logsegments.compact``
compacts closed segments, and ``.open`` ones left by dead processes of this host (their
torn tail dropped). Keys of a prediction line::

    {"id": str, "ts": int (µs since 1970-01-01 UTC), "model": str, "version": int,
     "features": {name: scalar}, "outputs": {name: scalar | list | object},
     "latency_ms": float | null, "flags": [str], "arm": str | null}

A label line::

    {"id": prediction id, "label": scalar, "ts": int (µs, when the label was observed),
     "source": str, "written": int (µs, when it was logged; strictly increasing per
     writer), "by"?: str (who sent it, e.g. ``token:3:crm``; absent in older lines)}

Scalars are null, bool, int (64-bit), float or str. NaN is written as null; ±inf is
written as null *and* adds the flag ``nonfinite:<column>`` so it is not mistaken for a
missing value. ``datetime`` and ``date`` values are written as ISO 8601 strings.

Columns as read (JSON lines and Parquet alike): ``prediction_id``, ``time``
(timestamp µs UTC), ``model``, ``version`` (int64), ``latency_ms`` (float64), ``flags``
(list<string>), ``arm``, then one ``f.<feature>`` column per feature and one
``o.<path>`` column per output leaf, nested output objects joined with ``.`` (e.g.
``o.proba.cat``). A column's type is bool, int64, float64 (ints and floats mixed) or
string; values of mixed other kinds, and lists, are stored as their JSON text. Label
tables have ``prediction_id``, ``label``, ``label_time``, ``label_source``,
``written_time``, ``label_by`` (null when not recorded).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, TypeAlias, cast

import numpy as np
import orjson

from livemodel.errors import InvalidInputError

PREDICTIONS: Final = "predictions"
LABELS: Final = "labels"
BASE_COLUMNS: Final = ("prediction_id", "time", "model", "version", "latency_ms", "flags", "arm")
LABEL_COLUMNS: Final = (
    "prediction_id", "label", "label_time", "label_source", "written_time", "label_by",
)  # fmt: skip

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID_CHARS = 256
_MAX_DEPTH = 8
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

Scalar: TypeAlias = bool | int | float | str | None
JSONValue: TypeAlias = Scalar | list["JSONValue"] | dict[str, "JSONValue"]


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a safe directory name for a model, else raise."""
    if not isinstance(name, str) or _MODEL_NAME.fullmatch(name) is None:
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_id(value: object, what: str = "prediction id") -> str:
    """Return a prediction id if it is a non-empty string of at most 256 characters."""
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_CHARS:
        raise InvalidInputError(f"{what} must be a non-empty string of <= 256 chars: {value!r}")
    return value


def to_micros(value: object, what: str) -> int:
    """Microseconds since the epoch of a timezone-aware datetime (naive ones are refused)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return (value - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One logged prediction.

    ``outputs`` conventionally holds ``label``, ``proba`` (a class → probability dict)
    and/or ``value``; any JSON-like nesting is accepted. ``arm`` is the routing arm
    (``"champion"``, ``"candidate"``, ``"shadow"``) when a rollout is active.
    """

    prediction_id: str
    model: str
    version: int
    features: Mapping[str, object]
    outputs: Mapping[str, object]
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    latency_ms: float | None = None
    flags: Sequence[str] = ()
    arm: str | None = None


def scalar(value: object, where: str, flags: list[str]) -> Scalar:
    """Normalise one feature/output/label value to a JSON scalar, or raise naming ``where``."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, float):  # also np.float64, a float subclass
        if math.isfinite(value):
            return float(value)
        if not math.isnan(value):
            flags.append(f"nonfinite:{where}")
        return None
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidInputError(f"{where}: integer {value} does not fit in 64 bits")
        return int(value)
    if isinstance(value, np.bool_ | np.integer | np.floating):
        return scalar(value.item(), where, flags)
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing markers
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise InvalidInputError(
        f"{where}: unsupported value of type {type(value).__name__} "
        "(use None, bool, int, float, str or datetime)"
    )


def _plain(value: object) -> bool:
    """True for values already valid as written: the fast path of the encoder."""
    kind = type(value)
    return (
        value is None
        or kind is str
        or kind is bool
        or (kind is float and math.isfinite(cast(float, value)))
        or (kind is int and _INT64_MIN <= cast(int, value) <= _INT64_MAX)
    )


def _nested(value: object, where: str, flags: list[str], depth: int) -> JSONValue:
    if _plain(value):
        return cast(Scalar, value)
    if type(value) is dict or isinstance(value, Mapping):
        if depth >= _MAX_DEPTH:
            raise InvalidInputError(f"{where}: nested deeper than {_MAX_DEPTH} levels")
        return {
            _key(k, where): _nested(v, f"{where}.{k}", flags, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple | np.ndarray):
        return [_nested(v, f"{where}[{i}]", flags, depth + 1) for i, v in enumerate(value)]
    return scalar(value, where, flags)


def _key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"{where}: keys must be non-empty strings, got {key!r}")
    return key


def _mapping(value: object, what: str) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def prediction_line(record: PredictionRecord) -> bytes:
    """Validate one record and return its JSON line (ending in ``\\n``).

    Raises :class:`InvalidInputError` naming the offending field; nothing is written.
    """
    if not isinstance(record, PredictionRecord):
        raise InvalidInputError(f"expected a PredictionRecord, got {type(record).__name__}")
    pid = check_id(record.prediction_id)
    model = check_model_name(record.model)
    version = record.version
    if isinstance(version, np.integer):
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidInputError(f"prediction {pid}: version must be an int >= 0: {version!r}")
    flags = _flags(record.flags, pid)
    features = _features(record.features, flags)
    outputs = {
        _key(k, "outputs"): _nested(v, f"o.{k}", flags, 1)
        for k, v in _mapping(record.outputs, "outputs").items()
    }
    line = {
        "id": pid,
        "ts": to_micros(record.time, f"prediction {pid}: time"),
        "model": model,
        "version": version,
        "features": features,
        "outputs": outputs,
        "latency_ms": _latency(record.latency_ms, pid),
        "flags": flags,
        "arm": _optional_str(record.arm, f"prediction {pid}: arm"),
    }
    return dumps_line(line, f"prediction {pid}")


def _features(features: object, flags: list[str]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key, value in _mapping(features, "features").items():
        if type(key) is not str or not key:
            raise InvalidInputError(f"features: keys must be non-empty strings, got {key!r}")
        out[key] = cast(Scalar, value) if _plain(value) else scalar(value, f"f.{key}", flags)
    return out


def dumps_line(obj: Mapping[str, object], what: str) -> bytes:
    """orjson-encode one object as a line, translating its errors (e.g. lone surrogates)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError as exc:
        raise InvalidInputError(f"{what}: cannot be encoded as JSON: {exc}") from exc


def _flags(value: object, pid: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInputError(f"prediction {pid}: flags must be a sequence of strings")
    return [_optional_str(f, f"prediction {pid}: flag") or "" for f in value]


def _optional_str(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_CHARS:
        raise InvalidInputError(f"{what} must be a non-empty string of <= 256 chars: {value!r}")
    return value


def _latency(value: object, pid: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidInputError(f"prediction {pid}: latency_ms must be a number: {value!r}")
    ms = float(value)
    if not math.isfinite(ms) or ms < 0:
        raise InvalidInputError(f"prediction {pid}: latency_ms must be finite and >= 0: {ms}")
    return ms
