"""The REST API over HTTP, as `sam local start-api` serves it: moto stores API Gateway's
resources and methods but does not run Lambda proxy integrations, so this adapter does.

Routes are the deployed API's resource tree and methods (created from the template), not a
table of its own. A request becomes an API Gateway REST proxy event for the method's
integrated function (invoked through the local cloud's Lambda), and the proxy response
becomes the HTTP response. Like API Gateway: unknown paths 404, unknown methods 405, a
missing or unknown `x-api-key` on a key-required method 403, a body failing the method's
request model 400, a function error or malformed response 502. With IAM enforced (the local
cloud's default, `infra.local.authz`), a method with IAM authorization checks the request's
SigV4 signature and the signer's `execute-api:Invoke` grant on the route (403 with API
Gateway's message otherwise; the operator's key may call every route), and API Gateway's own
invocation of the function must be allowed by the function's resource-based policy (500 when
it is not, as on AWS). Throttling is not applied.

Hostile HTTP is answered in JSON, as API Gateway answers it, and never reaches a function: a
`Content-Length` that is not a byte count (`abc`, `-5`) or a malformed chunked body 400, a body
over API Gateway's 10 MB payload limit 413 (from the header alone, before it is read), a
request whose headers and body have not arrived within `read_timeout_seconds` (30 s) 408 (the
connection is then closed; an idle kept-alive connection is closed silently), a method HTTP
defines but the route does not serve (TRACE included) 405 with `Allow`, any other method 501,
and any other protocol error (a malformed request line, oversized headers) its status with a
JSON message instead of the standard library's HTML page."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.authz import principals, sigv4
from infra.local.authz.enforcer import ENFORCER
from infra.local.authz.needs import Needed

log = logging.getLogger("infra.local.api")

DEFAULT_API_PORT = 3000
MAX_BODY_BYTES = 10 * 1024 * 1024
"""API Gateway's REST payload limit (10 MB)."""
READ_TIMEOUT_SECONDS = 30.0
"""How long a request's headers and body may take to arrive."""
# Methods HTTP defines (RFC 9110, and PATCH): routed, so one a route does not serve is a 405.
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_BYTE_COUNT = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
API_GATEWAY_SERVICE = "apigateway.amazonaws.com"
_INTEGRATION_ARN = "/functions/"


