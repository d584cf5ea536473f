"""`GET /openapi.json`: an OpenAPI 3.0 document of every route, built from the route table
(`ROUTES`) and the fixed schemas of the bodies, with the live model's input schema as the
instance object (one property per feature, required, nullable; a feature the producer named
otherwise also has a property per alias, and exactly one of its names is required).

The schemas accept what `functions.serving` accepts: numbers within float32's range,
categorical values as strings or as numbers taken as their decimal string, and feedback
request ids of the form the feedback route checks."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.common.config.serving_view import ServingSettings
from functions.predict.feedback import REQUEST_ID
from functions.serving.model import ServingModel
from functions.serving.values import FLOAT32_MAX

_JSON = "application/json"
_BINARY = "application/octet-stream"
_BINARY_BODY = {
    "schema": {
        "type": "string",
        "format": "binary",
        "description": "The JSON inference request (Inference-Header-Content-Length bytes), "
        "then the binary tensor data of the inputs with parameters.binary_data_size, in order",
    }
}


def _error_response(description: str, schema: str = "Error") -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def instance_schema(model: ServingModel | None, serving: ServingSettings) -> dict[str, Any]:
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


def _categorical(categories: list[str] | None, serving: ServingSettings) -> dict[str, Any]:
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


def document(
    model: ServingModel | None, serving: ServingSettings, models: Sequence[str] = ()
) -> dict[str, Any]:
    """The API's document: `model` is the default model (its inputs are the `Instance` schema
    of `/v1/predict`); `models`, the configured models (the values of `{name}`)."""
    title = f"{model.name} v{model.version}" if model else "model (none promoted yet)"
    schemas = {
        "Instance": instance_schema(model, serving),
        "PredictRequest": _batch_of("instances", {"$ref": _ref("Instance")}, serving),
        "NamedPredictRequest": _batch_of("instances", {"$ref": _ref("NamedInstance")}, serving),
        **copy.deepcopy(_FIXED_SCHEMAS),
        "FeedbackRequest": _batch_of("feedback", _feedback_item("Instance"), serving),
        "NamedFeedbackRequest": _batch_of("feedback", _feedback_item("NamedInstance"), serving),
    }
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = route.operation(models)
    return {
        "openapi": "3.0.3",
        "info": {"title": f"Predict API: {title}", "version": str(model.version if model else 0)},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _ref(schema: str) -> str:
    return f"#/components/schemas/{schema}"


BAD_REQUEST = ("400", "413", "415", "422")
"""The statuses of a body the API refuses (`functions.serving`'s RequestError)."""
UNKNOWN_MODEL = "404"
NO_MODEL = "503"
INTEGRITY = NO_MODEL
ERRORS = {
    "400": "Malformed JSON",
    "413": "Body or batch too large",
    "415": "Content-Type is not JSON (v2 infer: nor application/octet-stream)",
    "422": "A field is missing, unknown or of the wrong type",
    UNKNOWN_MODEL: "Unknown model (the body lists the served ones in `models`) or version",
    INTEGRITY: "The version's file does not match its registered sha256",
    NO_MODEL: "No model is promoted yet",
}
_PARAMETERS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "description": "A configured model (GET /v1/models)"},
    "version": {"type": "integer", "minimum": 1, "description": "A registered version"},
}


@dataclass(frozen=True)
class Route:
    """One operation: its body and answer as component schemas, and its error statuses."""

    path: str
    method: str
    summary: str
    operation_id: str
    request: str | None = None
    response: str = "Object"
    errors: tuple[str, ...] = ()

    def operation(self, models: Sequence[str] = ()) -> dict[str, Any]:
        operation: dict[str, Any] = {"summary": self.summary, "operationId": self.operation_id}
        parameters = []
        for name, schema in _PARAMETERS.items():
            if f"{{{name}}}" in self.path:
                schema = dict(schema)
                if name == "name" and models:
                    schema["enum"] = list(models)
                parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        if parameters:
            operation["parameters"] = parameters
        binary = self.request == "InferRequest"
        if self.request is not None:
            content: dict[str, Any] = {_JSON: {"schema": {"$ref": _ref(self.request)}}}
            if binary:
                content[_BINARY] = _BINARY_BODY
            operation["requestBody"] = {"required": True, "content": content}
        ok = _ok({"$ref": _ref(self.response)})
        if binary:
            ok["content"][_BINARY] = {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "Outputs asked for as binary data, to a client whose "
                    "Accept header names application/octet-stream first: the JSON answer "
                    "(Inference-Header-Content-Length bytes), then their data in order",
                }
            }
        # Open Inference Protocol routes answer its error object.
        error = "InferenceError" if self.path.startswith("/v2") else "Error"
        operation["responses"] = {
            "200": ok,
            **{status: _error_response(ERRORS[status], error) for status in self.errors},
        }
        return operation


