"""The AWS call boundary: every call to the local cloud passes here before it reaches moto.

Two doors, one rule. Calls over HTTP (function workers, other processes, the CLI) reach
moto's server through `CallBoundary`, WSGI middleware in front of it. Calls made in the cloud's
own process (the Step Functions interpreter's task integrations, the deployer, the tests) are
intercepted by moto's botocore stubber, which `install` wraps. At either door a call is named
(`infra.local.aws_calls.classify`), then:

1. authorized (`infra.local.authz.enforcer`): a denied call gets the service's AccessDenied
   error, and never reaches moto;
2. checked against the injected faults (`infra.local.faults`): a matching fault answers with
   its error, or delays the call, or lets it through and loses its response.

Calls are classified only while there is something to check (enforcement on, or a fault
injected).
"""

from __future__ import annotations

import io
import threading
from typing import Any

from infra.local.authz.enforcer import ENFORCER
from infra.local.aws_calls import AwsCall, classify

_install_lock = threading.Lock()


def _faults() -> Any:
    from infra.local import faults

    return faults.FAULTS


def _active() -> bool:
    return ENFORCER.enabled or bool(_faults().active())


def decide(
    call: AwsCall, description: str, forward: Any
) -> tuple[int, dict[str, str], bytes] | None:
    """The error response for a call refused at the boundary (denied, or failed by a fault),
    or None to let it through. `forward()` sends the call on (for a fault that loses the
    response of a call that happened)."""
    denial = ENFORCER.authorize_call(call)
    if denial is not None:
        return denial.response(call.service)
    fault = _faults().claim(call.name, description)
    if fault is None or not fault.take():
        return None
    if fault.response_lost:
        forward()
    return fault.error()  # type: ignore[no-any-return]


class CallBoundary:
    """WSGI middleware in front of the local cloud's moto server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not _active():
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        method = str(environ.get("REQUEST_METHOD", "GET"))
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        path, _, query = raw_uri.partition("?")
        path = path or str(environ.get("PATH_INFO", "/"))
        query = query or str(environ.get("QUERY_STRING", ""))
        call = classify(method, path, query, headers, body)
        if call is None:
            return self.app(environ, start_response)
        url = f"http://{environ.get('HTTP_HOST', '')}{path}" + (f"?{query}" if query else "")
        text = body.decode("utf-8", errors="replace") if len(body) < 1_000_000 else ""

        def forward() -> None:
            environ["wsgi.input"] = io.BytesIO(body)
            for _ in self.app(environ, lambda *args, **kwargs: None):
                pass

        refused = decide(call, f"{method} {url}\n{text}", forward)
        if refused is None:
            return self.app(environ, start_response)
        status, response_headers, payload = refused
        reason = {403: "Forbidden", 503: "Service Unavailable"}.get(status, "Error")
        start_response(f"{status} {reason}", list(response_headers.items()))
        return [payload]


def install() -> None:
    """Wrap moto's botocore stubber, the door of this process's own calls (idempotent)."""
    from moto.core.botocore_stubber import BotocoreStubber

    with _install_lock:
        if getattr(BotocoreStubber.__call__, "_mlops_boundary", False):
            return
        original = BotocoreStubber.__call__

        def __call__(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            forward = lambda: original(self, event_name, request, **kwargs)  # noqa: E731
            if not self.enabled or not _active():
                return forward()
            call = classify_request(request)
            if call is None:
                return forward()
            refused = decide(call, _describe(request), forward)
            if refused is None:
                return forward()
            return _aws_response(request, *refused)

        __call__._mlops_boundary = True  # type: ignore[attr-defined]
        BotocoreStubber.__call__ = __call__  # type: ignore[method-assign]


def classify_request(request: Any) -> AwsCall | None:
    """The call a request botocore is about to send makes (None: not an AWS API call)."""
    from urllib.parse import urlsplit

    url = urlsplit(request.url)
    headers = {str(k).lower(): _text(v) for k, v in request.headers.items()}
    headers.setdefault("host", url.netloc)
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = b""  # a stream (an upload): its parameters are in the URL and headers
    return classify(request.method, url.path, url.query, headers, body)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(request: Any) -> str:
    body = request.body
    if isinstance(body, bytes) and len(body) < 1_000_000:
        body = body.decode("utf-8", errors="replace")
    return f"{request.method} {request.url}\n{body if isinstance(body, str) else ''}"


def _aws_response(request: Any, status: int, headers: dict[str, str], body: bytes) -> Any:
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    return AWSResponse(request.url, status, headers, MockRawResponse(body))  # type: ignore[arg-type]
