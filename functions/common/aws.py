"""Lazily created, cached boto3 clients: never at import time, so moto (or the local cloud)
can start first and a cold start pays only for the clients it uses."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60
)


@cache
def client(service: str) -> Any:
    """A boto3 client for `service` (region and endpoint from the environment)."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (the local cloud calls this when it starts a new backend)."""
    client.cache_clear()
