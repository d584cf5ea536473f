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
