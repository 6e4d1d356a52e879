"""The operations of the API document whose request body depends on the served model.

A predict body is valid for ``flights`` only if it holds ``flights``'s features with
their types, and a label only if it is one of its classes; one templated path cannot say
that. :func:`with_models` lists such operations once per served model, with that model's
schemas, made from its signature and serving options the way validation reads them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livemodel.schema.signature import ColumnType, Signature
from livemodel.serving.openapi import SCHEMAS, json_content

# What an INTEGER column takes from JSON: int64, and below -2**63 down to the integers that
# JSON parsing rounds to the float -2**63 (an integral float that fits is taken): a quirk
# found by schemathesis and documented as it is (issue 13's closing note).
_INT64 = {"type": "integer", "minimum": -(2**63) - 1024, "maximum": 2**63 - 1}
_CELL = {
    ColumnType.INTEGER: _INT64,
    ColumnType.FLOAT: {"type": "number"},
    ColumnType.BOOLEAN: {"type": "boolean"},
    ColumnType.CATEGORICAL: {"type": "string"},
    ColumnType.DATETIME: {"type": "string", "format": "date-time"},
}
#: (method, route) whose request body is exact only per model, and how to make it
_PER_MODEL = ("POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback",
              "POST /v1/review/{name}/{prediction_id}")  # fmt: skip


@dataclass(frozen=True)
class ServedModel:
    """What the document needs of a served model to say exactly what it accepts."""

    name: str
    signature: Signature
    validation: str  # "reject" or "flag"
    reject_kinds: tuple[str, ...]
    max_rows: int


def with_models(document: dict[str, Any], served: Sequence[ServedModel]) -> dict[str, Any]:
    """``document`` with the model-dependent operations made concrete per served model.

    A predict body is valid for ``flights`` only if it holds ``flights``'s features with
    their types (what validation rejects, the schema refuses); a label is one of its
    classes. So ``/v1/models/{name}/predict`` becomes ``/v1/models/flights/predict``,
    ... with that model's schemas; unknown models are 404s and not listed.
    """
    paths = dict(document["paths"])
    for key in _PER_MODEL:
        method, template = key.split(" ")
        generic = paths.pop(template)[method.lower()]
        for model in served:
            operation = copy.deepcopy(generic)
            operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "name"]
            body = _records(model) if template.endswith("/predict") else _labels(model, template)
            operation["requestBody"] = {"required": True, **json_content(body)}
            paths[template.replace("{name}", model.name)] = {method.lower(): operation}
    return {**document, "paths": paths}


def _records(model: ServedModel) -> dict[str, Any]:
    rejects = set(model.reject_kinds) if model.validation == "reject" else set()
    properties: dict[str, Any] = {}
    every: list[str] = []  # in every record: a null (or absent) value is refused
    some: list[str] = []  # in at least one record: a column absent from all is refused
    for column in model.signature.columns:
        cell = _CELL[column.type] if "wrong_type" in rejects else {}
        if column.nullable or "null" not in rejects:
            cell = {"anyOf": [cell, {"type": "null"}]} if cell else {}
        else:
            every.append(column.name)
        if column.name not in every and "missing_column" in rejects:
            some.append(column.name)
        properties[column.name] = cell
    record: dict[str, Any] = {"type": "object", "properties": properties}
    if every:
        record["required"] = every
    records: dict[str, Any] = {
        "type": "array", "minItems": 1, "maxItems": model.max_rows, "items": record,
    }  # fmt: skip
    if some:
        records["allOf"] = [{"contains": {"type": "object", "required": [c]}} for c in some]
    return {"type": "object", "required": ["records"], "properties": {"records": records}}


def _label_value(model: ServedModel) -> dict[str, Any]:
    task = model.signature.task
    if task is not None and task.kind == "regression":
        return {"type": "number"}
    if task is not None and task.classes:
        return {"enum": list(task.classes)}
    return {"anyOf": [{"type": "string", "minLength": 1}, {"type": "boolean"}, _INT64,
                      {"type": "number"}]}  # fmt: skip


def _labels(model: ServedModel, template: str) -> dict[str, Any]:
    value = _label_value(model)
    if template.startswith("/v1/review/"):
        return {"type": "object", "required": ["label"], "properties": {"label": value}}
    labels: dict[str, Any] = copy.deepcopy(SCHEMAS["Labels"])
    items = labels["properties"]["labels"]
    items["maxItems"] = model.max_rows
    items["items"]["properties"]["label"] = value
    return labels
