"""The OpenAPI document of the server (served at ``/openapi.json``), made from its routes.

:func:`document` walks the app's routes: every (method, path) must have an operation
here and every operation here must be a route, or the app refuses to start, so the
document cannot drift from the API. Path parameters come from the route itself, and
security (plus the 401/403 answers) from the scope the route's auth wrapper checks under
the running configuration (``docs/security.md``). Schemas say exactly what is accepted:
a request they allow is not refused for its shape, one they refuse is a 4xx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute, Route

# A model name as the store checks it (livemodel.store.predlog.check_model_name).
_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A request or response content of JSON with ``schema``."""
    return {"content": {"application/json": {"schema": schema}}}


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


_V1_ERROR = _json(_ref("Error"), "error")
_FAILED_BODY = (
    "type ModelFailedError, prediction_ids name the rows, under which the server log has the "
    "model's error; the body never holds the model's exception text"
)
# A failure specific to the records is a 422 (sending them again cannot succeed); one of
# the server (overloaded, the model did not answer in time) a 503.
_MODEL_REFUSED = _json(
    _ref("Error"),
    "invalid records, or the model could not score them (it raised, or answered NaN or "
    f"infinity, on them and no fallback answered: {_FAILED_BODY})",
)
_MODEL_FAILED = _json(
    _ref("Error"),
    f"overloaded, or the model did not answer in time and no fallback answered ({_FAILED_BODY})",
)
_OIP_ERROR = _json(_ref("InferenceError"), "error")
# An unknown path under an OIP route is answered by the router, in the v1 shape.
_OIP_NOT_FOUND = _json({"anyOf": [_ref("InferenceError"), _ref("Error")]}, "not found")
_BODY_ERRORS = {"400": _V1_ERROR, "413": _V1_ERROR, "422": _V1_ERROR}
_OIP_BODY_ERRORS = {"400": _OIP_ERROR, "413": _OIP_ERROR, "422": _OIP_ERROR}
_MODEL_BODY_ERRORS = {**_BODY_ERRORS, "422": _MODEL_REFUSED}
_OBJECT = {"type": "object"}
_LIST_OF_OBJECTS = {"type": "array", "items": _OBJECT}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "details": _LIST_OF_OBJECTS,
                    "prediction_ids": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "the rows a model could not answer (422, 503)",
                    },
                },
            }
        },
    },
    "InferenceError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Records": {
        "type": "object",
        "required": ["records"],
        "properties": {"records": {**_LIST_OF_OBJECTS, "minItems": 1}},
    },
    "Prediction": {
        "type": "object",
        "required": ["id", "version"],
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "integer"},
            "label": {},
            "proba": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
            "value": {"type": ["number", "null"]},
            "flags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Predictions": {
        "type": "object",
        "required": ["model", "version", "predictions"],
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "predictions": {"type": "array", "items": _ref("Prediction")},
        },
    },
    "Labels": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "label"],
                    "properties": {
                        "id": {"type": "string", "minLength": 1, "maxLength": 128},
                        "label": {},
                        "time": {
                            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
                            "description": "when the label was known; null or absent: now",
                        },
                        "source": {"type": "string", "minLength": 1, "maxLength": 64},
                    },
                },
            }
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "shape": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "enum": [
                    "BOOL",
                    "UINT8",
                    "UINT16",
                    "UINT32",
                    "UINT64",
                    "INT8",
                    "INT16",
                    "INT32",
                    "INT64",
                    "FP16",
                    "FP32",
                    "FP64",
                    "BYTES",
                ],
            },
            "data": {"type": "array"},
            "parameters": _OBJECT,
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "minItems": 1, "items": _ref("Tensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": ["predict", "predict_proba"]},
                        "parameters": _OBJECT,
                    },
                },
            },
            "parameters": _OBJECT,
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("Tensor")},
            "parameters": _OBJECT,
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "models"],
        "properties": {
            "ready": {"type": "boolean"},
            "models": {"type": "array", "items": {"type": "string"}},
            "failed": {
                "type": "object",
                "description": "models whose aliased version failed to load, and why",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "integer"},
                        "reason": {"type": "string"},
                        "serving": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
}

_DAYS_LIMIT = [
    {"name": "model", "in": "query", "schema": {"type": "string", "pattern": _NAME_PATTERN}},
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 10_000}},
    {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 3_650}},
]  # fmt: skip

