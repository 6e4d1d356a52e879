"""Checking labels sent as feedback against the model's task before they are logged."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from livemodel.errors import InvalidInputError
from livemodel.schema.signature import Signature
from livemodel.serving.http import PayloadTooLargeError
from livemodel.store.labels import LabelRecord

_MAX_ID = 128
_MAX_SOURCE = 64


def check_labels(
    body: Any,
    signature: Signature,
    max_rows: int,
    *,
    by: str,
    source: str = "feedback",
) -> list[LabelRecord]:
    """``{"labels": [{"id": ..., "label": ..., "time"?: ISO 8601, "source"?: str}]}``.

    Every entry is checked before any is accepted, so a bad batch is refused whole with
    the index of the first problem (nothing is half-written). ``by`` is who sent them (the
    server's record of the token, see :class:`~livemodel.serving.auth.Principal`).
    """
    entries = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError('send {"labels": [{"id": "<prediction id>", "label": ...}]}')
    if len(entries) > max_rows:
        raise PayloadTooLargeError(f"{len(entries)} labels is over the limit of {max_rows}")
    task = signature.task
    classes = {_key(c): c for c in task.classes} if task and task.classes else None
    now = datetime.now(UTC)
    records = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"label {i} must be an object")
        pid = entry.get("id", entry.get("prediction_id"))
        if not isinstance(pid, str) or not pid or len(pid) > _MAX_ID:
            raise InvalidInputError(f'label {i} needs an "id": the prediction id (a string)')
        if "label" not in entry:
            raise InvalidInputError(f'label {i} has no "label"')
        value = entry["label"]
        if task is not None and task.kind == "regression":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise InvalidInputError(f"label {i} must be a finite number for a regression model")
        elif classes is not None:
            if _key(value) not in classes:
                allowed = list(classes.values())
                raise InvalidInputError(f"label {i} is {value!r}, not one of the classes {allowed}")
            value = classes[_key(value)]
        time = _time(entry.get("time"), i, now)
        records.append(LabelRecord(pid, value, time, _source(entry, i, source), by))
    return records


def _key(value: Any) -> tuple[str, Any]:
    """Classes compare by JSON value: 1 and 1.0 match, True and 1 do not, "1" and 1 do not."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return (type(value).__name__, value if isinstance(value, str) else repr(value))


def _time(value: Any, i: int, default: datetime) -> datetime:
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInputError(f'label {i}: "time" must be an ISO 8601 string')
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f'label {i}: "time" {value[:40]!r} is not ISO 8601') from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _source(entry: dict[str, Any], i: int, default: str) -> str:
    value = entry.get("source", default)
    if not isinstance(value, str) or not value or len(value) > _MAX_SOURCE:
        raise InvalidInputError(f'label {i}: "source" must be a short string')
    return value
