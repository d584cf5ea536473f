"""Predict API: API Gateway (REST, proxy integration) in, JSON out. Routes read the body,
call one logic function and return its result; errors become JSON in one place below.

One function serves every configured model: `/v1/models/{name}/...` and `/v2/models/{name}/...`
name one, `/v1/predict` and `/v1/model` serve the default model. The default model is loaded
while the container initialises (in Lambda), so its first request does not pay for it; the
others load on their first request (`functions.predict.models`). A missing model never breaks
the import: its routes answer 503 until a version is promoted. After a SnapStart restore the
aliases are re-resolved at once.
"""

from __future__ import annotations

import gc

# Importing and loading the model create long-lived objects only, so the collector's full
# passes over a growing heap during them (10-30 % of a cold start) free nothing. It is
# switched back on at the end of this module, with those objects frozen out of its passes.
gc.disable()

import os
import re
import uuid
from typing import Any

import orjson
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.json_encoder import Encoder
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.predict import logic, openapi
from functions.predict.model_store import NoModelError, VersionNotFoundError, VersionRefusedError
from functions.predict.models import ModelNotFoundError
from functions.predict.snapstart import register_after_restore
from functions.serving.binary import (
    BINARY_MEDIA_TYPE,
    INFERENCE_HEADER_LENGTH,
    InferenceAnswer,
    InferenceBody,
    accepts_binary,
    inference_body,
)
from functions.serving.body import check_content_type, parse_json
from functions.serving.errors import RequestError, error_body

JSON = "application/json"
_ENCODER_FALLBACK = Encoder().default  # Decimal, pydantic models, ...: as Powertools does


def _dumps(document: Any) -> str:
    """Every JSON body of the API, in one pass: numpy arrays as they are, NaN and infinities
    as null (never invalid JSON)."""
    return orjson.dumps(
        document, default=_ENCODER_FALLBACK, option=orjson.OPT_SERIALIZE_NUMPY
    ).decode()


app = APIGatewayRestResolver(serializer=_dumps)


def _request_id() -> str:
    context = app.current_event.request_context
    return context.request_id or str(uuid.uuid4())


def _json_body() -> Any:
    """The request's JSON document (declared `application/json`)."""
    event = app.current_event
    check_content_type(event.headers.get("content-type"))
    return parse_json(
        event.body,
        base64_encoded=bool(event.is_base64_encoded),
        max_bytes=logic.service().serving.max_body_bytes,
    )


def _inference_body() -> InferenceBody:
    """A v2 inference request: its JSON and the binary tensor data after it."""
    event = app.current_event
    headers = event.headers
    return inference_body(
        event.body,
        base64_encoded=bool(event.is_base64_encoded),
        content_type=headers.get("content-type"),
        json_length=headers.get(INFERENCE_HEADER_LENGTH.lower()),
        max_bytes=logic.service().serving.max_body_bytes,
    )


def _infer(name: str, version: int | None) -> dict[str, Any] | Response:
    request = _inference_body()
    result = logic.infer_v2(
        name,
        request.document,
        _request_id(),
        version,
        binary=request.binary,
        binary_outputs=accepts_binary(app.current_event.headers.get("accept")),
    )
    if not isinstance(result, InferenceAnswer):
        return result
    body, json_length = result.body(_dumps)
    return Response(
        status_code=200,
        content_type=BINARY_MEDIA_TYPE,
        body=body,
        headers={INFERENCE_HEADER_LENGTH: str(json_length)},
    )


@app.post("/v1/predict")
def predict() -> dict[str, Any]:
    return logic.predict_instances(_json_body(), _request_id())


@app.get("/v1/model")
def model() -> dict[str, Any]:
    return logic.model_info()


@app.get("/v1/models")
def models() -> dict[str, Any]:
    return logic.list_models()


@app.get("/v1/models/<name>")
def named_model(name: str) -> dict[str, Any]:
    return logic.model_info(name)


@app.post("/v1/models/<name>/predict")
def named_predict(name: str) -> dict[str, Any]:
    return logic.predict_instances(_json_body(), _request_id(), name)


@app.get("/v1/health")
def health() -> dict[str, Any]:
    return logic.health()


@app.post("/v1/feedback")
def feedback() -> dict[str, Any]:
    return logic.store_feedback(_json_body())


@app.post("/v1/models/<name>/feedback")
def named_feedback(name: str) -> dict[str, Any]:
    return logic.store_feedback(_json_body(), name)


@app.get("/openapi.json")
def openapi_document() -> dict[str, Any]:
    service = logic.service()
    return openapi.document(service.store.refresh(), service.serving, service.models.names)


