"""Lambda layers built without Docker: `pip install --only-binary=:all:` for the Lambda
runtime's platform (Python 3.13, manylinux aarch64) into `<build>/python`, cached by a hash
of the requirements so repeated synths reuse one build.

The serving layer ships its own pinned boto3 and botocore, so that it can also carry
botocore's data trimmed to the predict function's services for that exact botocore
(`python/mlops_botocore_data`, see `infra.cdk.cold_start`).

Bytecode: Lambda mounts layers and code read-only, so without `.pyc` files every cold start
compiles every module it imports. The layer, and the zip functions' code
(`build_function_code`), are compiled by a Python 3.13 interpreter (the runtime's
version; `$MLOPS_PYTHON313`, else `python3.13` on PATH, else one installed by pyenv), as
unchecked-hash pycs: neither changes after the build, so Python loads them without reading
the source. Without
such an interpreter both are built without bytecode and `LayerBuild.bytecode` says so
(`mlops predeploy` fails on it).

`python -m infra.cdk.layers` builds the serving layer and prints its size (`make layer`)."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.cdk import cold_start
from infra.cdk.config import REPO_ROOT

SERVING_REQUIREMENTS = REPO_ROOT / "layers" / "serving" / "requirements.txt"
FUNCTION_SOURCE = REPO_ROOT / "functions"
BUILD_ROOT = REPO_ROOT / ".mlops" / "build"
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
"""Lambda's limit on a zip function's code plus all its layers, unzipped."""

PYTHON_VERSION = "3.13"
# onnxruntime's aarch64 wheels are tagged manylinux_2_28 only; others ship manylinux2014.
PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
_COMPLETE = ".complete"
_BYTECODE = ".bytecode"
RUNTIME_PYTHON_ENV = "MLOPS_PYTHON313"
# Build output the Lambda runtime never reads: bytecode compiled by this machine's Python
# (a different version from the runtime's), console scripts, packages' own test suites and
# the install records pip writes (METADATA stays: importlib.metadata reads it).
_STRIPPED_DIRS = {"__pycache__", "tests", "bin"}
_STRIPPED_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


class LayerBuildError(RuntimeError):
    """pip could not build the layer (no network, a pin without a wheel for the platform)."""


@dataclass(frozen=True)
class LayerBuild:
    directory: Path
    """The layer's content root: holds `python/`, as Lambda mounts it under /opt."""
    fingerprint: str
    """Hash of the requirements and build settings: the asset hash of the layer."""
    unzipped_bytes: int
    bytecode: str | None = None
    """The Python version that compiled the layer's `.pyc` files; None: none were."""
    requirements: Path = SERVING_REQUIREMENTS
    botocore_services: tuple[str, ...] = ()

    def metadata(self) -> dict[str, object]:
        """How the layer was built, for its template resource (`LAYER_METADATA`): enough to
        build the same layer for another platform (`infra.cdk.function_env`)."""
        return {
            "requirements": self.requirements.relative_to(REPO_ROOT).as_posix(),
            "requirements_sha256": hashlib.sha256(self.requirements.read_bytes()).hexdigest(),
            "botocore_services": list(self.botocore_services),
        }


LAYER_METADATA = "mlops:layer"
"""The template metadata key of a layer built here (`LayerBuild.metadata`)."""


def build_layer(
    requirements: Path = SERVING_REQUIREMENTS,
    name: str = "serving-layer",
    build_root: Path = BUILD_ROOT,
    botocore_services: tuple[str, ...] = cold_start.PREDICT_SERVICES,
    platforms: tuple[str, ...] = PLATFORMS,
) -> LayerBuild:
    """The layer for `requirements`, built once and reused while the file is unchanged.
    With `botocore_services`, the layer's botocore data trimmed to them is added. `platforms`
    are the wheel platforms (Lambda's by default; `host_platforms()` for the layer's twin
    that runs on this machine)."""
    compiler = runtime_python()
    fingerprint = _fingerprint(requirements, botocore_services, compiler, platforms)

    def populate(staging: Path) -> Path:
        _pip_install(requirements, staging / "python", platforms)
        _strip(staging / "python")
        if botocore_services:
            _trim_botocore_data(staging / "python", botocore_services)
        return staging / "python"

    target = build_once(build_root / f"{name}-{fingerprint}", compiler, populate)
    return LayerBuild(
        target,
        fingerprint,
        directory_size(target / "python"),
        _bytecode_version(target),
        requirements,
        botocore_services,
    )


