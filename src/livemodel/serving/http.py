"""Small HTTP helpers: bounded body reading, JSON in and out, errors as JSON."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from livemodel.errors import (
    InvalidInputError,
    LivemodelError,
    ModelError,
    StoreError,
    UnavailableError,
)

_log = logging.getLogger("livemodel.serving")


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
    """``{"error": {"type", "message", ["details"], ["prediction_ids"]}}`` with the error's
    status. ``prediction_ids`` names the rows of a request a model could not answer (503),
    under which the server log has the model's own error."""
    body: dict[str, Any] = {"type": type(exc).__name__, "message": public_message(exc)}
    details = getattr(exc, "details", None)
    if details:
        body["details"] = details
    ids = getattr(exc, "prediction_ids", None)
    if ids:
        body["prediction_ids"] = list(ids)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    response = json_response({"error": body}, exc.http_status)
    if headers:
        response.headers.update(headers)
    return response


def public_message(exc: LivemodelError) -> str:
    """What a client may read of ``exc``: its message for client errors and the server's
    own 503s (overloaded, a model failed); for any other server-side error (a storage
    error naming a file, a model's exception text) stable words and an id, under which
    the server log has the message."""
    if exc.http_status < 500 or isinstance(exc, UnavailableError) or _is_public(exc):
        return exc.message
    error_id = uuid.uuid4().hex[:12]
    _log.error("answered %d, error id %s: %s: %s", exc.http_status, error_id,
               type(exc).__name__, exc.message)  # fmt: skip
    what = {StoreError: "the server's storage failed", ModelError: "the model failed"}
    words = next((text for kind, text in what.items() if isinstance(exc, kind)), None)
    return f"{words or 'internal server error'} (error id {error_id} in the server log)"


def _is_public(exc: LivemodelError) -> bool:
    """Server errors whose message is written for clients (e.g. "SHAP is not installed")."""
    return bool(getattr(exc, "public", False))


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
