"""Runs Lambda functions without Docker, replacing moto's
`LambdaFunction._invoke_lambda(self, event)` and checking the Invoke API's payload limits in
`LambdaFunction.invoke`.

With `SETTINGS.workers` (the default of a local cloud in server mode), each invocation runs
in a function worker (`infra.local.workers`): a process with the function's runtime's Python,
only its deployed code and packages, its environment, memory, timeout and /tmp limits, and
real concurrency. The deployer registers each function's code and its environment rebuilt
for this machine (`infra.function_env`).

Without it (in-process mode, a debugging aid), the handler is imported into this process from
the function's code (a zip asset directory in cdk.out, or the repo's `functions/` package for
container-image functions) and called with the function's environment variables applied to
`os.environ` and a fake LambdaContext. `os.environ` is process-wide, so invocations are
serialised by one lock: a function that synchronously invokes another function would wait
for the lock until it gives up (`LocalCloud.ConcurrencyTimeout`).

The Invoke API refuses a request payload over 6 MB (synchronous) or 1 MB (asynchronous) with
413 `RequestEntityTooLargeException`, as Lambda does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from infra.local import workers

if TYPE_CHECKING:
    from infra.function_env import HostEnvironment

log = logging.getLogger("infra.local.lambda")

_INVOKE_LOCK = threading.Lock()
_LOCK_MARGIN_SECONDS = 60
ISOLATED_PREFIX = "_mlops_local_lambda_"
_OPT = "/opt/"


@dataclass(frozen=True)
class FunctionCode:
    kind: Literal["zip", "image"]
    root: Path
    """Directory put on sys.path while the handler runs (the task root)."""
    handler: str
    """Dotted `module.function`, as in Lambda's Handler or an image's CMD."""
    layers: tuple[Path, ...] = ()
    """The content of the function's layers, in order (what Lambda mounts at /opt)."""
    host: HostEnvironment | None = None
    """The deployment rebuilt for this machine, that workers run (None: not built)."""


class FunctionCodeRegistry:
    """Where each deployed function's code lives, by function name (moto keeps only bytes),
    and each layer version's content, by ARN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: dict[str, FunctionCode] = {}
        self._layers: dict[str, Path] = {}

    def register_layer(self, arn: str, content: Path) -> None:
        with self._lock:
            self._layers[arn] = content

    def layer(self, arn: str) -> Path | None:
        with self._lock:
            return self._layers.get(arn)

    def register(self, function_name: str, code: FunctionCode) -> None:
        with self._lock:
            self._code[function_name] = code

    def get(self, function_name: str) -> FunctionCode | None:
        with self._lock:
            return self._code.get(function_name)

    def clear(self) -> None:
        with self._lock:
            self._code.clear()
            self._layers.clear()


@dataclass
class RuntimeSettings:
    endpoint_url: str | None = None
    """Set in server mode: functions reach the local cloud through AWS_ENDPOINT_URL."""
    code_root: Path = Path.cwd()
    """Where container-image functions' code (`functions/`) is imported from."""
    scratch_dir: Path = Path(os.environ.get("TMPDIR", "/tmp")) / "mlops-local-lambda"
    """Where zip code uploaded through the API (not from cdk.out) is unpacked."""
    echo_function_output: bool = True
    """Also print what functions write to stdout (their log lines) on this process's stdout,
    as `sam local` does; it always goes to the function's CloudWatch log group."""
    workers: bool = False
    """Run invocations in function workers (needs the server mode's endpoint)."""
    prewarm: bool = False
    """With workers: initialize one environment of each function as soon as it is deployed
    (Lambda's proactive initialization)."""


REGISTRY = FunctionCodeRegistry()
SETTINGS = RuntimeSettings()


