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
architecture changed, once per content hash under `.mlops/build`. The local cloud's workers
run functions there; `import_check` imports each handler there as Lambda's init would.

A zip function also sees what Lambda's Python runtime provides, the AWS SDK and its
dependencies, after its code and layers (`RUNTIME_PROVIDED`: pinned to this repository's
versions; AWS updates the runtime's). An image function sees what its Dockerfile installs:
the base image's own copy of the SDK is not reproduced (the training requirements pin it).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from infra.cdk.config import REPO_ROOT
from infra.cdk.dockerfile import Instruction, expand_args, parse_dockerfile
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
        context, dockerfile, build_args = _image_context(stack, logical_id, code)
        recipe = read_image_recipe(context, dockerfile, build_args)
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


def _image_context(
    stack: StackArtifact, logical_id: str, code: dict[str, Any]
) -> tuple[Path, str, dict[str, str]]:
    text = json.dumps(code.get("ImageUri"))
    for tag, directory in stack.image_assets.items():
        if tag in text:
            return (
                directory,
                stack.image_dockerfiles.get(tag, "Dockerfile"),
                stack.image_build_args.get(tag, {}),
            )
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


def read_image_recipe(
    context: Path, dockerfile: str = "Dockerfile", build_args: dict[str, str] | None = None
) -> ImageRecipe:
    """Read the Dockerfile `dockerfile` (relative to the build context `context`), its `ARG`s
    set to `build_args` (else their defaults) in the COPY sources, as `docker build` would."""
    path = context / dockerfile
    instructions = expand_args(parse_dockerfile(path.read_text(encoding="utf-8")), build_args)
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
