"""The local REST API (`infra.local.api_adapter`) against hostile HTTP, over real sockets: a
malformed `Content-Length`, methods API Gateway does not serve, a body over API Gateway's
10 MB limit, a client that stops sending. Each gets a JSON answer, as from API Gateway, and
never an HTML page or a dropped connection; a slow client is cut off after the read timeout.

The adapter serves one route (`GET /items`) whose function is never reached: every refusal
here happens before the integration."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.api_adapter import ApiAdapter
from infra.local.api_routes import Method, RestApi, Route

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:never-called"


def _no_client(service: str) -> Any:
    raise AssertionError(f"the request reached {service}: it should have been refused before")


@pytest.fixture
def adapter() -> Iterator[ApiAdapter]:
    route = Route("/items", {"GET": Method("GET", FUNCTION, "res1")})
    served = ApiAdapter(RestApi("api1", "test", [route], set()), _no_client, "123456789012")
    served.start(port=0)
    yield served
    served.stop()


def _exchange(
    adapter: ApiAdapter, data: bytes, *, half_close: bool = True, wait: float = 20.0
) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes; the response's status, headers and body (None: the server closed the
    connection without answering)."""
    host, port = adapter.url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(data)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        if not received:
            return None, {}, b""
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(status_line.split()[1]), headers, body


def _json_refusal(answer: tuple[int | None, dict[str, str], bytes], status: int) -> str:
    got, headers, body = answer
    assert got == status, (got, headers, body[:300])
    assert headers["content-type"] == "application/json", headers
    document = json.loads(body)
    assert isinstance(document["message"], str) and document["message"]
    return str(document["message"])


@pytest.mark.parametrize("value", ["abc", "-5", "0x10", "1 2", "5, 6"])
def test_a_content_length_that_is_not_a_byte_count_is_a_json_400(
    adapter: ApiAdapter, value: str
) -> None:
    request = f"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\nhello"

    message = _json_refusal(_exchange(adapter, request.encode()), 400)

    assert "Content-Length" in message and repr(value) in message


def test_trace_is_a_json_405_and_an_unknown_method_a_json_501(adapter: ApiAdapter) -> None:
    trace = _exchange(adapter, b"TRACE /items HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _json_refusal(trace, 405) == "Method Not Allowed"
    assert trace[1]["allow"] == "GET"

    brew = _exchange(adapter, b"BREW /items HTTP/1.1\r\nHost: x\r\n\r\n")
    assert "BREW" in _json_refusal(brew, 501)


def test_a_malformed_request_line_is_a_json_400(adapter: ApiAdapter) -> None:
    answer = _exchange(adapter, b"GET /items HTTP/1.1 extra\r\nHost: x\r\n\r\n")

    assert _json_refusal(answer, 400)


def test_a_body_over_the_limit_is_a_json_413_before_it_is_read(adapter: ApiAdapter) -> None:
    over = 10 * 1024 * 1024 + 1
    request = f"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: {over}\r\n\r\n"

    # Nothing of the body is sent: the answer comes from the header alone.
    message = _json_refusal(_exchange(adapter, request.encode(), half_close=False), 413)

    assert f"{over:,}" in message and "10,485,760" in message


def test_a_client_that_stops_sending_its_body_gets_a_json_408(adapter: ApiAdapter) -> None:
    adapter.read_timeout_seconds = 0.5
    request = b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten.."

    message = _json_refusal(_exchange(adapter, request, half_close=False), 408)

    assert "0.5 s" in message


def test_a_client_that_stops_sending_its_headers_gets_a_json_408(adapter: ApiAdapter) -> None:
    adapter.read_timeout_seconds = 0.5

    answer = _exchange(adapter, b"GET /items HTTP/1.1\r\nHost: x\r\n", half_close=False)

    assert _json_refusal(answer, 408)
