"""Pre-deploy checks that need no AWS account: what would otherwise fail only during (or
after) `cdk deploy`, found on this machine first.

1. The serving layer (built for Lambda's Python 3.13 on manylinux aarch64) plus the function
   code stays under Lambda's 250 MB unzipped limit, and the layer carries bytecode compiled
   by Python 3.13.
2. Every requirement of the training image is pinned with `==` and resolves to wheels for
   that platform (pip's dry run: it reads wheel metadata, it does not install anything), and
   every package pip would install is pinned in the file, dependencies included, so the
   image holds exactly the versions the tests ran against.
3. The training Dockerfile builds on the AWS Lambda Python 3.13 arm64 base image, copies only
   what the image needs, and agrees with the build context the CDK asset sends.
4. Every function of the stage's synthesized template imports its handler under Python 3.13
   with only its deployed code and packages (`infra.cdk.function_env`): a package the deployment
   lacks fails here with `Runtime.ImportModuleError`, not at the first invocation on AWS.
5. Every `.so` of the serving layer and of the training image finds the shared libraries it
   needs (`DT_NEEDED`) in Lambda's base image (the list kept in the repo), in what the
   Dockerfile installs with dnf, or in the deployment itself (`infra.cdk.shared_libraries`).
6. The synthesized template against the deployed one (`infra.cdk.replacements`): no resource
   holding data is replaced or deleted unless the operator allows it by logical id.

Each check returns a `CheckResult` with a one-line figure; `mlops predeploy` prints them and
`make deploy` runs them before `cdk deploy`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Any

from infra.cdk.config import REPO_ROOT
from infra.cdk.dockerfile import Instruction, expand_args, parse_dockerfile
from infra.cdk.layers import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    PLATFORMS,
    PYTHON_VERSION,
    RUNTIME_PYTHON_ENV,
    LayerBuild,
    LayerBuildError,
    build_function_code,
    build_layer,
    build_packages,
)
from infra.cdk.replacements import Verdict, compare_templates, judge

TRAINING_REQUIREMENTS = REPO_ROOT / "layers" / "training" / "requirements.txt"
MIB = 2**20
BASE_IMAGE = "public.ecr.aws/lambda/python"
# What the training image needs from the repo: its pinned requirements, the code, and the
# model code folder (the MODEL_CODE build argument; its default is the placeholder folder).
IMAGE_SOURCES = ("layers/training/requirements.txt", "functions", "layers/training/model_code")
_BASE_TAG = re.compile(r"^3\.13(?:\.[0-9.]+)?(?P<arch>-arm64|-x86_64)?$")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!*-]+$")
# pip's messages when the index cannot be reached at all (as opposed to a pin it lacks).
_UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
)
_PIP_TIMEOUT_SECONDS = 600
_TAG = PYTHON_VERSION.replace(".", "")


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    figure: str
    """One line: the measured figure, or what failed in short."""
    problems: list[str] = field(default_factory=list)
    """Why the check failed, one message each (empty when it passed)."""
    unreachable: bool = False
    """The check could not run because the package index was unreachable."""


# 1. Serving layer size


def function_code_bytes() -> int:
    """The zip functions' code asset as it ships (`functions/` and its bytecode), unzipped:
    the measure synth checks too."""
    return build_function_code().unzipped_bytes


def judge_unzipped_size(
    layer_bytes: int, code_bytes: int, limit: int = LAMBDA_UNZIPPED_LIMIT_BYTES
) -> CheckResult:
    """Layer plus code against Lambda's unzipped limit, with the headroom left."""
    total = layer_bytes + code_bytes
    headroom = limit - total
    figure = (
        f"layer {layer_bytes / MIB:.1f} MiB + code {code_bytes / MIB:.1f} MiB = "
        f"{total / MIB:.1f} MiB of {limit / MIB:.0f} MiB; headroom {headroom / MIB:.1f} MiB"
    )
    if total < limit:
        return CheckResult("serving layer size", True, figure)
    return CheckResult(
        "serving layer size",
        False,
        figure,
        [
            f"the predict function would be {total / MIB:.1f} MiB unzipped, "
            f"{-headroom / MIB:.1f} MiB over Lambda's {limit / MIB:.0f} MiB limit; trim "
            "layers/serving/requirements.txt"
        ],
    )