_PREDICT = {
    "summary": "Predict for one or more records (validated against the signature)",
    "requestBody": {"required": True, **_json(_ref("Records"))},
    "responses": {
        "200": _json(_ref("Predictions"), "predictions, each with its id"),
        "404": _V1_ERROR,
        **_MODEL_BODY_ERRORS,
        "503": _MODEL_FAILED,
    },
}
_INFER = {
    "summary": "Open Inference Protocol v2 inference (JSON or the binary tensor extension)",
    "requestBody": {"required": True, **_json(_ref("InferenceRequest"))},
    "responses": {
        "200": _json(_ref("InferenceResponse"), "outputs; prediction ids in parameters"),
        "404": _OIP_NOT_FOUND,
        **_OIP_BODY_ERRORS,
        "422": _json(_ref("InferenceError"), "invalid inputs, or the model could not score them"),
        "503": _json(_ref("InferenceError"), "overloaded, or the model did not answer in time"),
    },
}
_HEALTH = {"200": _json({"type": "object"}, "live")}
_READY = {
    "200": _json(_ref("Readiness"), "every served model is loaded"),
    "503": _json(_ref("Readiness"), "starting, or a model failed to load (named, with why)"),
}

#: (method, path) -> the operation, without path parameters and security (made from routes)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/models"): {
        "summary": "Served models and versions",
        "responses": {"200": _json(_LIST_OF_OBJECTS, "served models")},
    },
    ("POST", "/v1/models/{name}/predict"): _PREDICT,
    ("POST", "/v1/models/{name}/explain"): {
        "summary": "Per-feature SHAP contributions for records (sum to output - base)",
        "requestBody": {"required": True, **_json(_ref("Records"))},
        "responses": {
            "200": _json(_OBJECT, "contributions, base value and output per row"),
            "404": _V1_ERROR,
            **_MODEL_BODY_ERRORS,
            "501": _V1_ERROR,
            "503": _V1_ERROR,
        },
    },
    ("POST", "/v1/models/{name}/feedback"): {
        "summary": "Send labels for earlier predictions, late and in any order",
        "requestBody": {"required": True, **_json(_ref("Labels"))},
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["accepted", "unknown_ids"],
                    "properties": {
                        "accepted": {"type": "integer"},
                        "unknown_ids": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "how many were accepted, which ids are unknown",
            ),
            "404": _V1_ERROR,
            **_BODY_ERRORS,
            "503": _V1_ERROR,
        },
    },
    ("PUT", "/v1/models/{name}/aliases/{alias}"): {
        "summary": "Move an alias; servers follow within seconds",
        "requestBody": {
            "required": True,
            **_json(
                {
                    "type": "object",
                    "required": ["version"],
                    "properties": {
                        "version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                        "reason": {"type": "string"},
                    },
                }
            ),
        },
        "responses": {
            "200": _json(_OBJECT, "moved: from and to"),
            "404": _V1_ERROR,
            **_BODY_ERRORS,
            "503": _V1_ERROR,
        },
    },
    ("GET", "/v1/review"): {
        "summary": "Low-confidence predictions awaiting review (shows features)",
        "parameters": _DAYS_LIMIT,
        "responses": {"200": _json(_OBJECT, "items"), "422": _V1_ERROR, "503": _V1_ERROR},
    },
    ("POST", "/v1/review/{name}/{prediction_id}"): {
        "summary": "Record a reviewer's verdict as the prediction's label",
        "requestBody": {
            "required": True,
            **_json({"type": "object", "required": ["label"], "properties": {"label": {}}}),
        },
        "responses": {
            "200": _json(_OBJECT, "recorded"),
            "404": _V1_ERROR,
            **_BODY_ERRORS,
            "503": _V1_ERROR,
        },
    },
    ("GET", "/v2"): {
        "summary": "Open Inference Protocol server metadata",
        "responses": {"200": _json(_OBJECT, "name, version, extensions")},
    },
    ("GET", "/v2/health/live"): {"summary": "Liveness", "responses": _HEALTH},
    ("GET", "/v2/health/ready"): {"summary": "Readiness", "responses": _READY},
    ("GET", "/v2/models/{name}"): {
        "summary": "Open Inference Protocol model metadata",
        "responses": {"200": _json(_OBJECT, "inputs and outputs"), "404": _OIP_NOT_FOUND},
    },
    ("GET", "/v2/models/{name}/ready"): {
        "summary": "Open Inference Protocol model readiness",
        "responses": {"200": _json(_OBJECT, "ready"), "404": _OIP_NOT_FOUND},
    },
    ("POST", "/v2/models/{name}/infer"): _INFER,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): _INFER,
    ("GET", "/healthz"): {"summary": "Liveness", "responses": _HEALTH},
    ("GET", "/readyz"): {"summary": "Readiness (every served model loaded)", "responses": _READY},
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics",
        "responses": {"200": _text("text/plain", "text exposition")},
    },
    ("GET", "/openapi.json"): {
        "summary": "This document",
        "responses": {"200": _json(_OBJECT, "OpenAPI 3.1")},
    },
    ("GET", "/ui"): {
        "summary": "The live dashboard (HTML)",
        "responses": {
            "200": _text("text/html", "page"),
            "503": _text("text/html", "the database is unavailable"),
        },
    },
    ("GET", "/ui/models/{name}"): {
        "summary": "The dashboard of one model (HTML)",
        "responses": {
            "200": _text("text/html", "page"),
            "404": _text("text/html", "unknown model"),
            "422": _text("text/html", "invalid model name"),
            "503": _text("text/html", "the database is unavailable"),
        },
    },
    ("GET", "/ui/api/overview"): {
        "summary": "The dashboard's data (JSON)",
        "responses": {"200": _json(_OBJECT, "overview"), "503": _V1_ERROR},
    },
    ("GET", "/ui/api/models/{name}"): {
        "summary": "One model's dashboard data (JSON)",
        "responses": {
            "200": _json(_OBJECT, "model"),
            "404": _V1_ERROR,
            "422": _V1_ERROR,
            "503": _V1_ERROR,
        },
    },
    ("GET", "/ui/api/review"): {
        "summary": "The dashboard's review queue (shows features)",
        "responses": {"200": _json(_OBJECT, "items"), "503": _V1_ERROR},
    },
    ("GET", "/ui/static/plotly.min.js"): {
        "summary": "Plotly, served locally for the dashboard",
        "responses": {
            "200": _text("text/javascript", "script"),
            "404": _text("text/plain", "plotly is not installed"),
        },
    },
}

