"""Predict API: API Gateway (REST, proxy integration) in, JSON out. Routes read the body,
call one logic function and return its result; errors become JSON in one place below.

One function serves every configured model: `/v1/models/{name}/...` and `/v2/models/{name}/...`
name one, `/v1/predict` and `/v1/model` serve the default model. The default model is loaded
while the container initialises (in Lambda), so its first request does not pay for it; the
others load on their first request (`functions.predict.models`). A missing model never breaks
the import: its routes answer 503 until a version is promoted. After a SnapStart restore the
aliases are re-resolved at once.

The hot path is lean: `POST /v1/predict`, `POST /v1/models/{name}/predict`, `POST
/v2/models/{name}/infer` and `POST /v2/models/{name}/versions/{v}/infer` are matched by one
regular expression in `lambda_handler` and call their logic function directly, skipping the
Powertools resolver (its event wrappers, route walk and response builder), with the same
answers, errors and logs. Every other request goes through the resolver. Request metrics are
one EMF line per request (`RequestMetrics`), on both paths.
"""

from __future__ import annotations

import gc

# Importing and loading the model create long-lived objects only, so the collector's full
# passes over a growing heap during them (10-30 % of a cold start) free nothing. It is
# switched back on at the end of this module, with those objects frozen out of its passes.
gc.disable()

import base64
import os
import re
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson
from aws_lambda_powertools.logging.logger import _is_cold_start
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.json_encoder import Encoder

from functions.common.health import answers_health_check
from functions.common.observability import logger
from functions.common.observability import request_metrics as metrics
from functions.predict import prefetch

# In Lambda's init, the default model's registry and bucket reads start now, so that their
# waits overlap the imports of numpy and onnxruntime below (`functions.predict.prefetch`).
prefetch.start()

from functions.predict import logic
from functions.predict.model_store import NoModelError, VersionNotFoundError, VersionRefusedError
from functions.predict.models import ModelNotFoundError
from functions.predict.snapstart import register_after_restore
from functions.serving.binary import (
    BINARY_MEDIA_TYPE,
    INFERENCE_HEADER_LENGTH,
    InferenceAnswer,
    accepts_binary,
    inference_body,
)
from functions.serving.body import check_content_type, parse_json
from functions.serving.errors import RequestError, error_body

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError
    from aws_lambda_powertools.utilities.typing import LambdaContext
else:

    def Response(**fields: Any) -> Any:  # noqa: N802 - what Powertools' class is called
        """Powertools' `Response`, its module imported on first use (see `_Routes`)."""
        from aws_lambda_powertools.event_handler import Response as PowertoolsResponse

        return PowertoolsResponse(**fields)


JSON = "application/json"
_ENCODER_FALLBACK = Encoder().default  # Decimal, pydantic models, ...: as Powertools does


def _dumps(document: Any) -> str:
    """Every JSON body of the API, in one pass: numpy arrays as they are, NaN and infinities
    as null (never invalid JSON)."""
    return orjson.dumps(
        document, default=_ENCODER_FALLBACK, option=orjson.OPT_SERIALIZE_NUMPY
    ).decode()