def check_layer_size(build: Callable[[], LayerBuild] = build_layer) -> CheckResult:
    """Build the serving layer (or reuse the cached build) and judge its size."""
    try:
        layer = build()
    except LayerBuildError as exc:
        return CheckResult("serving layer size", False, "the layer did not build", [str(exc)])
    return judge_unzipped_size(layer.unzipped_bytes, function_code_bytes())


def check_layer_bytecode(build: Callable[[], LayerBuild] = build_layer) -> CheckResult:
    """The serving layer carries bytecode of the runtime's Python: Lambda mounts it read-only,
    so without it every cold start compiles every module it imports."""
    name = "serving layer bytecode"
    try:
        layer = build()
    except LayerBuildError as exc:
        return CheckResult(name, False, "the layer did not build", [str(exc)])
    if layer.bytecode is None:
        return CheckResult(
            name,
            False,
            f"no Python {PYTHON_VERSION} found to compile it",
            [
                f"the serving layer was built without .pyc files: every cold start would "
                f"compile its imports (about 0.9 s more for predict, measured); install "
                f"Python {PYTHON_VERSION} or point {RUNTIME_PYTHON_ENV} at one, then rerun"
            ],
        )
    pycs = sum(1 for _ in (layer.directory / "python").rglob(f"*.cpython-{_TAG}.pyc"))
    return CheckResult(name, True, f"compiled by Python {layer.bytecode}: {pycs} modules")


# 2. Training requirements resolve for the Lambda platform


def unpinned_requirements(lines: Sequence[str]) -> list[str]:
    """Requirement lines not pinned to one version with `==` (`line N: text`)."""
    problems = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = line.split(";", 1)[0].strip().replace(" ", "")
        if not _PINNED.match(requirement):
            problems.append(f"line {number}: {line}")
    return problems


