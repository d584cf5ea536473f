"""The pre-deploy checks (`mlops predeploy`, run by `make deploy`): each passes on the repo and
fails with a reason a reader can act on.

The resolve check asks the package index (PyPI or PIP_INDEX_URL) for wheel metadata, as the
layer build in synth does; it is skipped, saying so, only when the index is unreachable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cdk.constructs.serving_api import check_unzipped_size
from infra.cdk.constructs.stage_function import TRAINING_IMAGE_CONTEXT
from infra.cdk.layers import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    RUNTIME_PYTHON_ENV,
    LayerBuild,
    RuntimePython,
    build_layer,
    missing_python_message,
    runtime_python,
)
from infra.cdk.predeploy import (
    MIB,
    CheckResult,
    check_dockerfile,
    check_layer_bytecode,
    check_layer_size,
    check_requirements_resolve,
    function_code_bytes,
    judge_unzipped_size,
)
from infra.cli import deployed_template
from infra.cli.main import app

GOOD_DOCKERFILE = """\
# comment
FROM public.ecr.aws/lambda/python:3.13-arm64

COPY layers/training/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \\
    && rm /tmp/requirements.txt

COPY functions/ ${LAMBDA_TASK_ROOT}/functions/
ARG MODEL_CODE=layers/training/model_code
COPY ${MODEL_CODE}/ ${LAMBDA_TASK_ROOT}/model_code/
CMD ["functions.ingest.handler.lambda_handler"]
"""


def _skip_if_unreachable(result: CheckResult) -> None:
    if result.unreachable:
        pytest.skip(f"the package index is unreachable from here: {result.problems[0]}")


@pytest.fixture(scope="module")
def repo_resolve() -> CheckResult:
    return check_requirements_resolve()


def test_layer_size_passes_with_the_figure_synth_checks() -> None:
    result = check_layer_size()

    assert result.passed, result.problems
    total = check_unzipped_size(build_layer())
    assert f"= {total / MIB:.1f} MiB of 250 MiB" in result.figure
    headroom = (LAMBDA_UNZIPPED_LIMIT_BYTES - total) / MIB
    assert f"headroom {headroom:.1f} MiB" in result.figure


def _skip_without_python_313() -> None:
    """Without Python 3.13: skipped on a developer's machine, failed in CI (`CI` set), where
    the checks that need the runtime's version must run."""
    if runtime_python() is None:
        message = f"no Python 3.13 on this machine to compile the layer ({RUNTIME_PYTHON_ENV})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: {missing_python_message()}", pytrace=False)
        pytest.skip(message)


def test_the_layer_carries_python_313_bytecode_for_every_module() -> None:
    _skip_without_python_313()
    result = check_layer_bytecode()

    assert result.passed, result.problems
    python = build_layer().directory / "python"
    sources = list(python.rglob("*.py"))
    assert len(sources) > 1000
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        header = pyc.read_bytes()[:16]
        # PEP 552: flags 0b01, hash-based and not checked against the source (the layer is
        # read-only and never changes after the build).
        assert int.from_bytes(header[4:8], "little") == 1, source
    assert not [p for p in python.rglob("*.pyc") if ".cpython-313." not in p.name]
    assert f"{len(sources)} modules" in result.figure


def test_a_layer_without_bytecode_fails_saying_how_to_get_it(tmp_path: Path) -> None:
    bare = LayerBuild(tmp_path, "0" * 16, 1, bytecode=None)

    result = check_layer_bytecode(lambda: bare)

    assert not result.passed
    assert result.figure == "no Python 3.13 found to compile it"
    assert "every cold start would compile its imports" in result.problems[0]
    assert RUNTIME_PYTHON_ENV in result.problems[0]


