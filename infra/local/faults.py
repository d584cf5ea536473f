"""Faults at the AWS call boundary, to prove the pipeline's retries on the local cloud.

`inject("s3.PutObject", "SlowDown", times=5, match="curated/churn/")` makes the next five
matching AWS calls fail as the service fails them: an HTTP error response in the service's
protocol, which botocore parses into a `ClientError` and retries under the caller's own retry
policy, as it would a real one. No handler code is touched. Operations are named as botocore
names them (`infra.local.aws_calls`). Faults apply at the AWS call boundary
(`infra.local.boundary`), which every caller's calls pass alike: function workers, the Step
Functions interpreter, the tests.

A fault can also add latency (`delay=`), run something first (`before=`: another writer wins
a race at exactly this call), with or without an error, or let the call reach the
service and lose its response (`response_lost=True`: the write happened, the caller sees the
error). `shorter_retry_waits` shortens the waits between attempts
(Step Functions Retry, botocore's backoff) for a test; what is retried, and how often, is
unchanged.

`crash("IngestFunction", "Runtime.OutOfMemory")` makes the Lambda runtime fail the next
invocation of a matching function as Lambda reports a process that died (out of memory, timed
out), without running its handler: the state machine's Catch sees Lambda's error name.

Installing the hook also names a Lambda API error of a task whose Resource is a function ARN
as Step Functions does (`Lambda.ServiceException`, `Lambda.TooManyRequestsException`):
moto's interpreter names them all `Exception`, so no Retry on Lambda service errors could
match.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from infra.local import lambda_crashes, sfn_engine
from infra.local.aws_calls import PROTOCOLS, error_response
from infra.local.lambda_crashes import Crash

_STATUS = {
    "ThrottlingException": 400,
    "ProvisionedThroughputExceededException": 400,
    "RequestLimitExceeded": 400,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
    "TooManyRequestsException": 429,
}


@dataclass
class Fault:
    """One injected fault; `failed` counts the calls it made fail (or delayed)."""

    operation: str
    """`service.Operation` as botocore names them: `s3.PutObject`, `dynamodb.PutItem`,
    `lambda.Invoke`."""
    code: str | None
    times: int | None
    """How many matching calls fail; None: every one until removed."""
    match: re.Pattern[str] | None
    delay: float
    response_lost: bool
    message: str
    status: int
    before: Callable[[], None] | None = None
    """Run when the fault takes a call, before it fails or goes on: something else that
    happens in the meantime (another writer winning a race)."""
    failed: int = 0
    _registry: _Faults | None = field(default=None, repr=False)

    def remove(self) -> None:
        if self._registry is not None:
            self._registry.remove(self)

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def matches(self, operation: str, description: str) -> bool:
        if operation != self.operation or (self.times is not None and self.failed >= self.times):
            return False
        return self.match is None or bool(self.match.search(description))

    def take(self) -> bool:
        """Run what comes before the call (`before`, `delay`); True if the call then fails."""
        if self.before is not None:
            self.before()
        if self.delay:
            time.sleep(self.delay)
        return self.code is not None

    def error(self) -> tuple[int, dict[str, str], bytes]:
        """The error response in the service's protocol: status, headers, body."""
        service = self.operation.partition(".")[0]
        return error_response(service, str(self.code), self.message, self.status, "injected-fault")


class _Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault._registry = self
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> bool:
        return bool(self._faults)

    def claim(self, operation: str, description: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(operation, description):
                    fault.failed += 1
                    return fault
        return None


FAULTS = _Faults()
_install_lock = threading.Lock()


def inject(
    operation: str,
    code: str | None = None,
    *,
    times: int | None = None,
    match: str | None = None,
    delay: float = 0.0,
    response_lost: bool = False,
    message: str | None = None,
    status: int | None = None,
    before: Callable[[], None] | None = None,
) -> Fault:
    """Make matching calls fail with AWS error `code` (None: they go on, after `delay` and
    `before`).
    `match` is a regular expression searched in the request's URL and text body (an S3 key,
    a DynamoDB item key, a function name). Use the result as a context manager, or call
    `remove()`, to heal the fault."""
    service = operation.partition(".")[0]
    if code is not None and service not in PROTOCOLS:
        raise ValueError(f"no error format for service {service!r}: one of {sorted(PROTOCOLS)}")
    if code is None and not delay and before is None:
        raise ValueError("a fault needs an error code, a delay or a `before` action")
    install()
    return FAULTS.add(
        Fault(
            operation=operation,
            code=code,
            times=times,
            match=re.compile(match) if match else None,
            delay=delay,
            response_lost=response_lost,
            message=message or f"{code} (injected by the local cloud)",
            status=status or _STATUS.get(code or "", 500),
            before=before,
        )
    )


def crash(
    function: str, error_type: str = "Runtime.OutOfMemory", *, times: int | None = 1
) -> Crash:
    """Make the next `times` invocations (None: every one until removed) of functions whose
    name matches the regular expression `function` die as Lambda reports a dead process:
    `Runtime.OutOfMemory`, `Sandbox.Timedout` or `Runtime.ExitError`, with Lambda's message.
    Use the result as a context manager, or call `remove()`."""
    return lambda_crashes.add_crash(function, error_type, times)


def clear() -> None:
    """Remove every fault and crash."""
    FAULTS.clear()
    lambda_crashes.clear_crashes()


@contextmanager
def shorter_retry_waits(scale: float) -> Iterator[None]:
    """While open, the waits between attempts last `scale` times as long: Step Functions Retry
    waits (IntervalSeconds x BackoffRate^n) and botocore's backoff between retries of a call.
    What is retried, and how often, does not change."""
    from botocore.retries.standard import ExponentialBackoff
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    saved_clock, saved_delay = retrier_decl.time, ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        return float(saved_delay(self, context)) * scale

    retrier_decl.time = _ScaledClock(scale)  # type: ignore[assignment]
    ExponentialBackoff.delay_amount = delay_amount  # type: ignore[method-assign]
    try:
        yield
    finally:
        retrier_decl.time = saved_clock
        ExponentialBackoff.delay_amount = saved_delay  # type: ignore[method-assign]


class _ScaledClock:
    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install() -> None:
    """Put the AWS call boundary in place (idempotent): faults then apply to this process's
    calls intercepted by moto as to the server's (`infra.local.boundary`). Lambda API errors
    are named as Step Functions names them (`infra.local.sfn_engine.name_lambda_api_errors`)."""
    from infra.local import boundary

    boundary.install()
    sfn_engine.name_lambda_api_errors()
