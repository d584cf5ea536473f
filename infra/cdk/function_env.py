"""What a deployed function sees on Lambda, rebuilt on this machine: its runtime's Python, its
code, and only the packages its deployment carries.

Lambda gives a function its runtime, the code of its deployment package or image, and nothing
else: no dev virtualenv, no test tools. `deployed_functions` reads the project's functions
(handlers in the `functions` package) from a synthesized stack, template and asset manifest:

- a zip function: its code asset as shipped (the `functions/` package with Python 3.13
  bytecode), and its layers, each rebuilt from the pinned requirement file its template
  metadata names (`infra.cdk.layers.LAYER_METADATA`); the runtime is the template's `Runtime`;
- an image function: its image's build context (staged in cdk.out), read as its Dockerfile
  builds it: the base image's Python (`FROM .../python:3.13...`), the files `COPY` puts
  under `${LAMBDA_TASK_ROOT}`, and the requirement files `pip install -r` installs.

`host_environment` builds those packages for this machine's platform: the host twin of the
arm64 build, from the same pinned files with the same pip command and only the platform's
architecture changed, once per content hash under `.mlops/build`. `check_import` imports a
function's handler in a fresh interpreter of its runtime's version, isolated (`-I -S`: no
site-packages, no PYTHON* variables, no bytecode written), with `sys.path` exactly its code
and packages, and reports what Lambda's init would: `Runtime.ImportModuleError`,
`Runtime.HandlerNotFound`, or success. The same process proves the dev virtualenv is absent:
`import pytest` and `import moto` must fail there.

A zip function also sees what Lambda's Python runtime provides, the AWS SDK and its
dependencies, after its code and layers (`RUNTIME_PROVIDED`: pinned to this repository's
versions; AWS updates the runtime's). An image function sees what its Dockerfile installs:
the base image's own copy of the SDK is not reproduced (the training requirements pin it).

`python -m infra.cdk.function_env [cdk.out] [stack]` prints the check for every function.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from infra.cdk.config import REPO_ROOT
from infra.cdk.dockerfile import Instruction, parse_dockerfile
from infra.cdk.layers import (
    BUILD_ROOT,
    LAYER_METADATA,
    LayerBuildError,
    RuntimePython,
    build_layer,
    build_once,
    build_packages,
    host_platforms,
    missing_python_message,
    runtime_python,
)
from infra.local.assembly import StackArtifact, load_stack

RUNTIME_PROVIDED = REPO_ROOT / "layers" / "runtime-provided" / "requirements.txt"
"""What Lambda's Python runtime provides to zip functions (not deployed)."""
PROJECT_PACKAGE = "functions"
"""Functions whose handler lives in this package are the project's (CDK's own custom
resource handlers are not walked)."""
TASK_ROOT = "/var/task"
OPT = "/opt/"
_PYTHON_RUNTIME = re.compile(r"^python(?P<version>\d+\.\d+)$")
_PYTHON_IMAGE = re.compile(r"/python:(?P<version>\d+\.\d+)")
_TASK_ROOT_VARIABLE = re.compile(r"\$\{?LAMBDA_TASK_ROOT\}?")
DEV_ONLY_MODULES = ("pytest", "moto")
"""Installed in the dev virtualenv, never deployed: importable in a function's process only
if the dev virtualenv leaked into it."""
_IMPORT_TIMEOUT_SECONDS = 300


class FunctionEnvError(RuntimeError):
    """A function's deployment cannot be rebuilt here (stale cdk.out, an unreadable
    Dockerfile, no interpreter of its runtime's version, a package that does not build)."""


@dataclass(frozen=True)
class PackageSet:
    """Third-party packages a deployment carries, as built from one pinned requirement file."""

    requirements: Path
    kind: Literal["layer", "image", "runtime"]
    """A layer (mounted at /opt, `python/` on sys.path), an image's site-packages, or the
    runtime's own (zip functions)."""
    botocore_services: tuple[str, ...] = ()
    """Layers only: the services whose botocore data the layer carries trimmed."""


