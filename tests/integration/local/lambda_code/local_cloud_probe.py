"""Handlers the local-cloud tests deploy as a zip function: they report what they saw."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

RECEIVED: list[Any] = []
"""Events received by `record` and `slow` (asynchronous targets return nothing to look at)."""


class QuotaExceededError(Exception):
    """A domain error: Step Functions must see this class name as the error name."""


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "greeting": os.environ.get("GREETING"),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
    }


def fail(event: Any, context: Any) -> None:
    raise QuotaExceededError("quota of 3 drops per day reached")


def record(event: Any, context: Any) -> dict[str, Any]:
    RECEIVED.append(event)
    return {"recorded": len(RECEIVED)}


def slow(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(float(os.environ.get("SLEEP_SECONDS", "1")))
    RECEIVED.append(event)
    return {"slept": True}


def write_marker(event: Any, context: Any) -> dict[str, Any]:
    """Calls S3 with a default boto3 client, as deployed code does."""
    key = f"markers/{context.aws_request_id}.json"
    boto3.client("s3").put_object(Bucket=os.environ["BUCKET"], Key=key, Body=json.dumps(event))
    return {"marker": key}


_STATE = {"invocations": 0}
_HELD: list[bytearray] = []


def environment(event: Any, context: Any) -> dict[str, Any]:
    """What the function's process is: its interpreter, its path, what it can import."""
    import importlib.util
    import sys
    import tempfile

    _STATE["invocations"] += 1
    return {
        "python": list(sys.version_info[:2]),
        "executable": sys.executable,
        "path": sys.path,
        "pid": os.getpid(),
        "invocations": _STATE["invocations"],
        "importable": {
            name: importlib.util.find_spec(name) is not None
            for name in ("pytest", "moto", "boto3", "infra", "functions")
        },
        "tmp": tempfile.gettempdir(),
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
        "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
    }


def sleep_for(event: Any, context: Any) -> dict[str, Any]:
    started = time.time()
    time.sleep(float(event.get("seconds", 1)))
    return {"pid": os.getpid(), "started": started, "ended": time.time()}


def allocate(event: Any, context: Any) -> dict[str, Any]:
    """Holds `mb` MB (touched, so resident) until the environment ends."""
    block = bytearray(int(event["mb"]) * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    _HELD.append(block)
    return {"pid": os.getpid(), "held_mb": sum(len(b) for b in _HELD) // (1024 * 1024)}


def exit_now(event: Any, context: Any) -> None:
    os._exit(int(event.get("status", 3)))


def write_tmp(event: Any, context: Any) -> dict[str, Any]:
    """Writes `mb` MB under /tmp; reports how far it got."""
    import tempfile

    written = 0
    chunk = b"x" * (1024 * 1024)
    try:
        with tempfile.NamedTemporaryFile(dir="/tmp" if event.get("literal") else None) as file:
            for _ in range(int(event["mb"])):
                file.write(chunk)
                file.flush()
                written += 1
    except OSError as exc:
        return {"written_mb": written, "error": exc.strerror}
    return {"written_mb": written, "error": None}


def large_result(event: Any, context: Any) -> dict[str, Any]:
    return {"padding": "x" * int(event["bytes"])}
