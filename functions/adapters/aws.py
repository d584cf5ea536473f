"""Lazily created, cached boto3 clients: never at import time, so moto (or the local cloud)
can start first and a cold start pays only for the clients it uses.

A function's clients come from one boto3 Session: creating a Session loads botocore's data files and
credential chain again, while a second client of a shared Session reuses
them. A boto3 Session is not thread-safe, so clients are created under a lock; the clients
themselves are.

With `MLOPS_BOTOCORE_DATA` naming a trimmed copy of botocore's data (`infra.cdk.cold_start`:
only the services the function calls, without documentation; the serving layer carries one),
the Session reads that copy and nothing else, so the predict function's first clients parse a
fraction of the JSON botocore's own data holds. The copy is used only by the botocore release it was
made from (its `VERSION` file); otherwise, or if it is missing, a warning is logged and
botocore's own data is read. A service the copy lacks fails at client creation, naming it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.config import Config

SLIM_DATA_ENV = "MLOPS_BOTOCORE_DATA"
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60
)
_lock = threading.Lock()
# One Session per data directory ("" is botocore's own): on the local cloud, functions with
# and without a trimmed copy share this process.
_sessions: dict[str, boto3.session.Session] = {}
_clients: dict[tuple[str, str], Any] = {}
log = logging.getLogger(__name__)


class _TrimmedDataLoader(botocore.loaders.Loader):
    """Reads only the trimmed copy in `path`. Its files are botocore's own (filtered), so they
    count as built-in data: botocore then resolves endpoints exactly as with the full set."""

    def __init__(self, path: str) -> None:
        super().__init__(extra_search_paths=[path], include_default_search_paths=False)
        self.BUILTIN_DATA_PATH = path


def client(service: str) -> Any:
    """A boto3 client for `service` (region and endpoint from the environment)."""
    data = os.environ.get(SLIM_DATA_ENV, "")
    cached = _clients.get((data, service))
    if cached is not None:
        return cached
    with _lock:
        cached = _clients.get((data, service))
        if cached is None:
            session = _sessions.get(data)
            if session is None:
                session = _sessions[data] = _session(data)
            try:
                cached = session.client(service, config=_CONFIG)  # type: ignore[call-overload]
            except botocore.exceptions.UnknownServiceError:
                if not data:
                    raise
                raise botocore.exceptions.UnknownServiceError(
                    service_name=f"{service} (not in the trimmed botocore data at {data}: "
                    "add it to the function's services in infra.cdk.cold_start)",
                    known_service_names=", ".join(sorted(_trimmed_services(data))),
                ) from None
            _clients[(data, service)] = cached
        return cached


class LazyClient:
    """A class attribute: the instance's `_client` (a client passed in), else the shared client
    of `service`, created on first use and then kept in `_client`."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance._client is None:
            instance._client = client(self.service)
        return instance._client


def _session(data: str) -> boto3.session.Session:
    if data and _usable(Path(data)):
        core = botocore.session.Session()
        core.register_component("data_loader", _TrimmedDataLoader(data))
        return boto3.session.Session(botocore_session=core)
    return boto3.session.Session()


def _usable(path: Path) -> bool:
    try:
        version = (path / "VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        log.warning(
            "%s=%s: no trimmed botocore data there; reading botocore's own", SLIM_DATA_ENV, path
        )
        return False
    if version != botocore.__version__:
        log.warning(
            "%s=%s was made from botocore %s, this is botocore %s; reading botocore's own",
            SLIM_DATA_ENV,
            path,
            version,
            botocore.__version__,
        )
        return False
    return True


def _trimmed_services(data: str) -> list[str]:
    return [path.name for path in Path(data).iterdir() if path.is_dir()]


def reset_clients() -> None:
    """Forget cached clients and their Sessions (the local cloud calls this when it starts a
    new backend, whose credentials and endpoints the next Session must read afresh)."""
    with _lock:
        _clients.clear()
        _sessions.clear()