@dataclass(frozen=True)
class DeployedFunction:
    """A project function as its template defines it."""

    logical_id: str
    name: str
    """Its FunctionName if the template sets one, else the logical id."""
    kind: Literal["zip", "image"]
    handler: str
    python_version: str
    """The runtime's Python version (`python3.13`, or the image base's)."""
    code_sources: tuple[tuple[Path, str], ...]
    """(source, path under the task root): what the deployment puts in /var/task."""
    packages: tuple[PackageSet, ...]
    environment: dict[str, str] = field(default_factory=dict)
    """The template's environment variables with literal values (references to other
    resources are left out: they exist only once deployed)."""
    memory_mb: int = 128
    timeout_seconds: int = 3
    ephemeral_storage_mb: int = 512


@dataclass(frozen=True)
class HostEnvironment:
    """A function's deployment rebuilt for this machine."""

    python: RuntimePython
    task_root: Path
    """Its code, as /var/task holds it."""
    layers: tuple[Path, ...]
    """Its layers' content, as /opt holds it (each holds `python/`), in order."""
    site_packages: tuple[Path, ...]
    """Site-packages after the standard library: an image's installed packages, or what the
    runtime provides to a zip function."""

    @property
    def sys_path(self) -> list[Path]:
        """In Lambda's order: the task root, then the layers' `python/`, then site-packages."""
        return [
            self.task_root,
            *(layer / "python" for layer in self.layers),
            *self.site_packages,
        ]

    def in_layers(self, value: str) -> str:
        """A path under /opt names a file of the layers (the first that has it wins)."""
        if not value.startswith(OPT):
            return value
        for layer in self.layers:
            candidate = layer / value.removeprefix(OPT)
            if candidate.exists():
                return str(candidate)
        return value


@dataclass(frozen=True)
class ImportCheck:
    """The outcome of importing one function's handler as Lambda's init does."""

    function: DeployedFunction
    python_version: str
    error_type: str | None = None
    """`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`, ... ; None: it imported."""
    message: str = ""
    leaked: tuple[str, ...] = ()
    """Dev-only modules that imported in the function's process (must be none)."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error_type is None and not self.leaked

    def describe(self) -> str:
        head = f"{self.function.logical_id} ({self.function.kind}, {self.function.handler})"
        if self.leaked:
            return (
                f"{head}: {', '.join(self.leaked)} imported in the function's process: the "
                "dev virtualenv leaked into it"
            )
        if self.error_type is not None:
            return f"{head}: {self.error_type}: {self.message}"
        return f"{head}: imports under Python {self.python_version} in {self.seconds:.1f} s"


# Reading the template


def deployed_functions(cdk_out: Path, stack_name: str | None = None) -> list[DeployedFunction]:
    """The project's functions in a synthesized stack (sorted by logical id)."""
    stack = load_stack(Path(cdk_out), stack_name)
    resources: dict[str, Any] = stack.template.get("Resources", {})
    found = []
    for logical_id, resource in sorted(resources.items()):
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        function = describe_function(stack, logical_id, resource)
        if function is not None:
            found.append(function)
    return found


