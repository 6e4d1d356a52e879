"""The Open Inference Protocol's binary tensor extension, both ways.

A request with the ``Inference-Header-Content-Length: N`` header has a JSON header of N
bytes, then the raw data of every input whose ``parameters.binary_data_size`` is set, in
input order (little-endian; ``BYTES`` elements each prefixed by a 4-byte little-endian
length). This is what ``tritonclient``'s ``set_data_from_numpy`` sends by default. The
binary data is decoded into the input's ``data`` here, so the rest of the protocol code
sees one shape of request. Outputs are answered the same way when the request asks for
it (``parameters.binary_data_output`` or an output's ``parameters.binary_data``).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from livemodel.errors import InvalidInputError
from livemodel.serving.http import MalformedRequestError

HEADER = "inference-header-content-length"
_FIXED = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def decode_request(raw: bytes, header_length: str | None) -> Any:
    """The request as JSON, with binary input data (if any) decoded into ``data`` lists."""
    if header_length is None:
        return _loads(raw)
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise MalformedRequestError(
            "Inference-Header-Content-Length must be the byte length of the JSON header, "
            "at most the body's length"
        )
    split = int(header_length)
    body = _loads(raw[:split])
    rest = memoryview(raw)[split:]
    inputs = body.get("inputs") if isinstance(body, dict) else None
    offset = 0
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInputError(f"input {i}: binary_data_size must be a byte count")
        if "data" in tensor:
            raise InvalidInputError(f"input {i} has both binary data and JSON data")
        if offset + size > len(rest):
            raise InvalidInputError(f"input {i}: binary_data_size runs past the end of the body")
        tensor["data"] = _decode(bytes(rest[offset : offset + size]), tensor, i)
        offset += size
    if offset != len(rest):
        raise InvalidInputError(
            f"the body has {len(rest) - offset} bytes after the JSON header and the "
            "inputs' binary data"
        )
    return body


def wants_binary(body: Any) -> tuple[bool, set[str]]:
    """(every output binary?, names of outputs asked for in binary)."""
    if not isinstance(body, dict):
        return False, set()
    params = body.get("parameters")
    every = isinstance(params, dict) and params.get("binary_data_output") is True
    named = set()
    for out in body.get("outputs") or []:
        if not isinstance(out, dict):
            continue
        out_params = out.get("parameters")
        if isinstance(out_params, dict) and out_params.get("binary_data") is True:
            named.add(str(out.get("name")))
    return every, named


def encode_response(answer: dict[str, Any], every: bool, named: set[str]) -> Response:
    """The answer as JSON, or with the chosen outputs' data as binary after a JSON header."""
    chunks: list[bytes] = []
    for out in answer["outputs"]:
        if every or out["name"] in named:
            data = _encode(out.pop("data"), out["datatype"])
            out["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


def _loads(raw: bytes) -> Any:
    if not raw:
        raise MalformedRequestError("the request body is empty: send JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(
            "the request body is not valid JSON (binary tensors need the "
            f"Inference-Header-Content-Length header): {exc}"
        ) from exc


def _decode(data: bytes, tensor: dict[str, Any], i: int) -> list[Any]:
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if datatype == "BYTES":
        return _decode_bytes(data, i)
    dtype = _FIXED.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInputError(f"input {i} has unknown datatype {datatype!r}")
    if isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape):
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise InvalidInputError(
                f"input {i}: shape {shape} of {datatype} needs {expected} bytes, got {len(data)}"
            )
    if len(data) % dtype.itemsize:
        raise InvalidInputError(f"input {i}: {len(data)} bytes is not a whole number of values")
    values: list[Any] = np.frombuffer(data, dtype=dtype).tolist()
    return values


def _decode_bytes(data: bytes, i: int) -> list[Any]:
    out: list[Any] = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise InvalidInputError(f"input {i}: a BYTES element's length is cut short")
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + size > len(data):
            raise InvalidInputError(f"input {i}: a BYTES element runs past its data")
        try:
            out.append(data[pos : pos + size].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"input {i}: a BYTES element is not UTF-8 text") from exc
        pos += size
    return out


def _encode(values: list[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in values:
            encoded = str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    return np.asarray(values, dtype=_FIXED[datatype]).tobytes()