class _Routes:
    """The Powertools resolver of every route but the hot path's, built on first use.

    Importing Powertools' event handler imports every resolver it has (AppSync, Bedrock,
    VPC Lattice, ...): a tenth of the function's cold start, which the hot path never uses.
    The route and error-handler decorators below are recorded at import and registered, in
    the same order, on the real resolver when the first request that needs it arrives."""

    def __init__(self) -> None:
        self._registrations: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = []
        self._resolver: APIGatewayRestResolver | None = None

    @property
    def resolver(self) -> APIGatewayRestResolver:
        if self._resolver is None:
            from aws_lambda_powertools.event_handler import APIGatewayRestResolver

            resolver = APIGatewayRestResolver(serializer=_dumps)
            for method, args, kwargs, func in self._registrations:
                self._register(resolver, method, args, kwargs, func)
            self._resolver = resolver
        return self._resolver

    @staticmethod
    def _register(
        resolver: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], func: Any
    ) -> None:
        if method == "not_found":
            resolver.not_found(func)
        else:
            getattr(resolver, method)(*args, **kwargs)(func)

    def _recorded(self, method: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        def register(func: Any) -> Any:
            self._registrations.append((method, args, kwargs, func))
            if self._resolver is not None:
                self._register(self._resolver, method, args, kwargs, func)
            return func

        return register

    def get(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return self._recorded("get", *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return self._recorded("post", *args, **kwargs)

    def exception_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return self._recorded("exception_handler", *args, **kwargs)

    def not_found(self, func: Any) -> Any:
        return self._recorded("not_found")(func)

    @property
    def current_event(self) -> Any:
        return self.resolver.current_event

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return self.resolver.resolve(event, context)


app = _Routes()


def _request_id() -> str:
    return _event_request_id(app.current_event.raw_event)


def _event_request_id(event: Mapping[str, Any]) -> str:
    return (event.get("requestContext") or {}).get("requestId") or str(uuid.uuid4())


def _json_body() -> Any:
    return _document(app.current_event.raw_event)


def _header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header by its lower-case `name`, whatever the case it was sent in."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value  # type: ignore[no-any-return]
    return None


def _document(event: Mapping[str, Any]) -> Any:
    """The request's JSON document (declared `application/json`)."""
    check_content_type(_header(event, "content-type"))
    return parse_json(
        event.get("body"),
        base64_encoded=bool(event.get("isBase64Encoded")),
        max_bytes=logic.service().serving.max_body_bytes,
    )


_INFERENCE_HEADER = INFERENCE_HEADER_LENGTH.lower()


def _infer_event(
    event: Mapping[str, Any], name: str, version: int | None, request_id: str
) -> dict[str, Any] | InferenceAnswer:
    """A v2 inference request (its JSON and the binary tensor data after it) answered: JSON,
    or an `InferenceAnswer` with binary outputs when the client accepts them."""
    request = inference_body(
        event.get("body"),
        base64_encoded=bool(event.get("isBase64Encoded")),
        content_type=_header(event, "content-type"),
        json_length=_header(event, _INFERENCE_HEADER),
        max_bytes=logic.service().serving.max_body_bytes,
    )
    return logic.infer_v2(
        name,
        request.document,
        request_id,
        version,
        binary=request.binary,
        binary_outputs=accepts_binary(_header(event, "accept")),
    )


def _infer(name: str, version: int | None) -> dict[str, Any] | Response:
    result = _infer_event(app.current_event.raw_event, name, version, _request_id())
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
    from functions.predict import openapi  # only this route needs it

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
    body = error_body(code, message, field, open_inference=_OPEN_INFERENCE.get(), **details)
    try:
        metrics.single_metric("RequestErrors", MetricUnit.Count, 1, {"error": code})
    except Exception:  # a metric must never turn a 4xx into a crash
        logger.debug("Could not publish the error metric", exc_info=True)
    metrics.add_metric(
        name="ClientErrors" if status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1
    )
    return Response(status_code=status, content_type=JSON, body=body)


_OPEN_INFERENCE: ContextVar[bool] = ContextVar("open_inference", default=False)
"""Whether the request being answered is an Open Inference Protocol one (`/v2...`): its
errors take the protocol's shape (`functions.serving.errors.error_body`)."""

_HANDLERS: dict[type[BaseException], Callable[[Any], Response]] = {}


def _handles(kind: type[Exception]) -> Callable[[Callable[[Any], Response]], Any]:
    """Register an error handler with the resolver and for the lean routes alike."""

    def register(handler: Callable[[Any], Response]) -> Any:
        _HANDLERS[kind] = handler
        return app.exception_handler(kind)(handler)

    return register


@_handles(RequestError)
def request_error(error: RequestError) -> Response:
    logger.info("Request refused", extra={"error": error.code, "field": error.field})
    return _error(error.status, error.code, error.message, error.field)


@_handles(NoModelError)
def no_model(error: NoModelError) -> Response:
    return _error(503, "no_model", "no model is promoted yet")


@_handles(ModelNotFoundError)
def unknown_model(error: ModelNotFoundError) -> Response:
    return _error(404, "model_not_found", str(error), "name", models=error.available)


@_handles(VersionNotFoundError)
def unknown_version(error: VersionNotFoundError) -> Response:
    return _error(404, "version_not_found", str(error), "version")


@_handles(VersionRefusedError)
def refused_version(error: VersionRefusedError) -> Response:
    return _error(503, "model_integrity", str(error), "version")


@app.not_found
def not_found(error: NotFoundError) -> Response:
    event = app.current_event
    return _error(404, "not_found", f"no route {event.http_method} {event.path}")


@_handles(Exception)
def unexpected(error: Exception) -> Response:
    logger.exception("Unexpected error")
    return _error(500, "internal_error", "the request could not be served; it was logged")


_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"
"""A path parameter as the resolver matches it (Powertools' pattern for `<name>`)."""
_LEAN_ROUTE = re.compile(
    rf"^/v(?:1/(?:predict|models/(?P<v1>{_SEGMENT})/predict)"
    rf"|2/models/(?P<v2>{_SEGMENT})/(?:versions/(?P<version>{_SEGMENT})/)?infer)$"
)
"""The hot path: `POST /v1/predict`, `/v1/models/{name}/predict`, `/v2/models/{name}/infer`
and `/v2/models/{name}/versions/{version}/infer`."""


def _lean(event: dict[str, Any], context: LambdaContext, route: re.Match[str]) -> dict[str, Any]:
    """A hot-path request, answered as the resolver would answer it (same body, status,
    headers, logs and metrics) without building its event wrappers and response objects."""
    request_id = _event_request_id(event)
    _log_context(context, (event.get("requestContext") or {}).get("requestId"))
    try:
        v2 = route["v2"]
        if v2 is None:
            result = logic.predict_instances(_document(event), request_id, route["v1"])
        else:
            version = route["version"]
            answer = _infer_event(
                event, v2, None if version is None else _version(version), request_id
            )
            if isinstance(answer, InferenceAnswer):
                return _binary_response(answer)
            result = answer
        return _proxy_response(200, result)
    except Exception as error:
        response = _handler_of(error)(error)
        return _proxy_response(response.status_code, response.body)
    finally:
        metrics.flush_metrics()


def _handler_of(error: Exception) -> Callable[[Any], Response]:
    """The error's handler: the one of its class or of its nearest base class, as the
    resolver looks it up."""
    for kind in type(error).__mro__:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler
    return unexpected


def _proxy_response(status: int, body: Any) -> dict[str, Any]:
    """The proxy integration's answer, as the resolver builds it for a JSON body."""
    return {
        "statusCode": status,
        "body": _dumps(body),
        "isBase64Encoded": False,
        "multiValueHeaders": {"Content-Type": [JSON]},
    }


def _binary_response(answer: InferenceAnswer) -> dict[str, Any]:
    """A v2 answer with binary outputs, as the resolver builds it for a bytes body."""
    body, json_length = answer.body(_dumps)
    return {
        "statusCode": 200,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
        "multiValueHeaders": {
            "Content-Type": [BINARY_MEDIA_TYPE],
            INFERENCE_HEADER_LENGTH: [str(json_length)],
        },
    }


def _log_context(context: LambdaContext, correlation_id: str | None) -> None:
    """The keys `logger.inject_lambda_context` adds to every log line of the invocation, and
    the correlation id `correlation_paths.API_GATEWAY_REST` would set."""
    logger.append_keys(
        cold_start=_is_cold_start(),
        function_name=context.function_name,
        function_memory_size=context.memory_limit_in_mb,
        function_arn=context.invoked_function_arn,
        function_request_id=context.aws_request_id,
    )
    logger.set_correlation_id(correlation_id)


@answers_health_check
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The previous request's metrics (its `model` dimension) never label this one's.
    metrics.clear_metrics()
    path = event.get("path")
    _OPEN_INFERENCE.set(type(path) is str and (path == "/v2" or path.startswith("/v2/")))
    if type(path) is str and event.get("httpMethod") == "POST":
        route = _LEAN_ROUTE.match(path)
        if route is not None:
            return _lean(event, context, route)
    _log_context(context, (event.get("requestContext") or {}).get("requestId"))
    try:
        return app.resolve(event, context)
    finally:
        metrics.flush_metrics()


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
    finally:
        prefetch.discard()


register_after_restore(_reload_after_restore)
_initialise()
# What init built lives as long as the container: frozen, the collector's full passes during
# requests skip it.
gc.freeze()
gc.enable()