def describe_function(
    stack: StackArtifact, logical_id: str, resource: dict[str, Any]
) -> DeployedFunction | None:
    """One function resource as a `DeployedFunction`; None for a function that is not the
    project's (its handler is outside `PROJECT_PACKAGE`)."""
    properties = resource.get("Properties", {})
    code = properties.get("Code", {})
    image = properties.get("PackageType") == "Image" or "ImageUri" in code
    handler = (
        str((properties.get("ImageConfig", {}).get("Command") or [""])[0])
        if image
        else str(properties.get("Handler", ""))
    )
    if handler.partition(".")[0] != PROJECT_PACKAGE:
        return None
    common: dict[str, Any] = {
        "logical_id": logical_id,
        "name": str(properties.get("FunctionName") or logical_id),
        "handler": handler,
        "environment": {
            key: value
            for key, value in properties.get("Environment", {}).get("Variables", {}).items()
            if isinstance(value, str)
        },
        "memory_mb": int(properties.get("MemorySize", 128)),
        "timeout_seconds": int(properties.get("Timeout", 3)),
        "ephemeral_storage_mb": int(properties.get("EphemeralStorage", {}).get("Size", 512)),
    }
    if image:
        context, dockerfile = _image_context(stack, logical_id, code)
        recipe = read_image_recipe(context, dockerfile)
        return DeployedFunction(
            kind="image",
            python_version=recipe.python_version,
            code_sources=recipe.task_root_copies,
            packages=tuple(PackageSet(path, "image") for path in recipe.requirements),
            **common,
        )
    runtime = _PYTHON_RUNTIME.match(str(properties.get("Runtime", "")))
    if runtime is None:
        raise FunctionEnvError(
            f"{logical_id}: runtime {properties.get('Runtime')!r} is not a Python runtime"
        )
    asset = stack.asset_path(str(code.get("S3Key", "")))
    if asset is None or not asset.is_dir():
        raise FunctionEnvError(
            f"{logical_id}: code asset {code.get('S3Key')!r} is not a directory in "
            f"{stack.template_path.parent}"
        )
    layers = tuple(
        _layer_packages(stack, logical_id, layer) for layer in properties.get("Layers", [])
    )
    return DeployedFunction(
        kind="zip",
        python_version=runtime.group("version"),
        code_sources=((asset, "."),),
        packages=(*layers, PackageSet(RUNTIME_PROVIDED, "runtime")),
        **common,
    )


def _image_context(stack: StackArtifact, logical_id: str, code: dict[str, Any]) -> tuple[Path, str]:
    text = json.dumps(code.get("ImageUri"))
    for tag, directory in stack.image_assets.items():
        if tag in text:
            return directory, stack.image_dockerfiles.get(tag, "Dockerfile")
    raise FunctionEnvError(
        f"{logical_id}: image {text} is not one of the assembly's image assets (an image "
        "built elsewhere cannot be rebuilt here)"
    )


def _layer_packages(stack: StackArtifact, logical_id: str, layer: Any) -> PackageSet:
    reference = layer.get("Ref") if isinstance(layer, dict) else None
    resource = stack.template.get("Resources", {}).get(reference) if reference else None
    metadata = (resource or {}).get("Metadata", {}).get(LAYER_METADATA)
    if not metadata:
        raise FunctionEnvError(
            f"{logical_id}: layer {json.dumps(layer)} has no {LAYER_METADATA!r} metadata, so "
            "its packages cannot be rebuilt here (layers built by infra.cdk.layers carry it)"
        )
    requirements = REPO_ROOT / metadata["requirements"]
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if digest != metadata.get("requirements_sha256"):
        raise FunctionEnvError(
            f"{logical_id}: {metadata['requirements']} changed since the stack was "
            "synthesized: synthesize again"
        )
    return PackageSet(requirements, "layer", tuple(metadata.get("botocore_services", ())))


@dataclass(frozen=True)
class ImageRecipe:
    """What a function image's Dockerfile puts where, read without building it."""

    python_version: str
    requirements: tuple[Path, ...]
    """Requirement files `pip install -r` installs (in the build context)."""
    task_root_copies: tuple[tuple[Path, str], ...]
    """(source in the build context, path under the task root)."""


