"""Small HTTP helpers: bounded body reading, JSON in and out, errors as JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from livemodel.errors import InvalidInputError, LivemodelError


class PayloadTooLargeError(InvalidInputError):
    http_status = 413


class MalformedRequestError(InvalidInputError):
    http_status = 400


class AuthError(LivemodelError):
    http_status = 401


class ForbiddenError(LivemodelError):
    http_status = 403


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


def error_response(exc: LivemodelError) -> Response:
    body: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message}
    details = getattr(exc, "details", None)
    if details:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    response = json_response({"error": body}, exc.http_status)
    if headers:
        response.headers.update(headers)
    return response


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON, refusing bodies over ``max_bytes`` before reading them all."""
    body = await read_body(request, max_bytes)
    if not body:
        raise MalformedRequestError("the request body is empty: send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"the request body is not valid JSON: {exc}") from exc


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body's bytes, refusing bodies over ``max_bytes`` before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequestError("invalid Content-Length header")
        if int(declared) > max_bytes:
            raise PayloadTooLargeError(f"request body over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLargeError(f"request body over the {max_bytes}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # nobody will read the answer; not a server error
        raise MalformedRequestError("the client disconnected while sending the body") from exc
    return b"".join(chunks)


def records_from(body: Any, max_rows: int) -> list[dict[str, Any]]:
    """``{"records": [...]}``, ``{"dataframe_records": [...]}`` (MLflow), a list, or one record."""
    if isinstance(body, dict):
        if "records" in body:
            records = body["records"]
        elif "dataframe_records" in body:
            records = body["dataframe_records"]
        elif "record" in body:
            records = [body["record"]]
        else:
            raise InvalidInputError(
                'send {"records": [{"feature": value, ...}, ...]} (or a JSON list of records)'
            )
    else:
        records = body
    if not isinstance(records, list):
        raise InvalidInputError('"records" must be a JSON list of objects')
    if not records:
        raise InvalidInputError('"records" is empty: send at least one record')
    if len(records) > max_rows:
        raise PayloadTooLargeError(f"{len(records)} records is over the limit of {max_rows}")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInputError(f"record {i} is a {type(record).__name__}, not an object")
    return records
