"""Lazily created, cached boto3 clients: never at import time, so moto (or the local cloud)
can start first and a cold start pays only for the clients it uses.

All clients come from one boto3 Session: creating a Session loads botocore's data files and
credential chain again (about 50 ms each), while a second client of a shared Session reuses
them. A boto3 Session is not thread-safe, so clients are created under a lock; the clients
themselves are.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60
)
_lock = threading.Lock()
_session: boto3.session.Session | None = None
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """A boto3 client for `service` (region and endpoint from the environment)."""
    cached = _clients.get(service)
    if cached is not None:
        return cached
    global _session
    with _lock:
        cached = _clients.get(service)
        if cached is None:
            if _session is None:
                _session = boto3.session.Session()
            cached = _session.client(service, config=_CONFIG)  # type: ignore[call-overload]
            _clients[service] = cached
        return cached


def reset_clients() -> None:
    """Forget cached clients and their Session (the local cloud calls this when it starts a
    new backend, whose credentials and endpoints the next Session must read afresh)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
