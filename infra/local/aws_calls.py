"""Which AWS API operation an HTTP request to the local cloud is, read as AWS reads it.

The service comes from the request's SigV4 credential scope (`.../us-east-1/s3/aws4_request`:
its signing name), the operation from what the service's protocol puts on the wire: the
`X-Amz-Target` header (JSON protocols), the `Action` parameter (query protocols), or, for REST
protocols (S3, Lambda, API Gateway), the method and path matched against every operation's
`requestUri` in botocore's service model, the one whose required header and query members are
present winning (S3's PutObject, CopyObject and UploadPart share `PUT /{Bucket}/{Key+}`).

Names follow botocore's event names (`s3.PutObject`, `dynamodb.PutItem`, `lambda.Invoke`,
`sfn.StartExecution`, `eventbridge.PutEvents`), so a fault or a check written against a boto3
call names it the same way whoever makes the call (a test, a function worker, the Step
Functions interpreter).

The call also carries who signed it (the access key id in the credential scope) and its
parameters as the operation's input members: the path labels, query string and headers a REST
operation binds, the JSON body of a JSON protocol, the form of a query protocol (what
authorization needs: a bucket and key, a table and its keys, a function name).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

_SCOPE = re.compile(
    r"Credential=(?P<key>[^/,\s]+)/\d{8}/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)/aws4_request"
)
# Signing names whose botocore service name differs.
_SERVICE_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch", "execute-api": ""}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class AwsCall:
    service: str
    """botocore's event name for the service: `s3`, `dynamodb`, `sfn`, `eventbridge`, ..."""
    operation: str
    access_key: str = ""
    """Who signed it: the access key id of the credential scope."""
    region: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    """The operation's input members found in the request (see the module's docstring)."""
    body: bytes = field(default=b"", compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"


def classify(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> AwsCall | None:
    """The operation of one request (`headers` with lower-case names), or None when it is
    not a signed AWS API request this machine's botocore knows."""
    match = _SCOPE.search(headers.get("authorization", ""))
    if match is None:
        return None
    signing = match.group("service")
    name = _SERVICE_NAMES.get(signing, signing)
    model = _model(name) if name else None
    if model is None:
        return None
    signed: dict[str, Any] = {
        "access_key": match.group("key"),
        "region": match.group("region"),
        "body": body,
    }
    service = model.service_id.hyphenize()
    protocol = model.metadata.get("protocol", "")
    if protocol == "json" or "x-amz-target" in headers:
        target = headers.get("x-amz-target", "")
        if not target:
            return None
        return AwsCall(service, target.rpartition(".")[2], params=_json(body), **signed)
    if protocol in ("query", "ec2"):
        parameters = parse_qs(query)
        if not parameters.get("Action"):
            parameters = parse_qs(body.decode("utf-8", errors="replace"))
        action = (parameters.get("Action") or [""])[0]
        if not action:
            return None
        form = {key: values[0] for key, values in parameters.items()}
        return AwsCall(service, action, params=form, **signed)
    if service == "s3":
        path = _path_style(path, headers.get("host", ""))
    found = _route(name, method, path, query, headers)
    if found is None:
        return None
    route, labels = found
    params = _rest_params(name, route.operation, labels, query, headers)
    if body and model.metadata.get("protocol") == "rest-json":
        params.update({k: v for k, v in _json(body).items() if k not in params})
    return AwsCall(service, route.operation, params=params, **signed)


_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+?)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?::\d+)?$")


def _path_style(path: str, host: str) -> str:
    """An S3 request addressed to `<bucket>.s3.amazonaws.com` as if the bucket were the
    path's first segment (the routes are written path-style)."""
    match = _VIRTUAL_HOST.match(host.lower())
    return f"/{match.group('bucket')}{path}" if match else path


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _rest_params(
    name: str, operation: str, labels: dict[str, str], query: str, headers: dict[str, str]
) -> dict[str, Any]:
    """A REST operation's members bound to its path labels, query string and headers."""
    shape = _model(name).operation_model(operation).input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    parameters = parse_qs(query, keep_blank_values=True)
    for member, member_shape in shape.members.items():
        location = member_shape.serialization.get("location")
        where = member_shape.serialization.get("name", member)
        if location == "uri" and _group(where) in labels:
            params[member] = unquote(labels[_group(where)])
        elif location == "querystring" and where in parameters:
            params[member] = parameters[where][0]
        elif location == "header" and where.lower() in headers:
            params[member] = headers[where.lower()]
    return params