_PATH_SCHEMAS = {
    "name": {"type": "string", "pattern": _NAME_PATTERN},
    "prediction_id": {"type": "string", "minLength": 1, "maxLength": 128},
    "alias": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9._-]{0,63}$"},  # check_alias
}


def document(
    routes: Sequence[BaseRoute], scopes: Mapping[Callable[..., Any], str | None]
) -> dict[str, Any]:
    """The OpenAPI document of ``routes``; a route without an operation, or an operation
    without a route, is a programming error (ValueError) caught by any server test."""
    paths: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if not isinstance(route, Route):
            raise ValueError(f"{route!r}: only plain routes can be documented")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            key = (method, route.path)
            if key not in OPERATIONS:
                raise ValueError(f"{method} {route.path} has no operation in serving/openapi.py")
            seen.add(key)
            scope = scopes.get(route.endpoint)
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                OPERATIONS[key], list(route.param_convertors), scope, route.path
            )
    extra = sorted(set(OPERATIONS) - seen)
    if extra:
        raise ValueError(f"operations without a route in serving/openapi.py: {extra}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "livemodel", "version": "0.1.0"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }


def _operation(
    spec: dict[str, Any], params: list[str], scope: str | None, path: str
) -> dict[str, Any]:
    operation = {**spec, "x-livemodel-route": path}  # docs/security.md names routes
    path_params = [
        {
            "name": p,
            "in": "path",
            "required": True,
            "schema": _PATH_SCHEMAS.get(p, {"type": "string", "minLength": 1}),
        }
        for p in params
    ]
    operation["parameters"] = [*path_params, *spec.get("parameters", [])]
    if scope is not None:
        error = _OIP_ERROR if path.startswith("/v2/") else _V1_ERROR
        operation["summary"] = f"{spec['summary']} (scope: {scope})"
        operation["security"] = [{"bearer": []}]
        operation["responses"] = {**spec["responses"], "401": error, "403": error}
    return operation
