"""Injected crashes (`infra.local.faults`): invocations of matching functions die as Lambda
reports a dead process, without running the handler, in either way functions run."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from infra.local.workers import error_payload

log = logging.getLogger("infra.local.lambda")

_CRASH_MESSAGES = {
    "Runtime.OutOfMemory": "RequestId: {request_id} Error: Runtime exited with error: "
    "signal: killed",
    "Sandbox.Timedout": "RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
    "Runtime.ExitError": "RequestId: {request_id} Error: Runtime exited with error: exit status 1",
}
"""What Lambda reports (`errorMessage`) when a function's process dies, by error type."""


@dataclass
class Crash:
    """Invocations of functions whose name matches `match` die as Lambda reports a dead
    process (`error_type`: `Runtime.OutOfMemory`, `Sandbox.Timedout`, `Runtime.ExitError`),
    the next `times` of them (None: all until removed). The handler does not run."""

    match: re.Pattern[str]
    error_type: str
    times: int | None
    crashed: int = 0

    def remove(self) -> None:
        with _CRASHES_LOCK:
            if self in _CRASHES:
                _CRASHES.remove(self)

    def __enter__(self) -> Crash:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


_CRASHES: list[Crash] = []
_CRASHES_LOCK = threading.Lock()


def add_crash(match: str, error_type: str, times: int | None) -> Crash:
    if error_type not in _CRASH_MESSAGES:
        raise ValueError(f"unknown crash {error_type!r}: one of {sorted(_CRASH_MESSAGES)}")
    crash = Crash(re.compile(match), error_type, times)
    with _CRASHES_LOCK:
        _CRASHES.append(crash)
    return crash


def clear_crashes() -> None:
    with _CRASHES_LOCK:
        _CRASHES.clear()


def _claim_crash(function_name: str) -> Crash | None:
    with _CRASHES_LOCK:
        for crash in _CRASHES:
            exhausted = crash.times is not None and crash.crashed >= crash.times
            if not exhausted and crash.match.search(function_name):
                crash.crashed += 1
                return crash
    return None


def injected_crash(function_name: str, request_id: str, timeout: float) -> str | None:
    """When an injected crash claims this invocation: the error payload Lambda reports
    (`timeout`: the function's, in seconds); else None."""
    crash = _claim_crash(function_name)
    if crash is None:
        return None
    message = _CRASH_MESSAGES[crash.error_type].format(request_id=request_id, timeout=timeout)
    log.warning("function %s: %s (injected)", function_name, message)
    return error_payload(crash.error_type, message)