@functools.lru_cache(maxsize=64)
def _model(name: str) -> Any:
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    with _LOCK:
        try:
            return botocore.session.get_session().get_service_model(name)
        except UnknownServiceError:
            return None


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    query: dict[str, str | None]
    """Query keys the requestUri itself requires (value None: any value)."""
    headers: tuple[str, ...]
    """Required members sent as headers (lower-case)."""
    query_members: tuple[str, ...]
    """Required members sent in the query string."""
    literal: int
    """Characters of the path template that are not labels (more is more specific)."""

    def weight(self) -> tuple[int, int]:
        return (len(self.query) + len(self.headers) + len(self.query_members), self.literal)


@functools.lru_cache(maxsize=16)
def _routes(name: str) -> tuple[_Route, ...]:
    model = _model(name)
    routes = []
    for operation in model.operation_names:
        op = model.operation_model(operation)
        uri = op.http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern = "".join(
            (
                f"(?P<{_group(part[1:-2])}>.+)"
                if part.endswith("+}")
                else f"(?P<{_group(part[1:-1])}>[^/]+)"
            )
            if part.startswith("{")
            else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", path)
            if part
        )
        literal_query: dict[str, str | None] = {}
        for item in filter(None, query.split("&")):
            key, sep, value = item.partition("=")
            literal_query[key] = value if sep else None
        headers: list[str] = []
        query_members: list[str] = []
        shape = op.input_shape
        for member in shape.required_members if shape is not None else ():
            location = shape.members[member].serialization.get("location")
            where = shape.members[member].serialization.get("name", member)
            if location == "header":
                headers.append(where.lower())
            elif location == "querystring":
                query_members.append(where)
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append(
            _Route(
                operation,
                op.http.get("method", "POST"),
                re.compile(f"^{pattern}/?$"),
                literal_query,
                tuple(headers),
                tuple(query_members),
                literal,
            )
        )
    return tuple(routes)


def _group(label: str) -> str:
    return re.sub(r"\W", "_", label)


def _route(
    name: str, method: str, path: str, query: str, headers: dict[str, str]
) -> tuple[_Route, dict[str, str]] | None:
    parameters = parse_qs(query, keep_blank_values=True)
    candidates = []
    for route in _routes(name):
        if route.method != method or not route.pattern.match(path):
            continue
        if any(
            key not in parameters or (value is not None and value not in parameters[key])
            for key, value in route.query.items()
        ):
            continue
        if any(header not in headers for header in route.headers):
            continue
        if any(member not in parameters for member in route.query_members):
            continue
        candidates.append(route)
    if not candidates:
        return None
    best = max(candidates, key=_Route.weight)
    matched = best.pattern.match(path)
    return best, ({k: v for k, v in matched.groupdict().items() if v} if matched else {})


PROTOCOLS = {
    "s3": "rest-xml",
    "sns": "query",
    "sts": "query",
    "iam": "query",
    "cloudwatch": "query",
    "dynamodb": "json",
    "eventbridge": "json",
    "firehose": "json",
    "sfn": "json",
    "sqs": "json",
    "kms": "json",
    "cloudwatch-logs": "json",
    "sagemaker": "json",
    "ssm": "json",
    "lambda": "rest-json",
    "api-gateway": "rest-json",
}
"""The wire protocol of each service's errors, by botocore's event name for the service."""


def error_response(
    service: str, code: str, message: str, status: int, request_id: str = "local"
) -> tuple[int, dict[str, str], bytes]:
    """An error as the service sends it (status, headers, body), which botocore parses into a
    `ClientError` with this code and message. Raises KeyError for a service not in
    `PROTOCOLS`."""
    protocol = PROTOCOLS[service]
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    text = _xml_escape(message)
    if protocol == "rest-xml":
        headers["Content-Type"] = "application/xml"
        body = (
            f"<Error><Code>{code}</Code><Message>{text}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    elif protocol == "query":
        headers["Content-Type"] = "text/xml"
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{text}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
    elif protocol == "json":
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-query-error"] = f"{code};Sender"
        body = json.dumps({"__type": code, "message": message})
    else:
        headers["Content-Type"] = "application/json"
        headers["x-amzn-ErrorType"] = code
        body = json.dumps({"Type": "User", "message": message})
    return status, headers, body.encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