class FunctionOutput:
    """`sys.stdout` while the hooks are installed: what a function writes during an invocation
    (Powertools log lines, EMF metrics) is collected for its log stream, as on Lambda, and
    echoed only if `SETTINGS.echo_function_output`. Other threads write through unchanged.
    Loggers bind `sys.stdout` when created, so this stays installed for the process."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        self._local = threading.local()

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(self._local, "buffer", None)
        if buffer is None or SETTINGS.echo_function_output:
            self._fallback.write(text)
        if buffer is not None:
            buffer.write(text)
        return len(text)

    def flush(self) -> None:
        self._fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fallback, name)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[io.StringIO]:
        buffer = io.StringIO()
        self._local.buffer = buffer
        try:
            yield buffer
        finally:
            self._local.buffer = None


def _function_output() -> FunctionOutput | None:
    return sys.stdout if isinstance(sys.stdout, FunctionOutput) else None


_handlers: dict[tuple[Path, str], Callable[..., Any]] = {}


class LambdaRuntimeError(Exception):
    """An error Lambda's runtime (not the handler) reports, with Lambda's error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


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


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, function: Any, request_id: str, deadline: float) -> None:
        self.function_name: str = function.function_name
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = function.function_arn
        # The Python runtime passes the memory size as a string.
        self.memory_limit_in_mb: str = str(function.memory_size)
        self.aws_request_id = request_id
        self.log_group_name = function.logs_group_name
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{request_id[:32]}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def reset() -> None:
    """Forget resolved handlers and registered code (a new local cloud starts)."""
    _handlers.clear()
    REGISTRY.clear()


def code_for(function: Any) -> FunctionCode:
    """The code of a moto LambdaFunction: registered by the deployer, else derived from it."""
    registered = REGISTRY.get(function.function_name)
    if registered is not None:
        return registered
    if function.package_type == "Image":
        command = list(function.image_config.cmd or [])
        if not command:
            raise LambdaRuntimeError(
                "Runtime.InvalidEntrypoint", "image function has no ImageConfig.Command"
            )
        return FunctionCode("image", SETTINGS.code_root, command[0])
    return FunctionCode("zip", _unpack(function), str(function.handler))


def _unpack(function: Any) -> Path:
    code: bytes = getattr(function, "code_bytes", b"")
    if not code:
        raise LambdaRuntimeError("Runtime.InvalidEntrypoint", "function has no code to run")
    target = SETTINGS.scratch_dir / hashlib.sha256(code).hexdigest()[:16]
    if not target.exists():
        staging = target.with_suffix(f".{uuid.uuid4().hex}")
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(staging)
        staging.replace(target)
    return target


SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
"""The Invoke API's request payload limits (RequestResponse, Event)."""


