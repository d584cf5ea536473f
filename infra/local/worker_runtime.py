"""The Lambda runtime inside a local function worker: what `/var/runtime/bootstrap` does on
Lambda, for one execution environment.

Run as a script (`python3.13 -I -S -B -u worker_runtime.py <config>`) by
`infra.local.worker_process`, which imports only its channel framing (`frame`,
`read_message`): it uses the standard library only, so the function's process holds nothing
but its own code and packages. It puts the function's
deployment on `sys.path`, imports the handler (the init phase), then answers invocations one
at a time until its parent closes the channel. Messages on the channel are a 4-byte
big-endian length and a JSON document:

- to the parent: `{"type": "ready", "init_ms": ...}` after init, or `{"type": "init_error",
  "error": {...}}` (and exit); `{"type": "result", "payload": "<json text>", "errored":
  bool}` per invocation;
- from the parent: `{"type": "invoke", "request_id", "event": "<json text>", "deadline_ms",
  "invoked_function_arn"}`.

A handled exception answers with Lambda's error document (`errorMessage`, `errorType`,
`requestId`, `stackTrace`) and the environment stays, as on Lambda; a result that is not
JSON is `Runtime.MarshalError`. Whatever the handler prints goes to the process's stdout,
which the parent collects as the invocation's log; after each invocation the runtime writes
`END_MARKER` and the request id there, so the parent knows the log is complete.
"""

from __future__ import annotations

import importlib
import json
import os
import site
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

END_MARKER = "\x00mlops-end "
_HEADER = struct.Struct(">I")


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, config: dict[str, Any], message: dict[str, Any]) -> None:
        self.function_name: str = config["function_name"]
        self.function_version: str = config.get("function_version", "$LATEST")
        self.invoked_function_arn: str = message.get("invoked_function_arn") or config["arn"]
        # The Python runtime passes the memory size as a string.
        self.memory_limit_in_mb: str = str(config["memory_mb"])
        self.aws_request_id: str = message["request_id"]
        self.log_group_name: str = config["log_group_name"]
        self.log_stream_name: str = config["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = message["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def frame(message: dict[str, Any]) -> bytes:
    """A message as the channel carries it: its length, then its JSON."""
    data = json.dumps(message).encode("utf-8")
    return _HEADER.pack(len(data)) + data


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """The next message on `stream`; None when the channel closed."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(stream, _HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read = os.fdopen(read_fd, "rb", buffering=0)
        self._write = os.fdopen(write_fd, "wb", buffering=0)

    def send(self, message: dict[str, Any]) -> None:
        self._write.write(frame(message))

    def receive(self) -> dict[str, Any] | None:
        return read_message(self._read)


def error_document(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """What the Python runtime reports for an exception the handler raised."""
    document: dict[str, Any] = {"errorMessage": str(exc), "errorType": type(exc).__name__}
    if request_id is not None:
        document["requestId"] = request_id
    document["stackTrace"] = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return document


def _init(config: dict[str, Any]) -> Any:
    sys.path[:0] = config["paths"]
    for directory in config.get("site_dirs", []):
        # An image's packages live in its interpreter's site-packages (.pth files apply).
        site.addsitedir(directory)
    module_name, _, attribute = config["handler"].rpartition(".")
    if not module_name:
        raise _RuntimeError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{config['handler']}': not enough values to unpack",
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _RuntimeError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise _RuntimeError(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'"
        )
    return handler


class _RuntimeError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _invoke(handler: Any, config: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    request_id = message["request_id"]
    try:
        event = json.loads(message["event"]) if message["event"] else {}
        result = handler(event, LambdaContext(config, message))
    except Exception as exc:
        traceback.print_exc()
        return {"payload": json.dumps(error_document(exc, request_id)), "errored": True}
    try:
        return {"payload": json.dumps(result), "errored": False}
    except (TypeError, ValueError) as exc:
        document = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": request_id,
            "stackTrace": [],
        }
        return {"payload": json.dumps(document), "errored": True}


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.argv = [sys.argv[0]]
    channel = Channel(config["read_fd"], config["write_fd"])
    started = time.perf_counter()
    try:
        handler = _init(config)
    except _RuntimeError as exc:
        # A process that exits during init (sys.exit at import) is the parent's to report.
        traceback.print_exc()
        channel.send(
            {
                "type": "init_error",
                "error": {"errorMessage": str(exc), "errorType": exc.error_type, "stackTrace": []},
            }
        )
        return
    channel.send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000})
    while (message := channel.receive()) is not None:
        outcome = _invoke(handler, config, message)
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"{END_MARKER}{message['request_id']}", flush=True)
        channel.send({"type": "result", **outcome})


if __name__ == "__main__":
    main()
