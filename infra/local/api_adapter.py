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
it is not, as on AWS). Binary bodies follow API Gateway's rules for Lambda proxy
integrations: a request body reaches the function base64-encoded (`isBase64Encoded`) exactly
when its Content-Type (application/json when missing) matches one of the API's
`binaryMediaTypes`, otherwise as UTF-8 text with every byte sequence that is not UTF-8
replaced by U+FFFD; a base64-encoded answer is decoded to bytes only when the first media
type of the request's Accept header matches one, otherwise sent as its base64 text. Throttling
is not applied. The routes come from
`infra.local.api_routes`; hostile HTTP is answered by `infra.local.api_http`."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.api_http import (
    MAX_BODY_BYTES,
    READ_TIMEOUT_SECONDS,
    RequestHandler,
    Response,
    json_response,
)
from infra.local.api_routes import Method, RestApi, Route
from infra.local.authz import principals, sigv4
from infra.local.authz.enforcer import ENFORCER
from infra.local.authz.needs import Needed

log = logging.getLogger("infra.local.api")

DEFAULT_API_PORT = 3000
DEFAULT_MEDIA_TYPE = "application/json"
"""What API Gateway takes a request without Content-Type to be."""
API_GATEWAY_SERVICE = "apigateway.amazonaws.com"


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
        handler = type("Handler", (RequestHandler,), {"adapter": self})
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
            return json_response(404, {"message": "Not Found"}, **{"x-amzn-RequestId": request_id})
        route, path_parameters = found
        method = route.methods.get(http_method) or route.methods.get("ANY")
        if method is None:
            allowed = ", ".join(sorted(route.methods))
            return json_response(
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
            return json_response(403, {"message": "Forbidden"}, **{"x-amzn-RequestId": request_id})
        if method.body_schema is not None and not _valid_body(body, method.body_schema):
            return json_response(
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
                return json_response(
                    500, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
                )
        accept = (lowered.get("accept") or [""])[0].split(",", 1)[0]
        return self._invoke(method, event, request_id, binary_answer=self.api.is_binary(accept))

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
            return json_response(
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
        return json_response(
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
        content_type = next(
            (v[-1] for k, v in headers.items() if k.lower() == "content-type"), None
        )
        text, is_base64 = _body_text(body, self.api.is_binary(content_type or DEFAULT_MEDIA_TYPE))
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

    def _invoke(
        self, method: Method, event: dict[str, Any], request_id: str, *, binary_answer: bool
    ) -> Response:
        response = self._client("lambda").invoke(
            FunctionName=method.function, Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            log.warning(
                "%s %s: function error %s", method.http_method, event["path"], payload[:500]
            )
            return json_response(
                502, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
            )
        try:
            return _proxy_response(json.loads(payload), request_id, binary=binary_answer)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "%s %s: malformed proxy response: %s", method.http_method, event["path"], exc
            )
            return json_response(
                502, {"message": "Internal server error"}, **{"x-amzn-RequestId": request_id}
            )


def _valid_body(body: bytes, schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(body or b"null"), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _body_text(body: bytes, binary: bool) -> tuple[str | None, bool]:
    """The event's `body` and `isBase64Encoded`: base64 for a binary media type, else text
    (bytes that are not UTF-8 replaced, as API Gateway passes them)."""
    if not body:
        return None, False
    if binary:
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8", errors="replace"), False


def _proxy_response(result: Any, request_id: str, *, binary: bool) -> Response:
    """The HTTP response of a proxy integration's answer: a base64-encoded body is decoded
    when the client's Accept names a binary media type first (`binary`), else sent as is."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError(f"not a Lambda proxy response: {str(result)[:200]}")
    headers: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        headers[name] = [str(value)]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = [str(value) for value in values]
    headers.setdefault("x-amzn-RequestId", [request_id])
    body = result.get("body") or ""
    encoded = bool(result.get("isBase64Encoded"))
    data = base64.b64decode(body) if encoded and binary else str(body).encode()
    return Response(result["statusCode"], headers, data)