@app.get("/v2")
def v2_server() -> dict[str, Any]:
    return logic.server_metadata()


@app.get("/v2/health/live")
def v2_live() -> dict[str, Any]:
    return {"live": True}


@app.get("/v2/health/ready")
def v2_ready() -> Response:
    ready = logic.v2_ready()
    return Response(status_code=200 if ready else 503, content_type=JSON, body={"ready": ready})


@app.get("/v2/models/<name>")
def v2_metadata(name: str) -> dict[str, Any]:
    return logic.v2_metadata(name)


@app.get("/v2/models/<name>/ready")
def v2_model_ready(name: str) -> dict[str, Any]:
    logic.v2_metadata(name)
    return {"name": name, "ready": True}


@app.post("/v2/models/<name>/infer")
def v2_infer(name: str) -> dict[str, Any] | Response:
    return _infer(name, None)


@app.get("/v2/models/<name>/versions/<version>")
def v2_version_metadata(name: str, version: str) -> dict[str, Any]:
    return logic.v2_metadata(name, _version(version))


@app.get("/v2/models/<name>/versions/<version>/ready")
def v2_version_ready(name: str, version: str) -> dict[str, Any]:
    logic.v2_metadata(name, _version(version))
    return {"name": name, "ready": True}


@app.post("/v2/models/<name>/versions/<version>/infer")
def v2_version_infer(name: str, version: str) -> dict[str, Any] | Response:
    return _infer(name, _version(version))


def _version(text: str) -> int:
    """A version path segment: a registered version is a positive integer, written as one
    (no sign, no leading zero)."""
    if not re.fullmatch(r"[1-9][0-9]{0,7}", text):
        raise RequestError(
            404, "version_not_found", f"version {text!r} is not a version number", "version"
        )
    return int(text)


def _error(
    status: int, code: str, message: str, field: str | None = None, **details: Any
) -> Response:
    body = error_body(
        code, message, field, open_inference=app.current_event.path.startswith("/v2"), **details
    )
    try:
        with single_metric(
            name="RequestErrors",
            unit=MetricUnit.Count,
            value=1,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="error", value=code)
    except Exception:  # a metric must never turn a 4xx into a crash
        logger.debug("Could not publish the error metric", exc_info=True)
    metrics.add_metric(
        name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1
    )
    return Response(status_code=status, content_type=JSON, body=body)


@app.exception_handler(RequestError)
def request_error(error: RequestError) -> Response:
    logger.info("Request refused", extra={"error": error.code, "field": error.field})
    return _error(error.status, error.code, error.message, error.field)


@app.exception_handler(NoModelError)
def no_model(error: NoModelError) -> Response:
    return _error(503, "no_model", "no model is promoted yet")


@app.exception_handler(ModelNotFoundError)
def unknown_model(error: ModelNotFoundError) -> Response:
    return _error(404, "model_not_found", str(error), "name", models=error.available)


@app.exception_handler(VersionNotFoundError)
def unknown_version(error: VersionNotFoundError) -> Response:
    return _error(404, "version_not_found", str(error), "version")


@app.exception_handler(VersionRefusedError)
def refused_version(error: VersionRefusedError) -> Response:
    return _error(503, "model_integrity", str(error), "version")


@app.not_found
def not_found(error: NotFoundError) -> Response:
    event = app.current_event
    return _error(404, "not_found", f"no route {event.http_method} {event.path}")


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("Unexpected error")
    return _error(500, "internal_error", "the request could not be served; it was logged")


@answers_health_check
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # What `correlation_id_path=correlation_paths.API_GATEWAY_REST` sets, without a JMESPath
    # search per request.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    # Powertools keeps dimensions and metadata after an invocation that published no metric:
    # the previous request's `model` must not label this one's.
    metrics.clear_metrics()
    return app.resolve(event, context)


def _reload_after_restore() -> None:
    try:
        logic.service().models.after_restore()
    except Exception:
        logger.exception("Could not re-resolve the models after a SnapStart restore")


def _initialise() -> None:
    """Load the default model during Lambda's init phase, when the environment is complete
    (the others load on their first request)."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or not os.environ.get("DATA_BUCKET"):
        return
    try:
        logic.service().store.refresh()
    except Exception:
        logger.exception("Could not load the model at init; retrying on first request")


register_after_restore(_reload_after_restore)
_initialise()
# What init built lives as long as the container: frozen, the collector's full passes during
# requests skip it.
gc.freeze()
gc.enable()