def check_requirements_resolve(requirements: Path = TRAINING_REQUIREMENTS) -> CheckResult:
    """Every requirement pinned with `==`, and pip resolves them all to cp313 manylinux
    aarch64 wheels (dry run: pip reads the wheels' metadata, it installs nothing)."""
    name = "training requirements resolve"
    unpinned = unpinned_requirements(requirements.read_text(encoding="utf-8").splitlines())
    if unpinned:
        return CheckResult(
            name,
            False,
            f"{len(unpinned)} requirement(s) not pinned with ==",
            [f"{requirements.name} {line} is not pinned with ==" for line in unpinned],
        )
    with TemporaryDirectory(prefix="predeploy-") as tmp:
        report_path = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--only-binary=:all:",
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            "--report",
            str(report_path),
            "-r",
            str(requirements),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=_PIP_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CheckResult(name, False, "pip did not run", [f"cannot run pip: {exc}"])
        if result.returncode != 0:
            return _resolve_failure(name, requirements, result.stderr)
        report = json.loads(report_path.read_text(encoding="utf-8"))
    installed = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in report.get("install", [])
    )
    unlisted = _unlisted(installed, requirements)
    if unlisted:
        return CheckResult(
            name,
            False,
            f"{len(unlisted)} of {len(installed)} packages are not pinned in {requirements.name}",
            [
                f"pip would also install {pin}, which {requirements.name} does not pin: add "
                "it, so every build of the image installs the same version"
                for pin in unlisted
            ],
        )
    return CheckResult(
        name,
        True,
        f"{len(installed)} packages resolve to cp313 manylinux aarch64 wheels "
        f"({', '.join(PLATFORMS)})",
    )


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _unlisted(installed: Sequence[str], requirements: Path) -> list[str]:
    """The `name==version` pins in `installed` whose package the file does not name."""
    named = {
        _normalised(re.split(r"[=<>!~\[; ]", line.strip(), maxsplit=1)[0])
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    return [pin for pin in installed if _normalised(pin.split("==")[0]) not in named]


def _resolve_failure(name: str, requirements: Path, stderr: str) -> CheckResult:
    lines = [line for line in stderr.splitlines() if "WARNING: Location" not in line]
    unreachable = any(marker in stderr for marker in _UNREACHABLE)
    errors = [
        line.removeprefix("ERROR: ")
        for line in lines
        if line.startswith("ERROR:") and "Ignored the following" not in line
    ]
    if unreachable:
        return CheckResult(
            name,
            False,
            "the package index is unreachable",
            [
                "pip could not reach the package index (PyPI, or PIP_INDEX_URL): "
                + (errors[-1] if errors else lines[-1] if lines else "no output")
            ],
            unreachable=True,
        )
    return CheckResult(
        name,
        False,
        f"{requirements.name} does not resolve for cp313 manylinux aarch64",
        errors or lines[-10:],
    )


# 3. Training Dockerfile


def check_dockerfile(
    dockerfile: Path | None = None, context: Sequence[str] | None = None
) -> CheckResult:
    """The training Dockerfile against the Lambda base image, the files it may copy, its
    pip install and the CDK asset's build context (`TRAINING_IMAGE_CONTEXT`)."""
    from infra.cdk.constructs.stage_function import TRAINING_DOCKERFILE, TRAINING_IMAGE_CONTEXT

    dockerfile = dockerfile or REPO_ROOT / TRAINING_DOCKERFILE
    context = TRAINING_IMAGE_CONTEXT if context is None else context
    instructions = expand_args(parse_dockerfile(dockerfile.read_text(encoding="utf-8")))
    problems = [f"{dockerfile.name} {p}" for p in dockerfile_problems(instructions, context)]
    base = next((i for i in reversed(instructions) if i.keyword == "FROM"), None)
    figure = f"FROM {base.args[0] if base and base.args else '(none)'}; copies " + ", ".join(
        sorted({_normalise(s) for i in instructions if i.keyword == "COPY" for s in i.args[:-1]})
    )
    return CheckResult("training Dockerfile", not problems, figure, problems)


def dockerfile_problems(instructions: Sequence[Instruction], context: Sequence[str]) -> list[str]:
    problems = _base_image_problems(instructions)
    copies: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ADD":
            problems.append(
                f"line {instruction.line}: ADD fetches URLs and unpacks archives; use COPY"
            )
        if instruction.keyword != "COPY" or "from" in instruction.flags:
            continue
        if len(instruction.args) < 2:
            problems.append(f"line {instruction.line}: COPY needs a source and a destination")
            continue
        *sources, destination = instruction.args
        for source in sources:
            copied = _normalise(source)
            if copied in ("", ".", "*") or copied not in IMAGE_SOURCES:
                problems.append(
                    f"line {instruction.line}: `COPY {source}` copies "
                    + ("the whole build context" if copied in ("", ".", "*") else source)
                    + f"; the image needs only {', '.join(IMAGE_SOURCES)}"
                )
            copies[copied] = destination
    missing = [source for source in IMAGE_SOURCES if source not in copies]
    problems.extend(f"never copies {source}, which the image needs" for source in missing)
    requirements_in_image = copies.get(IMAGE_SOURCES[0])
    problems.extend(_pip_problems(instructions, requirements_in_image))
    problems.extend(_context_problems(sorted(copies), context))
    return problems


def _base_image_problems(instructions: Sequence[Instruction]) -> list[str]:
    stages = [i for i in instructions if i.keyword == "FROM"]
    if not stages:
        return ["has no FROM"]
    final = stages[-1]
    image = final.args[0] if final.args else ""
    repository, _, tag = image.partition("@")[0].rpartition(":")
    match = _BASE_TAG.match(tag) if repository == BASE_IMAGE else None
    platform = final.flags.get("platform", "")
    wanted = f"{BASE_IMAGE}:3.13-arm64 (or :3.13 with --platform=linux/arm64)"
    if match is None:
        return [f"line {final.line}: FROM {image} is not the AWS Lambda Python 3.13 image {wanted}"]
    arch = match.group("arch")
    if arch == "-x86_64" or (platform and platform != "linux/arm64"):
        return [f"line {final.line}: FROM {image} {platform} is an x86_64 image; use {wanted}"]
    if arch is None and platform != "linux/arm64":
        return [
            f"line {final.line}: FROM {image} is multi-architecture: the build host's "
            f"architecture decides; use {wanted}"
        ]
    return []


def _pip_problems(instructions: Sequence[Instruction], requirements: str | None) -> list[str]:
    problems = []
    installs = 0
    for instruction in instructions:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", " ".join(instruction.args)):
            words = command.split()
            if "pip" not in " ".join(words[:4]) or "install" not in words:
                continue
            installs += 1
            arguments = words[words.index("install") + 1 :]
            if "--no-cache-dir" not in arguments:
                problems.append(
                    f"line {instruction.line}: pip install without --no-cache-dir keeps pip's "
                    "download cache in the image"
                )
            files = [b for a, b in zip(arguments, arguments[1:], strict=False) if a in ("-r",)]
            files += [a.split("=", 1)[1] for a in arguments if a.startswith("--requirement=")]
            named = [
                word
                for previous, word in zip(["install", *arguments], arguments, strict=False)
                if not word.startswith("-") and previous not in ("-r", "-c", "--requirement")
            ]
            if named:
                problems.append(
                    f"line {instruction.line}: pip installs {', '.join(named)} outside the "
                    f"pinned {IMAGE_SOURCES[0]}"
                )
            if requirements is not None and files and requirements not in files:
                problems.append(
                    f"line {instruction.line}: pip installs from {', '.join(files)}, not the "
                    f"copied {IMAGE_SOURCES[0]} ({requirements})"
                )
    if not installs:
        problems.append(f"never runs pip install -r on {IMAGE_SOURCES[0]}")
    return problems


def _context_problems(copied: Sequence[str], context: Sequence[str]) -> list[str]:
    """The CDK asset's ignore rules must let in what the Dockerfile copies, and nothing else
    (besides the Dockerfile's own directory content)."""
    if not context or context[0] != "*":
        return [
            "is built from a context TRAINING_IMAGE_CONTEXT does not narrow: its first rule "
            "must exclude everything ('*')"
        ]
    included = sorted(
        {rule[1:].removesuffix("/**").rstrip("/") for rule in context if rule.startswith("!")}
    )
    problems = [
        f"copies {source}, which TRAINING_IMAGE_CONTEXT leaves out of the build context"
        for source in copied
        if not any(_under(source, root) for root in included)
    ]
    problems.extend(
        f"copies nothing from {root}, which TRAINING_IMAGE_CONTEXT lets into the build context"
        for root in included
        if not any(_under(source, root) for source in copied)
    )
    return problems


def _normalise(source: str) -> str:
    return str(PurePosixPath(source.removeprefix("./"))).rstrip("/").removeprefix("./")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


# 4. Every function imports its handler


def check_function_imports(stage: str, cdk_out: Path | None = None) -> CheckResult:
    """Synthesize `stage` (into a temporary directory, unless `cdk_out` holds it) and import
    every project function's handler as Lambda's init would (`infra.cdk.import_check`)."""
    from infra.cdk.function_env import FunctionEnvError, deployed_functions
    from infra.cdk.import_check import check_imports
    from infra.local.synth import SynthError, synthesize

    name = "functions import their handlers"
    with TemporaryDirectory(prefix="predeploy-synth-") as tmp:
        out = cdk_out or Path(tmp) / "cdk.out"
        try:
            if cdk_out is None:
                synthesize(REPO_ROOT, out, {"stage": stage, "commit": "predeploy"})
            checks = check_imports(deployed_functions(out))
        except (SynthError, FunctionEnvError) as exc:
            return CheckResult(name, False, "the functions could not be checked", [str(exc)])
    failed = [check.describe() for check in checks if not check.passed]
    versions = sorted({check.python_version for check in checks})
    figure = (
        f"{len(checks) - len(failed)} of {len(checks)} functions import under Python "
        f"{', '.join(versions)} with only their deployed code and packages"
    )
    return CheckResult(name, not failed, figure, failed)


def check_shared_libraries(
    trees: Sequence[tuple[str, Path, set[str]]] | None = None,
) -> CheckResult:
    """Every `.so` of each (name, tree, libraries available beside the base image's) finds
    what it links against; by default the serving layer (the base image only) and the
    training image's packages (the base image plus what its Dockerfile installs with dnf),
    both built for Lambda's platform."""
    from infra.cdk.constructs.stage_function import TRAINING_DOCKERFILE
    from infra.cdk.shared_libraries import base_libraries, dnf_installed, missing_libraries

    name = "shared libraries"
    if trees is None:
        try:
            layer = build_layer().directory / "python"
            image = build_packages(TRAINING_REQUIREMENTS, "training-image", PLATFORMS)
        except LayerBuildError as exc:
            return CheckResult(name, False, "the packages did not build", [str(exc)])
        dockerfile = parse_dockerfile((REPO_ROOT / TRAINING_DOCKERFILE).read_text())
        trees = [
            ("serving layer", layer, set()),
            ("training image", image, dnf_installed(dockerfile)),
        ]
    base = base_libraries()
    problems: list[str] = []
    counted = []
    for label, root, extra in trees:
        missing = missing_libraries(root, base | extra)
        counted.append(f"{label} {sum(1 for _ in root.rglob('*.so*'))} files")
        problems.extend(
            f"{label}: {m.describe()} is not in Lambda's base image "
            f"(layers/lambda-base/) nor shipped: install it in the image (dnf install) or "
            "vendor it in the wheel"
            for m in missing
        )
    figure = f"shared objects checked: {', '.join(counted)}; {len(problems)} missing"
    return CheckResult(name, not problems, figure, problems)


def run_checks(stage: str = "dev", cdk_out: Path | None = None) -> list[CheckResult]:
    return [
        check_layer_size(),
        check_layer_bytecode(),
        check_requirements_resolve(),
        check_dockerfile(),
        check_shared_libraries(),
        check_function_imports(stage, cdk_out),
    ]


# 5. Replacements and deletions against the deployed template


def check_template_changes(
    new: dict[str, Any],
    deployed: dict[str, Any] | None,
    against: str,
    *,
    allowed: Sequence[str] = (),
    region: str = "us-east-1",
) -> tuple[CheckResult, Verdict]:
    """What moving from `deployed` (described by `against`; None: nothing deployed yet) to
    `new` would replace or delete, and the refusal of every stateful resource among them that
    `allowed` does not name."""
    name = "template changes"
    changes = [] if deployed is None else compare_templates(deployed, new, region)
    verdict = judge(changes, allowed)
    if deployed is None:
        return CheckResult(name, True, f"nothing to compare: {against}"), verdict
    counts = Counter(change.action for change in changes)
    summary = ", ".join(
        f"{counts[a]} {a}" for a in ("replace", "delete", "may replace") if counts[a]
    )
    figure = f"against {against}: " + (summary or "no resource replaced or deleted")
    if verdict.allowed:
        figure += f"; allowed: {', '.join(c.logical_id for c in verdict.allowed)}"
    problems = [change.describe() for change in verdict.refused]
    if problems:
        problems.append(
            "if losing that data is intended (or it was copied first), name each with "
            "--allow-replacement LOGICAL_ID"
        )
    problems += [
        f"note: --allow-replacement {name} names no stateful resource this deploy replaces "
        "or deletes"
        for name in verdict.unknown_allowances
    ]
    return CheckResult(name, verdict.passed, figure, problems), verdict
