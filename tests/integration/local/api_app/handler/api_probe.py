"""The throwaway API's function: echoes the proxy event, fails on /boom, answers bytes
(base64-encoded) on /binary."""

from __future__ import annotations

import base64
import json
from typing import Any


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["path"] == "/boom":
        raise RuntimeError("boom")
    if event["path"] == "/malformed":
        return {"not": "a proxy response"}
    if event["path"] == "/binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\xff\x80binary").decode(),
            "isBase64Encoded": True,
        }
    body = event.get("body")
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).hex()
    echoed = {
        "resource": event["resource"],
        "path": event["path"],
        "httpMethod": event["httpMethod"],
        "pathParameters": event["pathParameters"],
        "queryStringParameters": event["queryStringParameters"],
        "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
        "header": (event.get("headers") or {}).get("X-Probe"),
        "body": body,
        "isBase64Encoded": event["isBase64Encoded"],
        "stage": event["requestContext"]["stage"],
        "requestId": event["requestContext"]["requestId"],
        "sourceIp": event["requestContext"]["identity"]["sourceIp"],
    }
    return {
        "statusCode": 201 if event["httpMethod"] == "POST" else 200,
        "headers": {"Content-Type": "application/json", "X-Echo": "yes"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(echoed),
        "isBase64Encoded": False,
    }
