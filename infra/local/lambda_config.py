"""The local Lambda's configuration: the runtime's settings (`SETTINGS`: how functions run,
where their output goes) and where each deployed function's code lives (`REGISTRY`: moto
keeps only bytes; the deployer registers the code's directories and its environment rebuilt
for this machine, `infra.cdk.function_env`)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from infra.cdk.function_env import HostEnvironment


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


class LambdaRuntimeError(Exception):
    """An error Lambda's runtime (not the handler) reports, with Lambda's error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


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