def build_packages(
    requirements: Path,
    name: str,
    platforms: tuple[str, ...],
    build_root: Path = BUILD_ROOT,
) -> Path:
    """What `pip install -r requirements` puts into a container image's site-packages, for
    `platforms`, compiled by the runtime's Python as pip in the image compiles it; built once
    per content of `requirements` and reused. Returns the packages' directory."""
    compiler = runtime_python()
    fingerprint = _fingerprint(requirements, (), compiler, platforms, strip=False)

    def populate(staging: Path) -> Path:
        _pip_install(requirements, staging / "site-packages", platforms)
        return staging / "site-packages"

    return build_once(build_root / f"{name}-{fingerprint}", compiler, populate) / "site-packages"


def host_platforms() -> tuple[str, ...]:
    """The wheel platforms of this machine that match Lambda's (`PLATFORMS`) with this
    machine's architecture: the host twin of a build installs the same pins for them."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return tuple(tag.replace("aarch64", machine) for tag in PLATFORMS)


@dataclass(frozen=True)
class FunctionCodeBuild:
    directory: Path
    """The zip functions' code asset: holds the `functions/` package."""
    unzipped_bytes: int
    bytecode: str | None = None
    """The Python version that compiled its `.pyc` files; None: none were."""


def build_function_code(
    source: Path = FUNCTION_SOURCE, build_root: Path = BUILD_ROOT
) -> FunctionCodeBuild:
    """The zip functions' code: `source` (the `functions/` package, without this machine's
    bytecode) plus bytecode of the runtime's Python, as for the layer. Built once per
    content of `source` and reused."""
    compiler = runtime_python()
    digest = hashlib.sha256(f"{compiler.version if compiler else None}".encode())
    for path in sorted(_code_files(source)):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    fingerprint = digest.hexdigest()[:16]

    def populate(staging: Path) -> Path:
        package = staging / "code" / source.name
        for path in _code_files(source):
            copy = package / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        return staging / "code"

    target = build_once(build_root / f"function-code-{fingerprint}", compiler, populate)
    return FunctionCodeBuild(
        target / "code", directory_size(target / "code"), _bytecode_version(target)
    )