def read_image_recipe(context: Path, dockerfile: str = "Dockerfile") -> ImageRecipe:
    """Read the Dockerfile `dockerfile` (relative to the build context `context`)."""
    path = context / dockerfile
    instructions = parse_dockerfile(path.read_text(encoding="utf-8"))
    bases = [i for i in instructions if i.keyword == "FROM"]
    base = bases[-1].args[0] if bases and bases[-1].args else ""
    version = _PYTHON_IMAGE.search(base)
    if version is None:
        raise FunctionEnvError(f"{path}: FROM {base!r} is not a Python base image")
    copied: dict[str, Path] = {}
    task_root: list[tuple[Path, str]] = []
    requirements: list[Path] = []
    for instruction in instructions:
        if instruction.keyword == "COPY" and "from" not in instruction.flags:
            *sources, destination = instruction.args
            destination = _TASK_ROOT_VARIABLE.sub(TASK_ROOT, destination)
            for source in sources:
                copied[destination] = context / source
                under = PurePosixPath(destination)
                if under == PurePosixPath(TASK_ROOT) or under.is_relative_to(TASK_ROOT):
                    task_root.append((context / source, str(under.relative_to(TASK_ROOT))))
        elif instruction.keyword == "RUN":
            requirements.extend(_pip_requirement_files(instruction, copied, path))
    return ImageRecipe(version.group("version"), tuple(requirements), tuple(task_root))


def _pip_requirement_files(
    instruction: Instruction, copied: dict[str, Path], dockerfile: Path
) -> list[Path]:
    files = []
    for command in re.split(r"&&|;|\|\|", " ".join(instruction.args)):
        words = command.split()
        if "pip" not in " ".join(words[:4]) or "install" not in words:
            continue
        for flag, value in zip(words, words[1:], strict=False):
            if flag in ("-r", "--requirement"):
                if value not in copied:
                    raise FunctionEnvError(
                        f"{dockerfile} line {instruction.line}: pip installs {value}, which "
                        "no COPY puts there"
                    )
                files.append(copied[value])
    return files


# Building the host twin


def host_environment(function: DeployedFunction, build_root: Path = BUILD_ROOT) -> HostEnvironment:
    """`function`'s deployment built for this machine (cached by content under `build_root`).
    Raises FunctionEnvError when it cannot be built."""
    python = runtime_python(function.python_version)
    if python is None:
        raise FunctionEnvError(missing_python_message(function.python_version))
    platforms = host_platforms()
    layers: list[Path] = []
    site_packages: list[Path] = []
    try:
        for packages in function.packages:
            if packages.kind == "layer":
                build = build_layer(
                    packages.requirements,
                    name=f"{packages.requirements.parent.name}-layer-host",
                    build_root=build_root,
                    botocore_services=packages.botocore_services,
                    platforms=platforms,
                )
                layers.append(build.directory)
            else:
                site_packages.append(
                    build_packages(
                        packages.requirements,
                        name=f"{packages.requirements.parent.name}-{packages.kind}-host",
                        platforms=platforms,
                        build_root=build_root,
                    )
                )
    except LayerBuildError as exc:
        raise FunctionEnvError(f"{function.logical_id}: {exc}") from None
    task_root = _task_root(function, python, build_root)
    return HostEnvironment(python, task_root, tuple(layers), tuple(site_packages))


def _task_root(function: DeployedFunction, python: RuntimePython, build_root: Path) -> Path:
    """The task root under `build_root`, by content: a zip function's code asset as shipped
    (with its bytecode), an image's assembled from what its Dockerfile copies there and
    compiled, as the Dockerfile does. (Never a path under /tmp, where a worker's private /tmp
    is mounted.)"""
    image = function.kind == "image"
    digest = hashlib.sha256(f"{function.kind}|{python.version}".encode())
    files = sorted(_files(function.code_sources, bytecode=not image))
    for source, destination in files:
        digest.update(destination.encode() + b"\0" + source.read_bytes())

    def populate(staging: Path) -> Path:
        for source, destination in files:
            copy = staging / "task" / destination
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        return staging / "task"

    target = build_once(
        build_root / f"{function.kind}-task-{digest.hexdigest()[:16]}",
        python if image else None,
        populate,
    )
    return target / "task"


