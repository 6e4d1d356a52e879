"""The OpenAPI document of the server (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "livemodel", "version": "0.1.0"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                },
            },
            "Records": {
                "type": "object",
                "required": ["records"],
                "properties": {"records": {"type": "array", "items": {"type": "object"}}},
            },
            "Prediction": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "version": {"type": "integer"},
                    "label": {},
                    "proba": {"type": "object", "additionalProperties": {"type": "number"}},
                    "value": {"type": "number"},
                    "flags": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Labels": {
                "type": "object",
                "properties": {
                    "labels": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "label"],
                            "properties": {
                                "id": {"type": "string"},
                                "label": {},
                                "time": {"type": "string", "format": "date-time"},
                                "source": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    },
    "paths": {
        "/v1/models/{name}/predict": {
            "post": {
                "summary": "Predict for one or more records (validated against the signature)",
                "parameters": [_NAME],
                "requestBody": {
                    "required": True,
                    **_json({"$ref": "#/components/schemas/Records"}),
                },
                "responses": {
                    "200": {
                        "description": "predictions, each with its id",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "model": {"type": "string"},
                                    "version": {"type": "integer"},
                                    "predictions": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Prediction"},
                                    },
                                },
                            }
                        ),
                    },
                    "400": _ERROR,
                    "404": _ERROR,
                    "413": _ERROR,
                    "422": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/v1/models/{name}/feedback": {
            "post": {
                "summary": "Send labels for earlier predictions, late and in any order",
                "parameters": [_NAME],
                "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Labels"})},
                "responses": {
                    "200": {
                        "description": "how many were accepted, which ids are unknown",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "unknown_ids": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        ),
                    },
                    "400": _ERROR,
                    "422": _ERROR,
                },
            }
        },
        "/v1/models/{name}/aliases/{alias}": {
            "put": {
                "summary": "Move an alias (admin); servers follow within seconds",
                "security": [{"bearer": []}],
                "parameters": [
                    _NAME,
                    {"name": "alias", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "version": {"type": "integer"},
                                "reason": {"type": "string"},
                            },
                        }
                    ),
                },
                "responses": {
                    "200": {"description": "moved"},
                    "401": _ERROR,
                    "403": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/v1/models/{name}/explain": {
            "post": {
                "summary": "Per-feature SHAP contributions for records (sum to output - base)",
                "parameters": [_NAME],
                "requestBody": {
                    "required": True,
                    **_json({"$ref": "#/components/schemas/Records"}),
                },
                "responses": {
                    "200": {"description": "contributions, base value and output per row"},
                    "400": _ERROR,
                    "404": _ERROR,
                    "422": _ERROR,
                    "501": _ERROR,
                },
            }
        },
        "/ui": {
            "get": {
                "summary": "The live dashboard (HTML)",
                "responses": {"200": {"description": "page"}},
            }
        },
        "/ui/api/overview": {
            "get": {
                "summary": "The dashboard's data (JSON)",
                "responses": {"200": {"description": "overview"}},
            }
        },
        "/v1/models": {
            "get": {
                "summary": "Served models and versions",
                "responses": {"200": {"description": "list"}},
            }
        },
        "/v1/review": {
            "get": {
                "summary": "Low-confidence predictions awaiting review (admin: shows features)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "items"}, "401": _ERROR, "403": _ERROR},
            }
        },
        "/v1/review/{name}/{prediction_id}": {
            "post": {
                "summary": "Record a reviewer's verdict as the prediction's label (admin)",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "recorded"},
                    "401": _ERROR,
                    "403": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol v2 inference",
                "parameters": [_NAME],
                "responses": {"200": {"description": "outputs"}},
            }
        },
        "/v2/models/{name}": {
            "get": {
                "summary": "Open Inference Protocol model metadata",
                "parameters": [_NAME],
                "responses": {"200": {"description": "metadata"}},
            }
        },
        "/v2/health/live": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}
        },
        "/v2/health/ready": {
            "get": {"summary": "Readiness", "responses": {"200": {"description": "ready"}}}
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness (all models loaded)",
                "responses": {"200": {"description": "ready"}, "503": {"description": "loading"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition"}},
            }
        },
    },
}