def _scoring(
    path: str,
    summary: str,
    operation_id: str,
    bodies: tuple[str, str] = ("InferRequest", "InferResponse"),
    unavailable: str = NO_MODEL,
) -> Route:
    """A POST scoring a batch with a named model: its request and response schemas, and the
    errors of an unknown model, a refused body and an unavailable version."""
    request, response = bodies
    return Route(
        path,
        "post",
        summary,
        operation_id,
        request=request,
        response=response,
        errors=(UNKNOWN_MODEL, *BAD_REQUEST, unavailable),
    )


ROUTES = (
    Route(
        "/v1/predict",
        "post",
        "Predict a batch of instances",
        "predict",
        request="PredictRequest",
        response="PredictResponse",
        errors=(*BAD_REQUEST, NO_MODEL),
    ),
    Route(
        "/v1/model",
        "get",
        "The serving model: version, input schema, classes, metrics",
        "model",
        errors=(NO_MODEL,),
    ),
    Route(
        "/v1/models",
        "get",
        "The configured models: production version and status",
        "models",
        response="ModelList",
    ),
    Route(
        "/v1/models/{name}",
        "get",
        "A model's serving version, input schema, classes, metrics",
        "namedModel",
        errors=(UNKNOWN_MODEL, NO_MODEL),
    ),
    _scoring(
        "/v1/models/{name}/predict",
        "Predict a batch of instances with the named model",
        "namedPredict",
        ("NamedPredictRequest", "PredictResponse"),
    ),
    Route(
        "/v1/models/{name}/feedback",
        "post",
        "True labels for earlier predictions of the named model",
        "namedFeedback",
        request="NamedFeedbackRequest",
        response="FeedbackResponse",
        errors=(UNKNOWN_MODEL, *BAD_REQUEST),
    ),
    Route("/v1/health", "get", "Liveness", "health"),
    Route(
        "/v1/feedback",
        "post",
        "True labels for earlier predictions (by request_id and row)",
        "feedback",
        request="FeedbackRequest",
        response="FeedbackResponse",
        errors=BAD_REQUEST,
    ),
    Route("/openapi.json", "get", "This document", "openapi"),
    Route(
        "/v2",
        "get",
        "Open Inference Protocol server metadata",
        "v2Server",
        response="ServerMetadata",
    ),
    Route("/v2/health/live", "get", "Open Inference Protocol liveness", "v2Live"),
    Route(
        "/v2/health/ready",
        "get",
        "Open Inference Protocol readiness",
        "v2Ready",
        errors=(NO_MODEL,),
    ),
    Route(
        "/v2/models/{name}",
        "get",
        "Open Inference Protocol model metadata",
        "v2Metadata",
        errors=(UNKNOWN_MODEL, NO_MODEL),
    ),
    Route(
        "/v2/models/{name}/ready",
        "get",
        "Open Inference Protocol model readiness",
        "v2ModelReady",
        errors=(UNKNOWN_MODEL, NO_MODEL),
    ),
    _scoring("/v2/models/{name}/infer", "Open Inference Protocol inference", "v2Infer"),
    Route(
        "/v2/models/{name}/versions/{version}",
        "get",
        "Open Inference Protocol metadata of a registered version",
        "v2VersionMetadata",
        errors=(UNKNOWN_MODEL, INTEGRITY),
    ),
    Route(
        "/v2/models/{name}/versions/{version}/ready",
        "get",
        "Open Inference Protocol readiness of a registered version",
        "v2VersionReady",
        errors=(UNKNOWN_MODEL, INTEGRITY),
    ),
    _scoring(
        "/v2/models/{name}/versions/{version}/infer",
        "Open Inference Protocol inference with a registered version",
        "v2VersionInfer",
        unavailable=INTEGRITY,
    ),
)
"""Every route of the API, in the document's order."""


