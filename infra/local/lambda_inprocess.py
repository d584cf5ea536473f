"""In-process invocation, a debugging aid (the local cloud's in-process mode): the handler is
imported into this process from the function's code (a zip asset directory in cdk.out, or the
repo's `functions/` package for container-image functions) and called with the function's
environment variables applied to `os.environ` and a fake LambdaContext. `os.environ` is
process-wide, so invocations are serialised by one lock: a function that synchronously
invokes another function would wait for the lock until it gives up
(`LocalCloud.ConcurrencyTimeout`). What the function prints is collected for its log stream
(`FunctionOutput`)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.lambda_config import SETTINGS, FunctionCode, LambdaRuntimeError, code_for
from infra.local.lambda_crashes import injected_crash
from infra.local.lambda_environment import lambda_variables, save_logs
from infra.local.workers import error_payload

log = logging.getLogger("infra.local.lambda")

_INVOKE_LOCK = threading.Lock()
_LOCK_MARGIN_SECONDS = 60
ISOLATED_PREFIX = "_mlops_local_lambda_"
_OPT = "/opt/"


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


def forget_handlers() -> None:
    """Forget resolved handlers (a new local cloud starts)."""
    _handlers.clear()


def invoke_in_process(function: Any, event: Any) -> tuple[str, bool, str]:
    """One invocation in this process: (payload, errored, logs)."""
    request_id = str(uuid.uuid4())
    function.logs_backend.ensure_log_group(function.logs_group_name)
    event = _decode(event)
    timeout = float(function.timeout or 3)
    lines = [f"START RequestId: {request_id} Version: $LATEST"]
    if not _INVOKE_LOCK.acquire(timeout=timeout + _LOCK_MARGIN_SECONDS):
        payload = error_payload(
            "LocalCloud.ConcurrencyTimeout",
            "the local cloud runs one function at a time and another invocation did not finish",
        )
        return payload, True, "\n".join(lines)
    output = _function_output()
    try:
        with output.collecting() if output else contextlib.nullcontext() as printed:
            crash = injected_crash(function.function_name, request_id, timeout)
            if crash is not None:
                payload, errored, duration = crash, True, 0.0
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
    save_logs(function, logs)
    return payload, errored, logs


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
            return error_payload("Sandbox.Timedout", message), True, duration
        return _serialize(result), False, duration
    except LambdaRuntimeError as exc:
        log.warning("function %s: %s: %s", function.function_name, exc.error_type, exc)
        return error_payload(exc.error_type, str(exc)), True, time.monotonic() - started
    except Exception as exc:
        log.warning("function %s raised %s: %s", function.function_name, type(exc).__name__, exc)
        log.debug("traceback of %s", function.function_name, exc_info=True)
        stack = traceback.format_tb(exc.__traceback__)
        return (
            error_payload(type(exc).__name__, str(exc), stack),
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
    environment.update(lambda_variables(function, code.root, code.handler))
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
