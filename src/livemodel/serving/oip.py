"""The Open Inference Protocol (KServe v2): tensors in, tensors out.

Requests carry either one input tensor per feature (named like the feature, shape ``[N]``
or ``[N, 1]``) or a single ``[N, F]`` tensor whose columns follow the signature's order
(what generic clients such as tritonclient send). Outputs are ``predict`` (labels or
values) and, for classifiers, ``predict_proba`` (``[N, classes]``); the prediction ids are
in ``parameters.prediction_ids`` so feedback can refer to them. Errors on these routes have
the protocol's shape, ``{"error": "<message>"}``. Tensors travel as JSON ``data`` (the
binary tensor extension is not supported: clients must send ``binary_data=False``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from starlette.responses import Response

from livemodel.errors import InvalidInputError, LivemodelError
from livemodel.schema.signature import ColumnType, Signature
from livemodel.serving.http import PayloadTooLargeError, json_response

_DATATYPES = {
    ColumnType.INTEGER: "INT64",
    ColumnType.FLOAT: "FP64",
    ColumnType.BOOLEAN: "BOOL",
    ColumnType.CATEGORICAL: "BYTES",
    ColumnType.DATETIME: "BYTES",
}
_KNOWN = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
          "FP16", "FP32", "FP64", "BYTES"}  # fmt: skip


def records_from_infer(body: Any, signature: Signature, max_rows: int) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InvalidInputError('an inference request needs a non-empty "inputs" list')
    tensors = [_tensor(t, i) for i, t in enumerate(body["inputs"])]
    names = set(signature.names)
    if len(tensors) == 1 and tensors[0][0] not in names:
        name, shape, data = tensors[0]
        width = len(signature.names)
        if len(shape) != 2 or shape[1] != width:
            raise InvalidInputError(
                f"input {name!r} must have shape [N, {width}] (columns {list(signature.names)}) "
                "or send one input per feature"
            )
        rows = _check_rows(shape[0], max_rows)
        matrix = np.asarray(data, dtype=object).reshape(rows, width)
        return [dict(zip(signature.names, row, strict=True)) for row in matrix.tolist()]
    columns: dict[str, list[Any]] = {}
    n_rows: int | None = None
    for name, shape, data in tensors:
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInputError(f"input {name!r} must have shape [N] or [N, 1], got {shape}")
        if n_rows is not None and shape[0] != n_rows:
            raise InvalidInputError(f"input {name!r} has {shape[0]} rows, others have {n_rows}")
        n_rows = shape[0]
        columns[name] = data
    rows = _check_rows(n_rows or 0, max_rows)
    return [{name: values[i] for name, values in columns.items()} for i in range(rows)]


def infer_response(
    name: str, version: int, request_id: Any, rows: list[dict[str, Any]], classes: Any
) -> dict[str, Any]:
    n = len(rows)
    outputs: list[dict[str, Any]] = []
    if rows and "value" in rows[0]:
        outputs.append(_output("predict", [r.get("value") for r in rows], [n], "FP64"))
    else:
        labels = [r.get("label") for r in rows]
        kind = (
            "INT64"
            if all(isinstance(x, int) and not isinstance(x, bool) for x in labels)
            else "BYTES"
        )
        outputs.append(
            _output("predict", labels if kind == "INT64" else [str(x) for x in labels], [n], kind)
        )
    if classes and rows and "proba" in rows[0]:
        keys = [str(c) for c in classes]
        flat = [float(r.get("proba", {}).get(k, float("nan"))) for r in rows for k in keys]
        outputs.append(_output("predict_proba", flat, [n, len(keys)], "FP64"))
    response: dict[str, Any] = {
        "model_name": name,
        "model_version": str(version),
        "outputs": outputs,
        "parameters": {"prediction_ids": [r["id"] for r in rows]},
    }
    if request_id is not None:
        response["id"] = request_id
    return response


def error_response(exc: LivemodelError) -> Response:
    """The protocol's error body, ``{"error": "<message>"}``, which its clients parse."""
    response = json_response({"error": exc.message}, exc.http_status)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def model_metadata(
    name: str, version: int, signature: Signature, classes: Sequence[Any] | None
) -> dict[str, Any]:
    """Inputs in signature order; ``predict`` is INT64 for integer classes, else BYTES
    (string classes), FP64 for regression, as :func:`infer_response` sends it."""
    if classes is None:
        label_type = "FP64"
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        label_type = "INT64"
    else:
        label_type = "BYTES"
    outputs = [{"name": "predict", "datatype": label_type, "shape": [-1]}]
    if classes is not None:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
    return {
        "name": name,
        "versions": [str(version)],
        "platform": "livemodel",
        "inputs": [
            {"name": c.name, "datatype": _DATATYPES[c.type], "shape": [-1]}
            for c in signature.columns
        ],
        "outputs": outputs,
    }


def _tensor(raw: Any, index: int) -> tuple[str, list[int], list[Any]]:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"input {index} must be an object")
    name, shape, datatype, data = (raw.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"input {index} needs a name")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise InvalidInputError(f"input {name!r} needs a shape of non-negative integers")
    if datatype not in _KNOWN:
        raise InvalidInputError(f"input {name!r} has unknown datatype {datatype!r}")
    flat = _flatten(data, name)
    expected = math.prod(shape)  # Python ints: a huge shape cannot wrap around
    if len(flat) != expected:
        raise InvalidInputError(
            f"input {name!r}: shape {shape} needs {expected} values, got {len(flat)}"
        )
    return name, shape, flat


def _flatten(data: Any, name: str, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInputError(f"input {name!r} needs its data as a list")
    if depth > 8:
        raise InvalidInputError(f"input {name!r} is nested too deeply")
    if data and isinstance(data[0], list):
        return [v for item in data for v in _flatten(item, name, depth + 1)]
    return data


def _check_rows(rows: int, max_rows: int) -> int:
    if rows < 1:
        raise InvalidInputError("the inputs hold no rows")
    if rows > max_rows:
        raise PayloadTooLargeError(f"{rows} rows is over the limit of {max_rows}")
    return rows


def _output(name: str, data: list[Any], shape: list[int], datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}