def test_the_interpreter_named_by_the_environment_is_used_if_it_is_313(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version, expected in (("3.13.9", True), ("3.12.1", False)):
        script = tmp_path / f"python-{version}"
        script.write_text(f"#!/bin/sh\necho {version}\n")
        script.chmod(0o755)
        monkeypatch.setenv(RUNTIME_PYTHON_ENV, str(script))
        monkeypatch.setenv("PATH", str(tmp_path))  # no other python3.13 to fall back on
        monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
        found = runtime_python()
        assert (found == RuntimePython(str(script), version)) is expected, (version, found)


def test_layer_size_over_the_limit_fails_naming_the_excess() -> None:
    result = judge_unzipped_size(layer_bytes=245 * MIB, code_bytes=7 * MIB)

    assert not result.passed
    assert "252.0 MiB of 250 MiB; headroom -2.0 MiB" in result.figure
    assert "2.0 MiB over Lambda's 250 MiB limit" in result.problems[0]
    assert "layers/serving/requirements.txt" in result.problems[0]


def test_layer_size_exactly_at_the_limit_fails_like_synth() -> None:
    code = function_code_bytes()

    assert not judge_unzipped_size(LAMBDA_UNZIPPED_LIMIT_BYTES - code, code).passed
    assert judge_unzipped_size(LAMBDA_UNZIPPED_LIMIT_BYTES - code - 1, code).passed


def test_training_requirements_resolve_for_lambda_arm64(repo_resolve: CheckResult) -> None:
    _skip_if_unreachable(repo_resolve)

    assert repo_resolve.passed, repo_resolve.problems
    count = int(repo_resolve.figure.split()[0])
    pins = [
        line
        for line in Path("layers/training/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert count >= len(pins)
    assert "manylinux_2_28_aarch64" in repo_resolve.figure


def test_unpinned_requirements_fail_naming_each_line(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pins\nnumpy>=2\npandas==2.3.3  # ok\n\nscipy\n")

    result = check_requirements_resolve(requirements)

    assert not result.passed
    assert result.problems == [
        "requirements.txt line 2: numpy>=2 is not pinned with ==",
        "requirements.txt line 5: scipy is not pinned with ==",
    ]


@pytest.mark.parametrize(
    "pin",
    [
        pytest.param("numpy==0.0.1", id="version-that-does-not-exist"),
        pytest.param("numpy==1.26.4", id="no-cp313-wheel"),
    ],
)
def test_a_pin_without_an_aarch64_cp313_wheel_fails_with_pips_message(
    tmp_path: Path, pin: str
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{pin}\npydantic==2.14.4\n")

    result = check_requirements_resolve(requirements)

    _skip_if_unreachable(result)
    assert not result.passed
    assert "does not resolve for cp313 manylinux aarch64" in result.figure
    assert any(f"No matching distribution found for {pin}" in p for p in result.problems)


def test_a_dependency_the_file_does_not_pin_fails_naming_it(tmp_path: Path) -> None:
    # pydantic 2.14.4 needs pydantic-core, annotated-types, typing-extensions and
    # typing-inspection; only two of them are pinned here.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic==2.14.4\npydantic_core==2.50.5\nAnnotated.Types==0.8.0\n")

    result = check_requirements_resolve(requirements)

    _skip_if_unreachable(result)
    assert not result.passed
    assert result.figure == "2 of 5 packages are not pinned in requirements.txt"
    assert [problem.split(",")[0] for problem in result.problems] == [
        "pip would also install typing-inspection==0.4.5",
        "pip would also install typing_extensions==4.16.0",
    ]


def test_the_repos_dockerfile_passes() -> None:
    result = check_dockerfile()

    assert result.passed, result.problems
    assert result.figure == (
        "FROM public.ecr.aws/lambda/python:3.13-arm64; copies functions, "
        "layers/training/model_code, layers/training/requirements.txt"
    )


def _check(tmp_path: Path, text: str, context: list[str] | None = None) -> CheckResult:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)
    return check_dockerfile(dockerfile, context)


def _edit(old: str, new: str) -> str:
    assert old in GOOD_DOCKERFILE
    return GOOD_DOCKERFILE.replace(old, new)


def test_a_minimal_good_dockerfile_passes(tmp_path: Path) -> None:
    assert _check(tmp_path, GOOD_DOCKERFILE).passed


def test_the_multi_arch_tag_passes_with_an_arm64_platform(tmp_path: Path) -> None:
    text = _edit(
        "FROM public.ecr.aws/lambda/python:3.13-arm64",
        "FROM --platform=linux/arm64 public.ecr.aws/lambda/python:3.13",
    )

    assert _check(tmp_path, text).passed


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param(
            "COPY functions/ ${LAMBDA_TASK_ROOT}/functions/",
            "COPY . ${LAMBDA_TASK_ROOT}/",
            r"line 8: `COPY \.` copies the whole build context; the image needs only "
            r"layers/training/requirements.txt, functions, layers/training/model_code",
            id="copy-everything",
        ),
        pytest.param(
            "FROM public.ecr.aws/lambda/python:3.13-arm64",
            "FROM public.ecr.aws/lambda/python:3.13-x86_64",
            r"line 2: FROM public\.ecr\.aws/lambda/python:3\.13-x86_64 +is an x86_64 image",
            id="x86-base",
        ),
        pytest.param(
            "FROM public.ecr.aws/lambda/python:3.13-arm64",
            "FROM --platform=linux/amd64 public.ecr.aws/lambda/python:3.13",
            r"line 2: FROM public\.ecr\.aws/lambda/python:3\.13 linux/amd64 is an x86_64 image",
            id="amd64-platform",
        ),
        pytest.param(
            "FROM public.ecr.aws/lambda/python:3.13-arm64",
            "FROM public.ecr.aws/lambda/python:3.13",
            r"is multi-architecture: the build host's architecture decides",
            id="multi-arch-without-platform",
        ),
        pytest.param(
            "FROM public.ecr.aws/lambda/python:3.13-arm64",
            "FROM python:3.13-slim",
            r"FROM python:3\.13-slim is not the AWS Lambda Python 3\.13 image",
            id="not-the-lambda-image",
        ),
        pytest.param(
            "FROM public.ecr.aws/lambda/python:3.13-arm64",
            "FROM public.ecr.aws/lambda/python:3.12-arm64",
            r"is not the AWS Lambda Python 3\.13 image",
            id="python-3.12",
        ),
        pytest.param(
            "pip install --no-cache-dir --only-binary",
            "pip install --only-binary",
            r"line 5: pip install without --no-cache-dir",
            id="pip-cache-kept",
        ),
        pytest.param(
            "-r /tmp/requirements.txt \\",
            "-r /tmp/requirements.txt requests \\",
            r"pip installs requests outside the pinned layers/training/requirements\.txt",
            id="unpinned-extra-package",
        ),
        pytest.param(
            "COPY layers/training/requirements.txt /tmp/requirements.txt",
            "ADD layers/training/requirements.txt /tmp/requirements.txt",
            r"line 4: ADD fetches URLs and unpacks archives; use COPY",
            id="add-instead-of-copy",
        ),
        pytest.param(
            "COPY functions/ ${LAMBDA_TASK_ROOT}/functions/\n",
            "",
            r"never copies functions, which the image needs",
            id="code-not-copied",
        ),
    ],
)
def test_a_bad_dockerfile_fails_with_the_reason(
    tmp_path: Path, old: str, new: str, reason: str
) -> None:
    result = _check(tmp_path, _edit(old, new))

    assert not result.passed
    assert any(re.search(reason, problem) for problem in result.problems), result.problems


def test_a_build_context_without_what_the_dockerfile_copies_fails(tmp_path: Path) -> None:
    context = [rule for rule in TRAINING_IMAGE_CONTEXT if "functions" not in rule]

    result = _check(tmp_path, GOOD_DOCKERFILE, context)

    assert not result.passed
    assert (
        "Dockerfile copies functions, which TRAINING_IMAGE_CONTEXT leaves out of the build "
        "context" in result.problems
    )


def test_a_build_context_letting_in_more_than_is_copied_fails(tmp_path: Path) -> None:
    context = [*TRAINING_IMAGE_CONTEXT, "!docs", "!docs/**"]

    result = _check(tmp_path, GOOD_DOCKERFILE, context)

    assert result.problems == [
        "Dockerfile copies nothing from docs, which TRAINING_IMAGE_CONTEXT lets into the "
        "build context"
    ]


def test_mlops_predeploy_prints_each_figure_and_exits_0(
    repo_resolve: CheckResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_if_unreachable(repo_resolve)
    _skip_without_python_313()
    monkeypatch.setattr(deployed_template, "LAST_SYNTH", tmp_path / "cdk.out")

    result = CliRunner().invoke(app, ["predeploy", "--stage", "dev"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "pre-deploy checks for mlops-dev"
    assert re.fullmatch(r"pass serving layer size: .* MiB; headroom [0-9.]+ MiB", lines[1])
    assert re.fullmatch(
        r"pass serving layer bytecode: compiled by Python 3\.13\.\d+: \d+ .*", lines[2]
    )
    assert re.fullmatch(r"pass training requirements resolve: \d+ packages resolve .*", lines[3])
    assert lines[4].startswith("pass training Dockerfile: FROM public.ecr.aws/lambda/python")
    assert re.fullmatch(
        r"pass shared libraries: shared objects checked: serving layer \d+ files, training "
        r"image \d+ files; 0 missing",
        lines[5],
    )
    assert re.fullmatch(
        r"pass functions import their handlers: (\d+) of \1 functions import under Python "
        r"3\.13\.\d+ with only their deployed code and packages",
        lines[6],
    )
    assert lines[7] == (
        f"pass template changes: nothing to compare: no earlier synthesis of mlops-dev in "
        f"{tmp_path / 'cdk.out'}; name the deployed one with --aws, --against or "
        "--against-revision"
    )


def test_mlops_predeploy_refuses_an_unknown_stage() -> None:
    result = CliRunner().invoke(app, ["predeploy", "--stage", "staging"])

    assert result.exit_code == 2
    assert "no stage 'staging' in the config" in result.output
