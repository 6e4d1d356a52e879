"""The Open Inference Protocol (KServe v2): tensors in, tensors out.

Requests carry either one input tensor per feature (named like the feature, shape ``[N]``
or ``[N, 1]``) or a single ``[N, F]`` tensor whose columns follow the signature's order
(what generic clients such as tritonclient send). Outputs are ``predict`` (labels or
values) and, for classifiers, ``predict_proba`` (``[N, classes]``); the prediction ids are
in ``parameters.prediction_ids`` so feedback can refer to them. Errors on these routes have
the protocol's shape, ``{"error": "<message>"}``. Tensors travel as JSON ``data`` or in
the binary tensor extension (:mod:`livemodel.serving.oip_binary`). Every input is checked
before any row is predicted: its values must be of its declared datatype (and in range),
its data must follow its shape (flat, row-major, or nested exactly like the shape), and
no two inputs may share a name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from starlette.responses import Response

from livemodel.errors import InvalidInputError, LivemodelError
from livemodel.schema.signature import ColumnType, Signature
from livemodel.serving.http import PayloadTooLargeError, json_response, public_message

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
    seen: set[str] = set()
    for name, _, _ in tensors:
        if name in seen:
            raise InvalidInputError(f"input {name!r} is sent twice: each input name once")
        seen.add(name)
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
        if body["inputs"][0]["datatype"] == "BYTES":  # mixed types travel as text
            types = [c.type for c in signature.columns]
            matrix = np.array(
                [[_from_text(v, t) for v, t in zip(row, types, strict=True)] for row in matrix],
                dtype=object,
            ).reshape(rows, width)
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


def _from_text(value: Any, kind: ColumnType) -> Any:
    """A cell of a BYTES matrix as its column's type; left as text if it does not parse
    (validation then names it as a value of the wrong type)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind is ColumnType.BOOLEAN and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind in (ColumnType.INTEGER, ColumnType.FLOAT):
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                continue
    return value


def requested_outputs(body: Any, classes: Sequence[Any] | None) -> set[str] | None:
    """The output names the request asks for (None: all), checked before predicting."""
    asked = body.get("outputs") if isinstance(body, dict) else None
    if asked is None:
        return None
    known = {"predict", "predict_proba"} if classes else {"predict"}
    if not isinstance(asked, list):
        raise InvalidInputError('"outputs" must be a list of {"name": ...}')
    names = set()
    for i, out in enumerate(asked):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in known:
            raise InvalidInputError(f"output {i} must be named one of {sorted(known)}")
        names.add(str(name))
    return names


def infer_response(
    name: str,
    version: int,
    request_id: Any,
    rows: list[dict[str, Any]],
    classes: Any,
    *,
    only: set[str] | None = None,
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
    if only is not None:
        outputs = [out for out in outputs if out["name"] in only]
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
    response = json_response({"error": public_message(exc)}, exc.http_status)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def model_metadata(
    name: str, version: int, signature: Signature, classes: Sequence[Any] | None
) -> dict[str, Any]:
    """Inputs in signature order; ``predict`` is INT64 for integer classes, else BYTES
    (string classes), FP64 for regression, as :func:`infer_response` sends it. A classifier
    without ``predict_proba`` (``classes`` None) answers labels too: its task's classes."""
    task = signature.task
    labels = classes
    if labels is None and task is not None and task.kind != "regression":
        labels = task.classes
    if labels is None:
        label_type = "FP64"
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
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
    if not isinstance(datatype, str) or datatype not in _KNOWN:
        raise InvalidInputError(f"input {name!r} has unknown datatype {str(datatype)[:40]!r}")
    if len(shape) > 8:
        raise InvalidInputError(f"input {name!r} has more than 8 dimensions")
    flat = _flatten(data, shape, name)
    _check_datatype(flat, datatype, name)
    return name, shape, flat


def _flatten(data: Any, shape: list[int], name: str) -> list[Any]:
    """Flat row-major data of ``prod(shape)`` values, or data nested exactly as ``shape``."""
    if not isinstance(data, list):
        raise InvalidInputError(f"input {name!r} needs its data as a list")
    expected = math.prod(shape)  # Python ints: a huge shape cannot wrap around
    if not any(isinstance(v, list) for v in data):
        if len(data) != expected:
            raise InvalidInputError(
                f"input {name!r}: shape {shape} needs {expected} values, got {len(data)}"
            )
        return data
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(node, list):
                raise InvalidInputError(f"input {name!r}: data is nested deeper than {shape}")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise InvalidInputError(f"input {name!r}: nested data does not follow shape {shape}")
        for item in node:
            walk(item, depth + 1)

    walk(data, 0)
    return flat


_INT_RANGES = {
    **{f"INT{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"UINT{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}


def _check_datatype(values: list[Any], datatype: str, name: str) -> None:
    """Every value is of the declared datatype (null stands for a missing value)."""
    for value in values:
        if value is not None and not _fits(value, datatype):
            raise InvalidInputError(
                f"input {name!r} is declared {datatype} but holds {str(value)[:40]!r} "
                f"({type(value).__name__})"
            )


def _fits(value: Any, datatype: str) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        return isinstance(value, int) and low <= value <= high
    return True  # FP16, FP32, FP64: any JSON number


def _check_rows(rows: int, max_rows: int) -> int:
    if rows < 1:
        raise InvalidInputError("the inputs hold no rows")
    if rows > max_rows:
        raise PayloadTooLargeError(f"{rows} rows is over the limit of {max_rows}")
    return rows


def _output(name: str, data: list[Any], shape: list[int], datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}
