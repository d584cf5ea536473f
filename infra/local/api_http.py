"""The HTTP side of the local REST API: one connection's requests read as API Gateway reads
them, handed to the adapter (`infra.local.api_adapter.ApiAdapter.handle`), and its responses
written back.

Hostile HTTP is answered in JSON, as API Gateway answers it, and never reaches a function: a
`Content-Length` that is not a byte count (`abc`, `-5`) or a malformed chunked body 400, a body
over API Gateway's 10 MB payload limit 413 (from the header alone, before it is read), a
request whose headers and body have not arrived within `read_timeout_seconds` (30 s) 408 (the
connection is then closed; an idle kept-alive connection is closed silently), a method HTTP
defines but the route does not serve (TRACE included) 405 with `Allow`, any other method 501,
and any other protocol error (a malformed request line, oversized headers) its status with a
JSON message instead of the standard library's HTML page."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.api_adapter import ApiAdapter

log = logging.getLogger("infra.local.api")

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


def json_response(status: int, body: dict[str, Any], **headers: str) -> Response:
    all_headers = {"Content-Type": ["application/json"], **{k: [v] for k, v in headers.items()}}
    return Response(status, all_headers, json.dumps(body).encode())


class RequestHandler(BaseHTTPRequestHandler):
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
            self._send(json_response(refused.status, {"message": refused.message}))
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
        self._send(json_response(code, {"message": text}))

    def __getattr__(self, name: str) -> Any:
        # Every method reaches `_serve`: unknown ones get a JSON 501 there.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)
