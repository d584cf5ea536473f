"""`GET /openapi.json`: an OpenAPI 3.0 document of every route, with the live model's input
schema as the instance object (one property per feature, required, nullable; a feature the
producer named otherwise also has a property per alias, and exactly one of its names is
required).

The schemas accept what `functions.predict.validation` accepts: numbers within float32's range,
categorical values as strings or as numbers taken as their decimal string, and feedback
request ids of the form the feedback route checks."""

from __future__ import annotations

import math
from typing import Any

from functions.common.config.serving import ServingConfig
from functions.predict.feedback import _REQUEST_ID as REQUEST_ID
from functions.predict.model_store import ServingModel
from functions.predict.validation import FLOAT32_MAX

_JSON = "application/json"


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def instance_schema(model: ServingModel | None, serving: ServingConfig) -> dict[str, Any]:
    if model is None:
        return {"type": "object", "description": "No model is promoted yet."}
    properties: dict[str, Any] = {}
    required: list[str] = []
    anyone: list[dict[str, Any]] = []  # a feature with aliases: exactly one of its names
    for spec in model.signature["inputs"]:
        if spec["type"] == "categorical":
            schema = _categorical(spec.get("categories"), serving)
        else:
            schema = {
                "type": "number",
                "format": "float",
                "nullable": True,
                "minimum": -FLOAT32_MAX,
                "maximum": FLOAT32_MAX,
                "description": "numeric feature; null means missing (imputed)",
            }
        properties[spec["name"]] = schema
        aliases = list(spec.get("aliases") or [])
        for alias in aliases:
            properties[alias] = {
                **schema,
                "description": f"{spec['name']!r} under the producer's column name",
            }
        if aliases:
            anyone.append({"oneOf": [{"required": [name]} for name in [spec["name"], *aliases]]})
        else:
            required.append(spec["name"])
    document: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:  # OpenAPI 3.0: never an empty list
        document["required"] = required
    if anyone:
        document["allOf"] = anyone
    return document


def _categorical(categories: list[str] | None, serving: ServingConfig) -> dict[str, Any]:
    """A string; a number is taken as its decimal string (`7` -> `"7"`). With unseen
    categories refused, only the training categories (and the numbers spelling one)."""
    text: dict[str, Any] = {"type": "string", "nullable": True}
    number: dict[str, Any] | None = {"type": "number"}
    if serving.unseen_categories == "reject" and categories:
        text["enum"] = [*categories, "", None]
        spelled = [value for value in map(_number, categories) if value is not None]
        number = {"type": "number", "enum": spelled} if spelled else None
    return {
        "anyOf": [text, number] if number else [text],
        "description": "categorical feature: a string (an integer or finite number is "
        'taken as its decimal string, 7 -> "7"); null or "" means missing (imputed)',
    }


def _number(category: str) -> int | float | None:
    """The JSON number whose decimal string is `category`, if there is one."""
    for parse in (int, float):
        try:
            value = parse(category)
        except ValueError:
            continue
        if str(value) == category and math.isfinite(value):
            return value
    return None


def document(model: ServingModel | None, serving: ServingConfig) -> dict[str, Any]:
    title = f"{model.name} v{model.version}" if model else "model (none promoted yet)"
    number_or_string = {"oneOf": [{"type": "number"}, {"type": "string"}]}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array", "items": {}},
        },
    }
    schemas = {
        "Instance": instance_schema(model, serving),
        "PredictRequest": {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": serving.max_batch_rows,
                    "items": {"$ref": "#/components/schemas/Instance"},
                }
            },
        },
        "PredictResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "request_id", "predictions"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "integer"},
                "alias": {
                    "type": "string",
                    "description": "The alias that answered: production, or candidate",
                },
                "request_id": {"type": "string"},
                "predictions": {"type": "array", "items": number_or_string},
                "probabilities": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}},
                },
                "classes": {"type": "array", "items": {"type": "string"}},
                "unseen_categories": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        },
        "FeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {
                "feedback": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": serving.max_batch_rows,
                    "items": {
                        "type": "object",
                        "required": ["request_id", "row", "label"],
                        "properties": {
                            "request_id": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 128,
                                "pattern": REQUEST_ID.pattern,
                            },
                            "row": {"type": "integer", "minimum": 0},
                            "label": {
                                "oneOf": [
                                    {"type": "string"},
                                    {"type": "number"},
                                    {"type": "boolean"},
                                ]
                            },
                            "features": {"$ref": "#/components/schemas/Instance"},
                        },
                    },
                }
            },
        },
        "FeedbackResponse": {
            "type": "object",
            "properties": {
                "stored": {"type": "integer"},
                "duplicates": {"type": "integer"},
                "unmatched": {
                    "type": "integer",
                    "description": "Items whose request_id has no capture (yet): stored",
                },
            },
        },
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": tensor}},
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": tensor},
            },
        },
        "Object": {"type": "object", "additionalProperties": True},
    }
    bad = {
        "400": _error_response("Malformed JSON"),
        "413": _error_response("Body or batch too large"),
        "415": _error_response("Content-Type is not JSON"),
        "422": _error_response("A field is missing, unknown or of the wrong type"),
    }
    unavailable = {"503": _error_response("No model is promoted yet")}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    obj = {"$ref": "#/components/schemas/Object"}

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, "content": {_JSON: {"schema": {"$ref": ref}}}}

    paths = {
        "/v1/predict": {
            "post": {
                "summary": "Predict a batch of instances",
                "operationId": "predict",
                "requestBody": body("#/components/schemas/PredictRequest"),
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/PredictResponse"}),
                    **bad,
                    **unavailable,
                },
            }
        },
        "/v1/model": {
            "get": {
                "summary": "The serving model: version, input schema, classes, metrics",
                "operationId": "model",
                "responses": {"200": _ok(obj), **unavailable},
            }
        },
        "/v1/health": {
            "get": {"summary": "Liveness", "operationId": "health", "responses": {"200": _ok(obj)}}
        },
        "/v1/feedback": {
            "post": {
                "summary": "True labels for earlier predictions (by request_id and row)",
                "operationId": "feedback",
                "requestBody": body("#/components/schemas/FeedbackRequest"),
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/FeedbackResponse"}),
                    **bad,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": _ok(obj)},
            }
        },
        "/v2/health/live": {
            "get": {
                "summary": "Open Inference Protocol liveness",
                "operationId": "v2Live",
                "responses": {"200": _ok(obj)},
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Open Inference Protocol readiness",
                "operationId": "v2Ready",
                "responses": {"200": _ok(obj), **unavailable},
            }
        },
        "/v2/models/{name}": {
            "get": {
                "summary": "Open Inference Protocol model metadata",
                "operationId": "v2Metadata",
                "parameters": [name_param],
                "responses": {
                    "200": _ok(obj),
                    "404": _error_response("Unknown model"),
                    **unavailable,
                },
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                "summary": "Open Inference Protocol model readiness",
                "operationId": "v2ModelReady",
                "parameters": [name_param],
                "responses": {
                    "200": _ok(obj),
                    "404": _error_response("Unknown model"),
                    **unavailable,
                },
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                "summary": "Open Inference Protocol inference",
                "operationId": "v2Infer",
                "parameters": [name_param],
                "requestBody": body("#/components/schemas/InferRequest"),
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/InferResponse"}),
                    "404": _error_response("Unknown model"),
                    **bad,
                    **unavailable,
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"Predict API: {title}", "version": str(model.version if model else 0)},
        "paths": paths,
        "components": {"schemas": schemas},
    }