@dataclass(frozen=True)
class Method:
    http_method: str
    function: str
    """ARN of the integrated function (alias or version qualified, as the template says)."""
    resource_id: str
    api_key_required: bool = False
    authorization: str = "NONE"
    body_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Route:
    resource_path: str
    """API Gateway's `resource`, e.g. `/v2/models/{name}`."""
    methods: dict[str, Method] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if `path` matches this resource, else None."""
        pattern = [part for part in self.resource_path.split("/") if part]
        parts = [part for part in path.split("/") if part]
        if pattern and pattern[-1].endswith("+}"):
            head = len(pattern) - 1
            if len(parts) <= head:
                return None
            parts = [*parts[:head], "/".join(parts[head:])]
        if len(pattern) != len(parts):
            return None
        params: dict[str, str] = {}
        for expected, actual in zip(pattern, parts, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                params[expected[1:-1].rstrip("+")] = actual
            elif expected != actual:
                return None
        return params


@dataclass
class RestApi:
    api_id: str
    stage: str
    routes: list[Route]
    api_keys: set[str]

    def find(self, path: str) -> tuple[Route, dict[str, str]] | None:
        # Literal segments win over parameters, as in API Gateway.
        matches = [
            (route, params) for route in self.routes if (params := route.match(path)) is not None
        ]
        if not matches:
            return None
        return min(matches, key=lambda match: len(match[1]))


def load_rest_api(client: Callable[[str], Any], api_id: str, stage: str) -> RestApi:
    """The API as deployed in moto: its resources, methods, integrations, models and keys."""
    apigw = client("apigateway")
    resources = apigw.get_resources(restApiId=api_id, limit=500)["items"]
    validators = {
        v["id"]: v for v in apigw.get_request_validators(restApiId=api_id).get("items", [])
    }
    routes = []
    for resource in resources:
        methods = {}
        for http_method in resource.get("resourceMethods") or {}:
            described = apigw.get_method(
                restApiId=api_id, resourceId=resource["id"], httpMethod=http_method
            )
            uri = (described.get("methodIntegration") or {}).get("uri", "")
            if _INTEGRATION_ARN not in uri:
                continue
            function = uri.split(_INTEGRATION_ARN, 1)[1].removesuffix("/invocations")
            methods[http_method] = Method(
                http_method=http_method,
                function=function,
                resource_id=resource["id"],
                api_key_required=bool(described.get("apiKeyRequired")),
                authorization=described.get("authorizationType", "NONE"),
                body_schema=_body_schema(apigw, api_id, described, validators),
            )
        if methods:
            routes.append(Route(resource["path"], methods))
    return RestApi(api_id, stage, routes, _api_keys(apigw, api_id, stage))


def _body_schema(
    apigw: Any, api_id: str, method: dict[str, Any], validators: dict[str, Any]
) -> dict[str, Any] | None:
    validator = validators.get(method.get("requestValidatorId") or "")
    model = (method.get("requestModels") or {}).get("application/json")
    if not validator or not validator.get("validateRequestBody") or not model:
        return None
    schema = apigw.get_model(restApiId=api_id, modelName=model)["schema"]
    return dict(json.loads(schema)) if isinstance(schema, str) else dict(schema)


def _api_keys(apigw: Any, api_id: str, stage: str) -> set[str]:
    """Values of the enabled keys of the usage plans that include this API's stage."""
    values = set()
    for plan in apigw.get_usage_plans().get("items", []):
        stages = plan.get("apiStages") or []
        if not any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
            continue
        for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
            described = apigw.get_api_key(apiKey=key["id"], includeValue=True)
            if described.get("enabled", True) and described.get("value"):
                values.add(described["value"])
    return values


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes


class _Refused(Exception):
    """A request refused while it is read: the status and API Gateway-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_response(status: int, body: dict[str, Any], **headers: str) -> Response:
    all_headers = {"Content-Type": ["application/json"], **{k: [v] for k, v in headers.items()}}
    return Response(status, all_headers, json.dumps(body).encode())


class ApiAdapter:
    """Serves one deployed REST API on host:port, invoking functions through `client`."""

    def __init__(
        self,
        api: RestApi,
        client: Callable[[str], Any],
        account_id: str,
        region: str = "us-east-1",
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds
        self._client = client
        self._account_id = account_id
        self._region = region
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, host: str = "127.0.0.1", port: int = DEFAULT_API_PORT) -> str:
        handler = type("Handler", (_Handler,), {"adapter": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-api", daemon=True
        )
        self._thread.start()
        bound_port = self._server.server_address[1]
        self.url = f"http://{host}:{bound_port}/"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def handle(
        self,
        http_method: str,
        raw_path: str,
        headers: dict[str, list[str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> Response:
        """One HTTP request through the API: the response API Gateway would send."""
        request_id = str(uuid.uuid4())
        url = urlsplit(raw_path)
        found = self.api.find(url.path)
        if found is None:
            return _json_response(404, {"message": "Not Found"}, **{"x-amzn-RequestId": request_id})
        route, path_parameters = found
        method = route.methods.get(http_method) or route.methods.get("ANY")
        if method is None:
            allowed = ", ".join(sorted(route.methods))
            return _json_response(
                405,
                {"message": "Method Not Allowed"},
                Allow=allowed,
                **{"x-amzn-RequestId": request_id},
            )
        lowered = {name.lower(): values for name, values in headers.items()}
        source_arn = (
            f"arn:aws:execute-api:{self._region}:{self._account_id}:{self.api.api_id}/"
            f"{self.api.stage}/{http_method}{url.path}"
        )
        caller: dict[str, Any] = {}
        if method.authorization == "AWS_IAM" and ENFORCER.enabled:
            refused = self._authorize_caller(
                http_method, raw_path, lowered, body, source_arn, caller
            )
            if refused is not None:
                refused.headers["x-amzn-RequestId"] = [request_id]
                return refused
        api_key = (lowered.get("x-api-key") or [""])[-1]
        if method.api_key_required and api_key not in self.api.api_keys:
            return _json_response(403, {"message": "Forbidden"}, **{"x-amzn-RequestId": request_id})
        if method.body_schema is not None and not _valid_body(body, method.body_schema):
            return _json_response(
                400, {"message": "Invalid request body"}, **{"x-amzn-RequestId": request_id}
            )
        event = self._event(
            route, method, url.path, url.query, headers, body, path_parameters, request_id
        )
        event["requestContext"]["identity"].update(
            {"sourceIp": source_ip, "apiKey": api_key or None, **caller}
        )
        if ENFORCER.enabled:
            denial = ENFORCER.authorize(
                principals.service(API_GATEWAY_SERVICE, self._account_id),
                [Needed("lambda:InvokeFunction", method.function)],
                "lambda.Invoke",
                source_arn=source_arn,
            )
            if denial is not None:
                log.error("%s %s: API Gateway may not invoke %s", http_method, url.path, denial)
                return _json_response(
                    500, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
                )
        return self._invoke(method, event, request_id)

    def _authorize_caller(
        self,
        http_method: str,
        raw_path: str,
        headers: dict[str, list[str]],
        body: bytes,
        resource: str,
        caller: dict[str, Any],
    ) -> Response | None:
        """Check the SigV4 signature and the signer's execute-api:Invoke grant on the route;
        the refusal API Gateway sends, or None (and `caller` filled with who it is)."""
        single = {name: values[-1] for name, values in headers.items()}
        host = single.get("host", "localhost")
        account = self._account_id
        verified = sigv4.verify(
            http_method,
            f"http://{host}{raw_path}",
            single,
            body,
            "execute-api",
            lambda key: principals.secret_for(key, account),
        )
        if isinstance(verified, sigv4.Rejected):
            return _json_response(
                403, {"message": verified.message}, **{"x-amzn-ErrorType": verified.error_type}
            )
        principal = principals.from_access_key(verified.access_key, account)
        caller.update({"accessKey": verified.access_key, "accountId": account})
        if principal is None:
            caller.update(
                {"caller": verified.access_key, "userArn": f"arn:aws:iam::{account}:root"}
            )
            return None
        caller.update(
            {"caller": principal.identity, "userArn": principal.arn, "user": principal.label}
        )
        denial = ENFORCER.authorize(
            principal, [Needed("execute-api:Invoke", resource)], "execute-api.Invoke"
        )
        if denial is None:
            return None
        masked = resource.replace(f":{account}:", f":********{account[-4:]}:", 1)
        message = denial.message.replace(resource, masked)
        return _json_response(
            403, {"Message": message}, **{"x-amzn-ErrorType": "AccessDeniedException"}
        )

    def _event(
        self,
        route: Route,
        method: Method,
        path: str,
        query: str,
        headers: dict[str, list[str]],
        body: bytes,
        path_parameters: dict[str, str],
        request_id: str,
    ) -> dict[str, Any]:
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        text, is_base64 = _body_text(body)
        now = time.time()
        user_agent = next((v[-1] for k, v in headers.items() if k.lower() == "user-agent"), None)
        return {
            "resource": route.resource_path,
            "path": path,
            "httpMethod": method.http_method,
            "headers": {name: values[-1] for name, values in headers.items()} or None,
            "multiValueHeaders": dict(headers) or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": self.api.api_id,
                "resourceId": method.resource_id,
                "resourcePath": route.resource_path,
                "httpMethod": method.http_method,
                "path": f"/{self.api.stage}{path}",
                "stage": self.api.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "protocol": "HTTP/1.1",
                "domainName": "localhost",
                "identity": {
                    "sourceIp": "127.0.0.1",
                    "userAgent": user_agent,
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "apiKey": None,
                },
            },
            "body": text,
            "isBase64Encoded": is_base64,
        }

    def _invoke(self, method: Method, event: dict[str, Any], request_id: str) -> Response:
        response = self._client("lambda").invoke(
            FunctionName=method.function, Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            log.warning(
                "%s %s: function error %s", method.http_method, event["path"], payload[:500]
            )
            return _json_response(
                502, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
            )
        try:
            return _proxy_response(json.loads(payload), request_id)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "%s %s: malformed proxy response: %s", method.http_method, event["path"], exc
            )
            return _json_response(
                502, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
            )


class _Handler(BaseHTTPRequestHandler):
    """One connection to the adapter (`adapter` is set on a subclass per adapter)."""

    adapter: ApiAdapter
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, a kept-alive
    # client waits for the delayed ACK before the body.
    disable_nagle_algorithm = True

    def handle_one_request(self) -> None:
        # The whole request (headers and body) must arrive within the read timeout:
        # past it, reading is shut down, so a blocked read returns at once.
        self._expired = threading.Event()
        timer = threading.Timer(self.adapter.read_timeout_seconds, self._expire)
        timer.daemon = True
        self._timer = timer
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self._expired.set()
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _serve(self) -> None:
        try:
            if self.command not in HTTP_METHODS:
                raise _Refused(501, f"Method {self.command} is not implemented")
            body = self._body()
        except _Refused as refused:
            self.close_connection = True
            self._send(_json_response(refused.status, {"message": refused.message}))
            return
        self._timer.cancel()
        if self._expired.is_set():
            self.close_connection = True
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name, []).append(value)
        response = self.adapter.handle(
            self.command, self.path, headers, body, self.client_address[0]
        )
        self._send(response)

    def _body(self) -> bytes:
        """The request body, or `_Refused` with what API Gateway would answer."""
        if self._expired.is_set():
            raise self._timed_out()
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked()
        lengths = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if not lengths:
            return b""
        if len(lengths) > 1 or not _BYTE_COUNT.fullmatch(value := lengths.pop()):
            shown = ", ".join(sorted(lengths)) if len(lengths) > 1 else value
            raise _Refused(400, f"Content-Length must be a byte count (digits), not {shown!r}")
        length = int(value)
        self._check_size(length)
        return self._exactly(length)

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                if self._expired.is_set() or not line:
                    raise self._timed_out()
                raise _Refused(400, f"malformed chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            self._check_size(len(body) + size)
            body += self._exactly(size)
            self.rfile.readline(1024)

    def _check_size(self, length: int) -> None:
        if length > self.adapter.max_body_bytes:
            raise _Refused(
                413,
                f"Request body too large: {length:,} bytes; the limit is "
                f"{self.adapter.max_body_bytes:,}",
            )

    def _exactly(self, length: int) -> bytes:
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            raise self._timed_out()
        return data

    def _timed_out(self) -> _Refused:
        return _Refused(
            408,
            "Request Timeout: the request did not arrive within "
            f"{self.adapter.read_timeout_seconds:g} s",
        )

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, values in response.headers.items():
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors the standard library finds (a malformed request line,
        oversized headers, an unsupported HTTP version) as JSON, not HTML."""
        self.close_connection = True
        if self._expired.is_set():
            refused = self._timed_out()
            code, message = refused.status, refused.message
        if not self.request_version or self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        text = message or self.responses.get(code, ("Error",))[0]
        self._send(_json_response(code, {"message": text}))

    def __getattr__(self, name: str) -> Any:
        # Every method reaches `_serve`: unknown ones get a JSON 501 there.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _valid_body(body: bytes, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(body or b"null"), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _body_text(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _proxy_response(result: Any, request_id: str) -> Response:
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError(f"not a Lambda proxy response: {str(result)[:200]}")
    headers: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        headers[name] = [str(value)]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = [str(value) for value in values]
    headers.setdefault("x-amzn-RequestId", [request_id])
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return Response(result["statusCode"], headers, data)
