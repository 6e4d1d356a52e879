"""The ASGI application: routes, and errors turned into JSON with the right status.

Client mistakes are 4xx with a message that names the problem; a model that fails on a
request's records with no fallback is 422 (503 if it did not answer in time); anything
unexpected is a 500 that says so without a stack trace.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from livemodel.errors import InvalidInputError, LivemodelError, NotFoundError
from livemodel.registry.refs import check_name
from livemodel.serving import explain as explanations
from livemodel.serving import oip, oip_binary, openapi, openapi_models, ui
from livemodel.serving.auth import ANONYMOUS, Principal
from livemodel.serving.engine import PredictRequest
from livemodel.serving.feedback import check_labels
from livemodel.serving.http import (
    error_response,
    json_response,
    read_body,
    read_json,
    records_from,
)
from livemodel.serving.router import route
from livemodel.serving.state import ServingState

_log = logging.getLogger("livemodel.serving")
Handler = Callable[[Request], Awaitable[Response]]


def build_app(state: ServingState) -> Starlette:  # noqa: PLR0915 - one closure per route reads best
    options = state.options
    scopes: dict[Handler, str | None] = {}  # what each route needs, for the API document

    def handled(
        endpoint: str, scope: str | None = None, *, oip_errors: bool = False, opened: bool = False
    ) -> Callable[[Handler], Handler]:
        """Auth, errors as JSON (the Open Inference Protocol's shape on its routes), metrics.

        ``opened``: the configuration opened this route, so it takes no token, but records
        the one it is given (which must then be valid).
        """
        as_error = oip.error_response if oip_errors else error_response

        def wrap(fn: Handler) -> Handler:
            async def run(request: Request) -> Response:
                model = request.path_params.get("name", "")
                try:
                    if scope is not None and opened:
                        request.state.principal = state.auth.optional(request)
                    elif scope is not None:
                        request.state.principal = state.auth.require(request, scope)
                    response = await fn(request)
                except LivemodelError as exc:
                    response = as_error(exc)
                except Exception:  # noqa: BLE001 - never a stack trace to a client
                    _log.exception("unexpected error on %s", request.url.path)
                    response = as_error(LivemodelError("internal server error"))
                state.metrics.requests.labels(model, endpoint, str(response.status_code)).inc()
                return response

            scopes[run] = None if opened else scope
            return run

        return wrap

    predict_scope = "predict" if options.require_predict_token else None

    @handled("predict", predict_scope)
    async def predict(request: Request) -> Response:
        endpoint = state.endpoint(request.path_params["name"])
        records = records_from(await read_json(request, options.max_body_bytes), options.max_rows)
        answer = await route(endpoint, PredictRequest(records))
        return json_response(
            {"model": endpoint.name, "version": answer.version, "predictions": answer.rows}
        )

    @handled("infer", predict_scope, oip_errors=True)
    async def infer(request: Request) -> Response:
        endpoint = state.endpoint(request.path_params["name"])
        asked = request.path_params.get("version")
        if asked is not None and asked != str(endpoint.handle.number):
            raise NotFoundError(
                f"version {asked[:20]!r} of {endpoint.name!r} is not served here "
                f"(serving version {endpoint.handle.number})"
            )
        raw = await read_body(request, options.max_body_bytes)
        body = oip_binary.decode_request(raw, request.headers.get(oip_binary.HEADER))
        signature = endpoint.handle.version.signature
        records = oip.records_from_infer(body, signature, options.max_rows)
        classes = endpoint.handle.classes
        only = oip.requested_outputs(body, classes)
        answer = await route(endpoint, PredictRequest(records))
        request_id = body.get("id") if isinstance(body, dict) else None
        every, named = oip_binary.wants_binary(body)
        return oip_binary.encode_response(
            oip.infer_response(
                endpoint.name, answer.version, request_id, answer.rows, classes, only=only
            ),
            every,
            named,
        )

    @handled("feedback", "feedback", opened=options.open_feedback)
    async def feedback(request: Request) -> Response:
        endpoint = state.endpoint(request.path_params["name"])
        body = await read_json(request, options.max_body_bytes)
        labels = check_labels(
            body, endpoint.handle.version.signature, options.max_rows, by=_sender(request)
        )
        ids = [label.prediction_id for label in labels]
        known = await _to_thread(state.labels.known_ids, endpoint.name, ids)
        accepted = [label for label in labels if label.prediction_id in known]
        if accepted:
            await state.labels.append_async(endpoint.name, accepted)
        unknown = sorted({i for i in ids if i not in known})
        return json_response({"accepted": len(accepted), "unknown_ids": unknown})

    @handled("models")
    async def models(request: Request) -> Response:
        return json_response(
            [
                {
                    "name": e.name,
                    "version": e.handle.number,
                    "alias": e.options.alias,
                    "validation": e.options.validation,
                    "fallback": e.options.fallback,
                }
                for e in state.endpoints.values()
            ]
        )

    @handled("set_alias", "admin")
    async def set_alias(request: Request) -> Response:
        name, alias = request.path_params["name"], request.path_params["alias"]
        body = await read_json(request, 64 * 1024)
        version = body.get("version") if isinstance(body, dict) else None
        if isinstance(version, float) and version.is_integer():
            version = int(version)  # 3.0 is an integer to JSON Schema (the API document)
        reason = body.get("reason", "") if isinstance(body, dict) else None
        if (not isinstance(version, int) or isinstance(version, bool)
                or not 1 <= version < 2**31 or not isinstance(reason, str)):  # fmt: skip
            raise InvalidInputError('send {"version": <positive integer>, "reason": "..."}')
        before = await _to_thread(
            state.registry.set_alias, name, alias, version, reason=reason if reason else None
        )
        await state.refresh()
        return json_response({"model": name, "alias": alias, "from": before, "to": version})

    # The review queue shows logged features, so reading it needs the admin scope too.
    @handled("review", "admin")
    async def review_list(request: Request) -> Response:
        model = request.query_params.get("model")
        names = [check_name(model)] if model is not None else sorted(state.endpoints)
        limit = _int_param(request, "limit", 100, 1, 10_000)
        days = _int_param(request, "days", 7, 1, 3_650)
        items = []
        for name in names:
            items.extend(await _to_thread(_pending_review, state, name, days, limit))
        return json_response({"items": items[:limit]})

    @handled("review_verdict", "admin")
    async def review_verdict(request: Request) -> Response:
        name, pid = request.path_params["name"], request.path_params["prediction_id"]
        endpoint = state.endpoint(name)
        body = await read_json(request, 64 * 1024)
        labels = check_labels(
            {
                "labels": [
                    {"id": pid, "label": body.get("label") if isinstance(body, dict) else None}
                ]
            },
            endpoint.handle.version.signature,
            1,
            by=_sender(request),
            source="review",
        )
        if pid not in await _to_thread(state.labels.known_ids, name, [pid]):
            raise NotFoundError(f"no prediction {pid!r} of model {name!r}")
        await state.labels.append_async(name, labels)
        return json_response({"prediction_id": pid, "label": labels[0].label})

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        ok = state.healthy
        body: dict[str, Any] = {"ready": ok, "models": sorted(state.endpoints)}
        if state.failures:  # names the model and why, never a path
            body["failed"] = {name: f.to_dict() for name, f in sorted(state.failures.items())}
        return json_response(body, 200 if ok else 503)

    @handled("model_ready", oip_errors=True)
    async def model_ready(request: Request) -> Response:
        state.endpoint(request.path_params["name"])
        return json_response({"name": request.path_params["name"], "ready": True})

    @handled("model_metadata", oip_errors=True)
    async def model_metadata(request: Request) -> Response:
        e = state.endpoint(request.path_params["name"])
        return json_response(
            oip.model_metadata(
                e.name, e.handle.number, e.handle.version.signature, e.handle.classes
            )
        )

    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "livemodel", "version": "0.1.0", "extensions": []})

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def openapi_document(request: Request) -> Response:
        served = [
            openapi_models.ServedModel(
                e.name,
                e.handle.version.signature,
                e.options.validation,
                tuple(str(k) for k in e.options.reject_kinds),
                options.max_rows,
            )
            for e in sorted(state.endpoints.values(), key=lambda e: e.name)
        ]
        # the stdlib's encoder: a schema bound may be past 64 bits, which orjson refuses
        text = json.dumps(openapi_models.with_models(document, served))
        return Response(text.encode(), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/v1/models/{name}/feedback", feedback, methods=["POST"]),
        Route("/v1/models/{name}/aliases/{alias}", set_alias, methods=["PUT"]),
        Route("/v1/review", review_list, methods=["GET"]),
        Route("/v1/review/{name}/{prediction_id}", review_verdict, methods=["POST"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/healthz", live, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
        explanations.route(state, handled("explain", predict_scope)),
        *ui.routes(state, handled),
    ]
    document = openapi.document(routes, scopes)  # every route, exactly (or refuses to start)
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path 404, wrong method 405) as JSON like every other error."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal server error"
    kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "HTTPError")
    response = json_response({"error": {"type": kind, "message": str(detail)}}, status)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def _sender(request: Request) -> str:
    """Who sent a write, as recorded with it (the token, or ``anonymous``)."""
    principal = getattr(request.state, "principal", ANONYMOUS)
    return principal.label if isinstance(principal, Principal) else ANONYMOUS.label


async def _to_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInputError(f"query parameter {name!r} must be an integer in [{low}, {high}]")
    return int(raw)


def _pending_review(state: ServingState, name: str, days: int, limit: int) -> list[dict[str, Any]]:
    """Low-confidence predictions of the last ``days`` that have no label yet."""
    since = datetime.now(UTC) - timedelta(days=days)
    try:
        table = state.reader.window(name, start=since, with_labels=True)
    except NotFoundError:
        return []
    rows = table.to_pylist()
    pending = [
        r for r in rows if "low_confidence" in (r.get("flags") or []) and r.get("label") is None
    ]
    pending.sort(key=lambda r: r["time"], reverse=True)
    return [
        {
            "model": name,
            "prediction_id": r["prediction_id"],
            "version": r["version"],
            "time": r["time"].isoformat(),
            "outputs": {k[2:]: v for k, v in r.items() if k.startswith("o.")},
            "features": {k[2:]: v for k, v in r.items() if k.startswith("f.")},
        }
        for r in pending[:limit]
    ]
