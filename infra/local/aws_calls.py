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
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/(?P<service>[^/,\s]+)/aws4_request")
# Signing names whose botocore service name differs.
_SERVICE_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch", "execute-api": ""}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class AwsCall:
    service: str
    """botocore's event name for the service: `s3`, `dynamodb`, `sfn`, `eventbridge`, ..."""
    operation: str

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
    service = model.service_id.hyphenize()
    protocol = model.metadata.get("protocol", "")
    if protocol == "json" or "x-amz-target" in headers:
        target = headers.get("x-amz-target", "")
        return AwsCall(service, target.rpartition(".")[2]) if target else None
    if protocol in ("query", "ec2"):
        parameters = parse_qs(query)
        if not parameters.get("Action"):
            parameters = parse_qs(body.decode("utf-8", errors="replace"))
        action = (parameters.get("Action") or [""])[0]
        return AwsCall(service, action) if action else None
    operation = _route(name, method, path, query, headers)
    return AwsCall(service, operation) if operation else None


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


def _route(name: str, method: str, path: str, query: str, headers: dict[str, str]) -> str | None:
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
    return max(candidates, key=_Route.weight).operation