def _files(
    copies: Iterable[tuple[Path, str]], bytecode: bool = False
) -> Iterable[tuple[Path, str]]:
    for source, destination in copies:
        if source.is_file():
            yield source, destination
            continue
        for path in source.rglob("*"):
            relative = path.relative_to(source)
            compiled = "__pycache__" in relative.parts or path.suffix == ".pyc"
            if path.is_file() and (bytecode or not compiled):
                yield path, str(PurePosixPath(destination) / relative.as_posix())


# The import check

_IMPORT_SCRIPT = """
import importlib, json, sys, traceback
paths, module_name, attribute, dev_only = json.loads(sys.argv[1])
sys.path[:0] = paths
leaked = []
for name in dev_only:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    leaked.append(name)
result = {"leaked": leaked, "error_type": None, "message": "", "sys_path": sys.path}
try:
    module = importlib.import_module(module_name)
except Exception as exc:
    result["error_type"] = "Runtime.ImportModuleError"
    result["message"] = f"Unable to import module '{module_name}': {exc}"
    result["traceback"] = traceback.format_exc(limit=-8)
else:
    if not callable(getattr(module, attribute, None)):
        result["error_type"] = "Runtime.HandlerNotFound"
        result["message"] = f"Handler '{attribute}' missing on module '{module_name}'"
print("\\n" + json.dumps(result))
"""


def lambda_environment(
    function: DeployedFunction, environment: HostEnvironment, region: str = "us-east-1"
) -> dict[str, str]:
    """The variables a function's process starts with: Lambda's reserved ones and the
    template's literal ones (paths under /opt mapped into the layers' builds)."""
    variables = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{function.python_version}",
        "LAMBDA_TASK_ROOT": str(environment.task_root),
        "_HANDLER": function.handler,
    }
    variables.update(
        {key: environment.in_layers(value) for key, value in function.environment.items()}
    )
    return variables


def check_import(function: DeployedFunction, build_root: Path = BUILD_ROOT) -> ImportCheck:
    """Import `function`'s handler as Lambda's init does, in a fresh isolated interpreter of
    its runtime's version with only its deployment on `sys.path`."""
    environment = host_environment(function, build_root)
    module_name, _, attribute = function.handler.rpartition(".")
    argument = json.dumps(
        [
            [str(path) for path in environment.sys_path],
            module_name,
            attribute,
            list(DEV_ONLY_MODULES),
        ]
    )
    started = time.monotonic()
    try:
        result = subprocess.run(
            [environment.python.executable, "-I", "-S", "-B", "-c", _IMPORT_SCRIPT, argument],
            capture_output=True,
            text=True,
            env=lambda_environment(function, environment),
            cwd=environment.task_root,
            timeout=_IMPORT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ImportCheck(
            function,
            environment.python.version,
            "Runtime.InitTimeout",
            f"importing the handler took over {_IMPORT_TIMEOUT_SECONDS} s",
        )
    seconds = time.monotonic() - started
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        return ImportCheck(
            function,
            environment.python.version,
            "Runtime.ExitError",
            f"the interpreter exited with {result.returncode}: {tail}",
            seconds=seconds,
        )
    outcome = json.loads(lines[-1])
    return ImportCheck(
        function,
        environment.python.version,
        outcome["error_type"],
        outcome["message"],
        tuple(outcome["leaked"]),
        seconds,
    )


def check_imports(
    functions: Sequence[DeployedFunction], build_root: Path = BUILD_ROOT
) -> list[ImportCheck]:
    """`check_import` for every function, as many at once as this machine has cores (the
    environments they share are built first, once)."""
    for function in functions:
        host_environment(function, build_root)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda f: check_import(f, build_root), functions))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cdk_out = Path(args[0]) if args else REPO_ROOT / "cdk.out"
    stack = args[1] if len(args) > 1 else None
    try:
        checks = check_imports(deployed_functions(cdk_out, stack))
    except FunctionEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for check in checks:
        print(("ok    " if check.passed else "FAIL  ") + check.describe())
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