def invoke_lambda(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """The replacement for moto's `_invoke_lambda`: (payload, errored, logs)."""
    if SETTINGS.workers:
        return _invoke_in_worker(function, event)
    request_id = str(uuid.uuid4())
    function.logs_backend.ensure_log_group(function.logs_group_name)
    event = _decode(event)
    timeout = float(function.timeout or 3)
    lines = [f"START RequestId: {request_id} Version: $LATEST"]
    if not _INVOKE_LOCK.acquire(timeout=timeout + _LOCK_MARGIN_SECONDS):
        payload = _error_payload(
            "LocalCloud.ConcurrencyTimeout",
            "the local cloud runs one function at a time and another invocation did not finish",
        )
        return payload, True, "\n".join(lines)
    output = _function_output()
    crash = _claim_crash(function.function_name)
    try:
        with output.collecting() if output else contextlib.nullcontext() as printed:
            if crash is not None:
                message = _CRASH_MESSAGES[crash.error_type].format(
                    request_id=request_id, timeout=timeout
                )
                log.warning("function %s: %s (injected)", function.function_name, message)
                payload, errored, duration = _error_payload(crash.error_type, message), True, 0.0
            else:
                payload, errored, duration = _run(function, event, request_id, timeout)
    finally:
        _INVOKE_LOCK.release()
    if printed is not None:
        lines.extend(printed.getvalue().splitlines())
    if errored:
        lines.append(payload)
    lines.append(f"END RequestId: {request_id}")
    lines.append(f"REPORT RequestId: {request_id}\tDuration: {duration * 1000:.2f} ms")
    logs = "\n".join(lines)
    _save_logs(function, logs)
    return payload, errored, logs


def _invoke_in_worker(function: Any, event: Any) -> tuple[str, bool, str]:
    request_id = str(uuid.uuid4())
    function.logs_backend.ensure_log_group(function.logs_group_name)
    spec = worker_spec(function)
    text = event if isinstance(event, str) else json.dumps({} if event is None else event)
    crash = _claim_crash(function.function_name)
    if crash is not None:
        message = _CRASH_MESSAGES[crash.error_type].format(
            request_id=request_id, timeout=spec.timeout_seconds
        )
        log.warning("function %s: %s (injected)", function.function_name, message)
        outcome = workers.Outcome(_error_payload(crash.error_type, message), True)
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
    _save_logs(function, logs)
    return outcome.payload, outcome.errored, logs


LAMBDA_SERVICE = "lambda.amazonaws.com"


def credentials(function: Any) -> Any:
    """The credentials Lambda gives the function: a session of its execution role, named
    after the function, that Lambda assumed. Raises LambdaRuntimeError when the role's trust
    policy does not let Lambda assume it."""
    from infra.local.authz import principals

    try:
        return principals.session_credentials(
            str(function.role),
            function.function_name,
            LAMBDA_SERVICE,
            source_arn=_unqualified(function.function_arn),
        )
    except principals.AssumeRoleDenied as exc:
        raise LambdaRuntimeError(
            "InvalidParameterValueException",
            f"The role defined for the function cannot be assumed by Lambda: {exc}",
        ) from None


def _unqualified(arn: str) -> str:
    return ":".join(arn.split(":")[:7])


def _save_logs(function: Any, logs: str) -> None:
    """Write an invocation's logs to the function's log group, as Lambda does with the
    function's role: a role that may not write there loses them (logged here)."""
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed

    stream = (
        f"arn:aws:logs:{function.region}:{ENFORCER.account}:log-group:"
        f"{function.logs_group_name}:log-stream:{function.function_name}"
    )
    needs = [Needed("logs:CreateLogStream", stream), Needed("logs:PutLogEvents", stream)]
    denial = role_denial(function, needs, "lambda.logs")
    if denial is not None:
        log.warning("function %s: its logs are lost: %s", function.function_name, denial.message)
        return
    with contextlib.suppress(Exception):
        function.save_logs(logs)


def role_denial(function: Any, needs: list[Any], operation: str) -> Any:
    """What Lambda does with the function's role on its behalf (write its logs, send an
    asynchronous invocation's on-failure record): the Denial when the role may not do all of
    `needs` (authz `Needed`), else None (also when IAM is not enforced)."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER

    if not ENFORCER.enabled:
        return None
    session = credentials(function)
    caller = principals.from_access_key(session.access_key_id, ENFORCER.account)
    if caller is None:
        return None
    return ENFORCER.authorize(caller, needs, operation)


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


def worker_spec(function: Any) -> workers.WorkerSpec:
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
        "LAMBDA_RUNTIME_DIR": str(workers.RUNTIME_SCRIPT.parent),
        **_lambda_variables(function, host.task_root, code.handler),
    }
    environment.update(
        {key: host.in_layers(str(value)) for key, value in function.environment_vars.items()}
    )
    reserved = getattr(function, "reserved_concurrency", None)
    storage = getattr(function, "ephemeral_storage", None) or 512
    return workers.WorkerSpec(
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


def _decode(event: Any) -> Any:
    if isinstance(event, bytes):
        event = event.decode("utf-8")
    if isinstance(event, str):
        try:
            return json.loads(event) if event else {}
        except json.JSONDecodeError:
            return event
    return {} if event is None else event


def _run(function: Any, event: Any, request_id: str, timeout: float) -> tuple[str, bool, float]:
    started = time.monotonic()
    try:
        code = code_for(function)
        with _function_environment(function, code), _on_sys_path(code.root):
            # Import time is Lambda's init phase: it does not count against the timeout.
            handler = _resolve_handler(code)
            started = time.monotonic()
            context = LambdaContext(function, request_id, started + timeout)
            result = handler(event, context)
        duration = time.monotonic() - started
        if duration > timeout:
            log.warning(
                "function %s ran %.1f s, over its %.0f s timeout: reported as timed out",
                function.function_name,
                duration,
                timeout,
            )
            message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
            return _error_payload("Sandbox.Timedout", message), True, duration
        return _serialize(result), False, duration
    except LambdaRuntimeError as exc:
        log.warning("function %s: %s: %s", function.function_name, exc.error_type, exc)
        return _error_payload(exc.error_type, str(exc)), True, time.monotonic() - started
    except Exception as exc:
        log.warning("function %s raised %s: %s", function.function_name, type(exc).__name__, exc)
        log.debug("traceback of %s", function.function_name, exc_info=True)
        stack = traceback.format_tb(exc.__traceback__)
        return (
            _error_payload(type(exc).__name__, str(exc), stack),
            True,
            time.monotonic() - started,
        )


def _serialize(result: Any) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise LambdaRuntimeError(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}"
        ) from None


def _error_payload(error_type: str, message: str, stack: list[str] | None = None) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": stack or []})


def _lambda_variables(function: Any, task_root: Path, handler: str) -> dict[str, str]:
    """The variables Lambda sets for a function, its role session's credentials among them."""
    region = function.region
    session = credentials(function)
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": function.logs_group_name,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time or 'Image'}",
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        # X-Ray is not emulated: keep the SDK from looking for a daemon.
        "AWS_XRAY_SDK_ENABLED": "false",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@contextlib.contextmanager
def _function_environment(function: Any, code: FunctionCode) -> Iterator[None]:
    """`os.environ` as the function sees it on Lambda, restored afterwards."""
    saved = dict(os.environ)
    environment = dict(saved)
    if SETTINGS.endpoint_url is None:
        # In-process mode intercepts boto3 calls to AWS endpoints; a custom endpoint would
        # bypass the interception and reach the network.
        for name in [name for name in environment if name.startswith("AWS_ENDPOINT_URL")]:
            del environment[name]
    environment.pop("AWS_PROFILE", None)
    environment.update(_lambda_variables(function, code.root, code.handler))
    environment.update(
        {
            key: _in_layers(str(value), code.layers)
            for key, value in function.environment_vars.items()
        }
    )
    if SETTINGS.endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = SETTINGS.endpoint_url
    _replace_environ(environment)
    try:
        yield
    finally:
        _replace_environ(saved)


def _in_layers(value: str, layers: tuple[Path, ...]) -> str:
    """A path under /opt names a file of the function's layers (Lambda mounts their content
    there; the first layer that has it wins): here, that file in the layer's build."""
    if not value.startswith(_OPT):
        return value
    for content in layers:
        candidate = content / value.removeprefix(_OPT)
        if candidate.exists():
            return str(candidate)
    return value


def _replace_environ(values: dict[str, str]) -> None:
    for name in [name for name in os.environ if name not in values]:
        del os.environ[name]
    for name, value in values.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextlib.contextmanager
def _on_sys_path(root: Path) -> Iterator[None]:
    entry = str(root)
    inserted = entry not in sys.path
    if inserted:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if inserted:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _resolve_handler(code: FunctionCode) -> Callable[..., Any]:
    key = (code.root, code.handler)
    if key not in _handlers:
        module_name, _, attribute = code.handler.rpartition(".")
        if not module_name:
            raise LambdaRuntimeError(
                "Runtime.MalformedHandlerName", f"Bad handler '{code.handler}': not enough values"
            )
        module = _import(module_name, code.root)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise LambdaRuntimeError(
                "Runtime.HandlerNotFound",
                f"Handler '{attribute}' missing on module '{module_name}'",
            )
        _handlers[key] = handler
    return _handlers[key]


def _import(module_name: str, root: Path) -> ModuleType:
    expected = _module_file(root, module_name)
    top = sys.modules.get(module_name.partition(".")[0])
    try:
        if expected is None or top is None or _is_under(top, root):
            return importlib.import_module(module_name)
        return _import_colliding(module_name, expected)
    except LambdaRuntimeError:
        raise
    except Exception as exc:
        raise LambdaRuntimeError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc


def _import_colliding(module_name: str, expected: Path) -> ModuleType:
    """A module whose top-level name is already imported from elsewhere (e.g. two zip
    functions' `index.py`, or the repo's `functions` package copied into an asset)."""
    loaded = sys.modules.get(module_name)
    if loaded is None:
        with contextlib.suppress(ImportError):
            loaded = importlib.import_module(module_name)
    loaded_file = getattr(loaded, "__file__", None)
    if loaded_file and Path(loaded_file).read_bytes() == expected.read_bytes():
        return loaded  # type: ignore[return-value]
    if "." in module_name:
        raise LambdaRuntimeError(
            "Runtime.ImportModuleError",
            f"module '{module_name}' at {expected} collides with '{module_name}' already "
            f"imported from {loaded_file}: the local cloud shares one interpreter",
        )
    alias = f"{ISOLATED_PREFIX}{hashlib.sha256(str(expected).encode()).hexdigest()[:12]}"
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, expected)
    if spec is None or spec.loader is None:
        raise LambdaRuntimeError("Runtime.ImportModuleError", f"cannot load {expected}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def _module_file(root: Path, module_name: str) -> Path | None:
    base = root.joinpath(*module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_under(module: ModuleType, root: Path) -> bool:
    locations = [module.__file__] if getattr(module, "__file__", None) else []
    locations += list(getattr(module, "__path__", []))
    resolved_root = root.resolve()
    return any(
        Path(str(location)).resolve().is_relative_to(resolved_root) for location in locations
    )


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