def _batch_of(key: str, item: dict[str, Any], serving: ServingSettings) -> dict[str, Any]:
    """A body holding one list, `key`, of 1 to `max_batch_rows` items."""
    return {
        "type": "object",
        "required": [key],
        "properties": {
            key: {
                "type": "array",
                "minItems": 1,
                "maxItems": serving.max_batch_rows,
                "items": item,
            }
        },
    }


def _feedback_item(instance: str) -> dict[str, Any]:
    return {
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
            "label": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
            "features": {"$ref": _ref(instance)},
        },
    }


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_BINARY_SIZE = {
    "type": "integer",
    "minimum": 0,
    "description": "Binary tensor data extension: the tensor's data is this many bytes after "
    "the JSON (then it has no `data`)",
}
_TENSOR = _object(
    ["name", "shape", "datatype"],
    name=_STRING,
    shape={"type": "array", "items": _INTEGER},
    datatype=_STRING,
    data={"type": "array", "items": {}, "description": "Absent when the data is binary"},
    parameters={"type": "object", "properties": {"binary_data_size": _BINARY_SIZE}},
)
_REQUESTED_OUTPUT = _object(
    ["name"],
    name=_STRING,
    parameters={
        "type": "object",
        "properties": {"binary_data": {**_BOOLEAN, "description": "This output as binary data"}},
    },
)
_FIXED_SCHEMAS: dict[str, Any] = {
    "PredictResponse": _object(
        ["model_name", "model_version", "request_id", "predictions"],
        model_name=_STRING,
        model_version=_INTEGER,
        alias={
            "type": "string",
            "description": "The alias that answered: production, or candidate",
        },
        request_id=_STRING,
        predictions={"type": "array", "items": {"oneOf": [{"type": "number"}, _STRING]}},
        probabilities={"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        classes={"type": "array", "items": _STRING},
        unseen_categories={"type": "object", "additionalProperties": _INTEGER},
    ),
    "Error": _object(
        ["error", "message"],
        error=_STRING,
        message=_STRING,
        field=_STRING,
        models={
            "type": "array",
            "items": _STRING,
            "description": "model_not_found: the models this API serves",
        },
    ),
    "NamedInstance": {
        "type": "object",
        "description": "One instance of the named model: its inputs by name (GET "
        "/v1/models/{name} lists them)",
        "additionalProperties": True,
    },
    "ModelList": _object(
        ["default_model", "models"],
        default_model=_STRING,
        models={
            "type": "array",
            "items": _object(
                ["name", "default", "status", "production_version", "loaded"],
                name=_STRING,
                default={"type": "boolean"},
                status={"type": "string", "enum": ["ready", "no_model", "unavailable"]},
                production_version={**_INTEGER, "nullable": True},
                promoted_at={**_STRING, "nullable": True},
                loaded={
                    "type": "boolean",
                    "description": "Loaded in the container that answered",
                },
            ),
        },
    ),
    "FeedbackResponse": {
        "type": "object",
        "properties": {
            "stored": _INTEGER,
            "duplicates": _INTEGER,
            "unmatched": {
                "type": "integer",
                "description": "Items whose request_id has no capture (yet): stored",
            },
        },
    },
    "InferRequest": _object(
        ["inputs"],
        id=_STRING,
        inputs={"type": "array", "items": _TENSOR},
        outputs={
            "type": "array",
            "items": _REQUESTED_OUTPUT,
            "description": "The outputs to answer (every output when absent)",
        },
        parameters={
            "type": "object",
            "properties": {
                "binary_data_output": {**_BOOLEAN, "description": "Every output as binary data"}
            },
        },
    ),
    "InferenceError": _object(
        ["error", "code"],
        error={**_STRING, "description": "What is wrong (the protocol's error message)"},
        code={**_STRING, "description": "A stable code, as `error` on v1 routes"},
        field=_STRING,
        models={
            "type": "array",
            "items": _STRING,
            "description": "model_not_found: the models this API serves",
        },
    ),
    "ServerMetadata": _object(
        ["name", "version", "extensions"],
        name=_STRING,
        version=_STRING,
        extensions={"type": "array", "items": _STRING},
    ),
    "InferResponse": _object(
        ["model_name", "outputs"],
        model_name=_STRING,
        model_version=_STRING,
        id=_STRING,
        outputs={"type": "array", "items": _TENSOR},
    ),
    "Object": {"type": "object", "additionalProperties": True},
}
"""The schemas that do not depend on the model or the settings (copied into each document)."""