def build_once(
    target: Path, compiler: RuntimePython | None, populate: Callable[[Path], Path]
) -> Path:
    """`target`, built unless a complete build is there: `populate(staging)` fills a staging
    directory and returns the tree to compile with `compiler`; the staging directory then
    becomes `target` in one rename, so a half-built or concurrent build is never used."""
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        tree = populate(staging)
        if compiler is not None:
            _compile(compiler, tree)
            (staging / _BYTECODE).write_text(compiler.version + "\n")
        (staging / _COMPLETE).write_text(target.name + "\n")
        try:
            staging.rename(target)
        except OSError:
            # Another synth finished the same build first: use that one.
            if not (target / _COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _bytecode_version(target: Path) -> str | None:
    bytecode = target / _BYTECODE
    return bytecode.read_text().strip() if bytecode.exists() else None


def _code_files(source: Path) -> list[Path]:
    return [
        path
        for path in source.rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and "__pycache__" not in path.relative_to(source).parts
    ]


@dataclass(frozen=True)
class RuntimePython:
    executable: str
    version: str
    """Its full version, e.g. 3.13.0."""


def runtime_python(version: str = PYTHON_VERSION) -> RuntimePython | None:
    """A Python interpreter of `version` (the Lambda runtime's by default), to compile bytecode
    and run functions with: `$MLOPS_PYTHON313` (for 3.13), else `python3.13` on PATH, else one
    pyenv installed; None if none runs."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [
        os.environ.get(RUNTIME_PYTHON_ENV) if version == PYTHON_VERSION else None,
        shutil.which(f"python{version}"),
        *sorted(str(p) for p in pyenv.glob(f"versions/{version}.*/bin/python{version}")),
    ]
    for executable in filter(None, candidates):
        found = _python_version(executable)
        if found is not None and found.rsplit(".", 1)[0] == version:
            return RuntimePython(executable, found)
    return None


def missing_python_message(version: str = PYTHON_VERSION) -> str:
    """What to do when `runtime_python(version)` finds none."""
    hint = f"set {RUNTIME_PYTHON_ENV} to its interpreter, " if version == PYTHON_VERSION else ""
    return (
        f"Python {version} (the Lambda runtime's version) was not found: {hint}put "
        f"python{version} on PATH, or install it with `pyenv install {version}`"
    )


@functools.lru_cache(maxsize=16)
def _python_version(executable: str) -> str | None:
    """The version an interpreter reports (asked once per synth, not once per function)."""
    try:
        result = subprocess.run(
            [executable, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _run(command: list[str], action: str) -> subprocess.CompletedProcess[str]:
    """A build step's process, its output captured, given up to 15 minutes; one that cannot
    start or does not finish in time raises LayerBuildError("cannot <action>: ...")."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LayerBuildError(f"cannot {action}: {exc}") from None


def _compile(compiler: RuntimePython, python: Path) -> None:
    command = [
        compiler.executable,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        str(python),
    ]
    result = _run(command, "compile the layer's bytecode")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise LayerBuildError(
            f"compiling the layer's bytecode with Python {compiler.version} failed:\n{tail}"
        )


def directory_size(root: Path, exclude_dirs: frozenset[str] = frozenset()) -> int:
    """Bytes of the files under `root` (what Lambda counts against the unzipped limit)."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not exclude_dirs.intersection(path.relative_to(root).parts):
            total += path.stat().st_size
    return total


def _fingerprint(
    requirements: Path,
    botocore_services: tuple[str, ...] = (),
    compiler: RuntimePython | None = None,
    platforms: tuple[str, ...] = PLATFORMS,
    strip: bool = True,
) -> str:
    settings = f"{PYTHON_VERSION}|{','.join(platforms)}|{sorted(_STRIPPED_DIRS) if strip else ''}"
    if compiler is not None:
        settings += f"|bytecode {compiler.version} unchecked-hash"
    digest = hashlib.sha256(settings.encode())
    digest.update(requirements.read_bytes())
    if botocore_services:
        digest.update(",".join(sorted(botocore_services)).encode())
        digest.update(Path(cold_start.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _trim_botocore_data(python: Path, services: tuple[str, ...]) -> None:
    package = python / "botocore"
    if not package.is_dir():
        raise LayerBuildError(
            f"the layer's requirements do not install botocore, so there is no botocore data "
            f"to trim for {', '.join(services)}: pin boto3 and botocore in them"
        )
    cold_start.write_slim_data(package, python / cold_start.SLIM_DATA_DIR, services)


def _pip_install(requirements: Path, target: Path, platforms: tuple[str, ...] = PLATFORMS) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        *(arg for tag in platforms for arg in ("--platform", tag)),
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    result = _run(command, "run pip to build the layer")
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "WARNING: Location" not in line]
        tail = "\n".join(errors[-15:])
        raise LayerBuildError(
            f"installing {requirements} failed (pip exit {result.returncode}); it needs "
            f"PyPI (or a mirror via PIP_INDEX_URL) and a cp313 wheel for "
            f"{' or '.join(platforms)} for every pin:\n{tail}"
        )


def _strip(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _STRIPPED_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and (
            path.suffix == ".pyc"
            or (path.parent.name.endswith(".dist-info") and path.name in _STRIPPED_DIST_INFO)
        ):
            path.unlink()


def main() -> None:
    try:
        build = build_layer()
    except LayerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    compiled = f"bytecode of Python {build.bytecode}" if build.bytecode else "no bytecode"
    print(f"{build.directory}: {build.unzipped_bytes / 1e6:.1f} MB unzipped, {compiled}")


if __name__ == "__main__":
    main()
