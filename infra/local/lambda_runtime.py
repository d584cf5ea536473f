"""Runs Lambda functions without Docker, replacing moto's
`LambdaFunction._invoke_lambda(self, event)` and checking the Invoke API's payload limits in
`LambdaFunction.invoke`.

With `SETTINGS.workers` (the default of a local cloud in server mode), each invocation runs
in a function worker (`infra.local.workers`): a process with the function's runtime's Python,
only its deployed code and packages, its environment, memory, timeout and /tmp limits, and
real concurrency. The deployer registers each function's code and its environment rebuilt
for this machine (`infra.cdk.function_env`). Without it (in-process mode, a debugging aid), the
handler runs in this process (`infra.local.lambda_inprocess`).

An `Event` invocation through the Invoke API runs as Lambda's asynchronous invocation: accepted
at once, its errors retried, its on-failure record sent to the function's destination.

The Invoke API refuses a request payload over 6 MB (synchronous) or 1 MB (asynchronous) with
413 `RequestEntityTooLargeException`, and a function at its reserved concurrency with 429
`TooManyRequestsException`, as Lambda does.
"""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from typing import Any

from infra.local import workers
from infra.local.lambda_config import REGISTRY, SETTINGS, LambdaRuntimeError, code_for
from infra.local.lambda_crashes import injected_crash
from infra.local.lambda_environment import lambda_variables, save_logs
from infra.local.lambda_inprocess import FunctionOutput, forget_handlers, invoke_in_process
from infra.local.worker_process import RUNTIME_SCRIPT, Outcome, WorkerSpec

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
"""The Invoke API's request payload limits (RequestResponse, Event)."""


def reset() -> None:
    """Forget resolved handlers and registered code (a new local cloud starts)."""
    forget_handlers()
    REGISTRY.clear()


def invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """The replacement for moto's `_invoke_lambda`: (payload, errored, logs)."""
    if SETTINGS.workers:
        return _invoke_in_worker(function, event)
    return invoke_in_process(function, event)


def _invoke_in_worker(function: Any, event: Any) -> tuple[str, bool, str]:
    request_id = str(uuid.uuid4())
    function.logs_backend.ensure_log_group(function.logs_group_name)
    spec = worker_spec(function)
    text = event if isinstance(event, str) else json.dumps({} if event is None else event)
    crash = injected_crash(function.function_name, request_id, spec.timeout_seconds)
    if crash is not None:
        outcome = Outcome(crash, True)
    else:
        try:
            outcome = workers.WORKERS.invoke(spec, request_id, text)
        except workers.ThrottledError as exc:
            raise _TooManyRequests(str(exc)) from None
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {outcome.duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, round(outcome.duration_ms))} ms\t"
        f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {outcome.max_memory_mb} MB"
    )
    if outcome.init_ms is not None:
        report += f"\tInit Duration: {outcome.init_ms:.2f} ms"
    lines = [
        f"START RequestId: {request_id} Version: $LATEST",
        *outcome.logs,
        *([outcome.payload] if outcome.error_type else []),
        f"END RequestId: {request_id}",
        report,
    ]
    logs = "\n".join(lines)
    save_logs(function, logs)
    return outcome.payload, outcome.errored, logs


def prewarm(function_names: list[str]) -> None:
    """Initialize one worker of each function ahead of its first invocation (see
    `workers.WorkerPool.prewarm`)."""
    from moto.awslambda.models import lambda_backends

    specs = []
    for account in lambda_backends.values():
        for backend in account.values():
            for name in function_names:
                with contextlib.suppress(Exception):
                    specs.append(worker_spec(backend.get_function(name)))
    workers.WORKERS.prewarm(specs)


def worker_spec(function: Any) -> WorkerSpec:
    """What a moto function's workers are made of: its registered code and host environment,
    and its configuration as it stands now (an update makes new workers)."""
    code = code_for(function)
    if code.host is None:
        raise LambdaRuntimeError(
            "Runtime.InvalidEntrypoint",
            f"function {function.function_name} has no environment built for workers",
        )
    host = code.host
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_RUNTIME_DIR": str(RUNTIME_SCRIPT.parent),
        **lambda_variables(function, host.task_root, code.handler),
    }
    environment.update(
        {key: host.in_layers(str(value)) for key, value in function.environment_vars.items()}
    )
    reserved = getattr(function, "reserved_concurrency", None)
    storage = getattr(function, "ephemeral_storage", None) or 512
    return WorkerSpec(
        function_name=function.function_name,
        arn=function.function_arn,
        python=host.python.executable,
        paths=tuple(str(path) for path in host.sys_path if path not in host.site_packages),
        site_dirs=tuple(str(path) for path in host.site_packages),
        handler=code.handler,
        task_root=str(host.task_root),
        environment=tuple(sorted(environment.items())),
        memory_mb=int(function.memory_size),
        timeout_seconds=float(function.timeout or 3),
        ephemeral_storage_mb=int(storage),
        log_group_name=function.logs_group_name,
        reserved_concurrency=int(reserved) if reserved not in (None, "") else None,
    )


def _invoke_later(function: Any, body: Any) -> str:
    """An `Event` invocation, as Lambda's asynchronous invocation: accepted at once (202), run
    in the background, its errors retried and its on-failure record sent to the function's
    destination (`infra.local.lambda_async.invoke_asynchronously`)."""
    from infra.local.eventbridge import DISPATCHER

    DISPATCHER.invoke_later(function, json.loads(body) if body else {})
    return ""


class _TooManyRequests(Exception):
    """Raised into moto's request handling as Lambda's 429 (see `install`)."""


def install() -> None:
    """Replace moto's Docker-based invocation and check payload sizes (idempotent)."""
    from moto.awslambda.models import LambdaFunction
    from moto.core.exceptions import JsonRESTError

    if getattr(LambdaFunction._invoke_lambda, "_mlops_local", False):
        return

    class TooManyRequestsException(JsonRESTError):
        code = 429

        def __init__(self, message: str) -> None:
            super().__init__("TooManyRequestsException", message)

    class RequestEntityTooLargeException(JsonRESTError):
        code = 413

        def __init__(self, message: str) -> None:
            super().__init__("RequestEntityTooLargeException", message)

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        try:
            return invoke_lambda(self, event)
        except _TooManyRequests as exc:
            raise TooManyRequestsException(str(exc)) from None

    original_invoke = LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        asynchronous = (request_headers or {}).get("x-amz-invocation-type") == "Event"
        limit = ASYNC_PAYLOAD_LIMIT if asynchronous else SYNC_PAYLOAD_LIMIT
        size = len(body.encode() if isinstance(body, str) else body or b"")
        if size > limit:
            raise RequestEntityTooLargeException(
                f"{size} byte payload is too large for the "
                f"{'Event' if asynchronous else 'RequestResponse'} invocation type (limit "
                f"{limit} bytes)"
            )
        if asynchronous:
            return _invoke_later(self, body)
        payload = original_invoke(self, body, request_headers, response_headers)
        if response_headers.get("x-amz-function-error"):
            # What Lambda reports for any error of a Python function (moto says "Handled").
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    _invoke_lambda._mlops_local = True  # type: ignore[attr-defined]
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
    if not isinstance(sys.stdout, FunctionOutput):
        sys.stdout = FunctionOutput(sys.stdout)
