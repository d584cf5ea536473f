"""Every function in the synthesized template imports its handler the way Lambda's init does:
under its runtime's Python (3.13), with only its deployed code and the packages its
deployment carries (the serving layer's pins for zip functions, the training image's for image
functions), rebuilt for this machine. Without the dev virtualenv: pytest and moto are not
importable there.

These tests need a Python 3.13 interpreter; without one they fail, saying how to get it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from infra.cdk.function_env import (
    DeployedFunction,
    FunctionEnvError,
    deployed_functions,
    describe_function,
    read_image_recipe,
)
from infra.cdk.import_check import DEV_ONLY_MODULES, check_import, check_imports
from infra.cdk.layers import LAYER_METADATA, PYTHON_VERSION, missing_python_message, runtime_python
from infra.local.assembly import load_stack

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK = "mlops-dev"


@pytest.fixture(scope="module", autouse=True)
def _runtime_python() -> None:
    if runtime_python() is None:
        pytest.fail(missing_python_message(), pytrace=False)


def _walk(assembly: Path) -> list[str]:
    functions = deployed_functions(assembly, STACK)
    checks = check_imports(functions)
    assert all(check.python_version.startswith(PYTHON_VERSION) for check in checks)
    return [check.describe() for check in checks if not check.passed]


def test_every_function_imports_its_handler_with_only_its_deployed_packages(
    cloud_assembly: Path,
) -> None:
    functions = deployed_functions(cloud_assembly, STACK)
    handlers = {function.handler for function in functions}
    assert {
        "functions.ingest.handler.lambda_handler",
        "functions.train.handler.lambda_handler",
        "functions.evaluate.handler.lambda_handler",
        "functions.register.handler.lambda_handler",
        "functions.predict.handler.lambda_handler",
        "functions.monitor.handler.lambda_handler",
        "functions.batch.handler.plan_handler",
        "functions.batch.handler.score_handler",
        "functions.batch.handler.finalize_handler",
    } <= handlers
    assert {function.kind for function in functions} == {"zip", "image"}
    assert _walk(cloud_assembly) == []


def test_the_sagemaker_backend_s_functions_import_too(sagemaker_assembly: Path) -> None:
    handlers = {function.handler for function in deployed_functions(sagemaker_assembly, STACK)}
    assert "functions.train.sagemaker_handler.prepare_handler" in handlers
    assert "functions.train.sagemaker_handler.collect_handler" in handlers
    assert _walk(sagemaker_assembly) == []


def test_only_the_project_s_functions_are_walked(cloud_assembly: Path) -> None:
    stack = load_stack(cloud_assembly, STACK)
    lambdas = {
        logical_id: resource
        for logical_id, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    walked = {function.logical_id for function in deployed_functions(cloud_assembly, STACK)}
    skipped = {
        logical_id: resource["Properties"].get("Handler")
        for logical_id, resource in lambdas.items()
        if logical_id not in walked
    }
    # CDK's own handlers (S3 bucket notifications), inline code outside `functions`.
    assert all(not str(handler).startswith("functions.") for handler in skipped.values())
    assert all(describe_function(stack, key, lambdas[key]) is None for key in skipped)


def _probe_function(tmp_path: Path, handler_source: str, **extra: str) -> DeployedFunction:
    code = tmp_path / "code"
    package = code / "functions" / "probe"
    package.mkdir(parents=True)
    (code / "functions" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(handler_source)
    for name, source in extra.items():
        (code / f"{name}.py").write_text(source)
    return DeployedFunction(
        logical_id="ProbeFunction",
        name="probe",
        kind="zip",
        handler="functions.probe.handler.lambda_handler",
        python_version=PYTHON_VERSION,
        code_sources=((code, "."),),
        packages=(),
    )


def test_a_package_the_deployment_lacks_fails_init_as_lambda_reports_it(tmp_path: Path) -> None:
    # pytest is installed here (it runs this test), never in a deployment.
    function = _probe_function(tmp_path, "import pytest\n\ndef lambda_handler(e, c):\n    pass\n")
    check = check_import(function, build_root=tmp_path / "build")
    assert not check.passed
    assert check.error_type == "Runtime.ImportModuleError"
    assert check.message == (
        "Unable to import module 'functions.probe.handler': No module named 'pytest'"
    )
    assert check.leaked == ()


def test_a_missing_handler_function_fails_init_as_lambda_reports_it(tmp_path: Path) -> None:
    function = _probe_function(tmp_path, "def other(e, c):\n    pass\n")
    check = check_import(function, build_root=tmp_path / "build")
    assert check.error_type == "Runtime.HandlerNotFound"
    assert check.message == "Handler 'lambda_handler' missing on module 'functions.probe.handler'"


def test_a_dev_only_module_importable_in_the_function_s_process_is_reported(
    tmp_path: Path,
) -> None:
    function = _probe_function(
        tmp_path, "def lambda_handler(e, c):\n    pass\n", **dict.fromkeys(DEV_ONLY_MODULES, "")
    )
    check = check_import(function, build_root=tmp_path / "build")
    assert check.error_type is None
    assert check.leaked == DEV_ONLY_MODULES
    assert not check.passed
    assert "dev virtualenv leaked" in check.describe()


def test_the_training_dockerfile_is_read_as_docker_builds_it() -> None:
    recipe = read_image_recipe(REPO_ROOT, "layers/training/Dockerfile")
    assert recipe.python_version == PYTHON_VERSION
    assert recipe.requirements == (REPO_ROOT / "layers/training/requirements.txt",)
    assert recipe.task_root_copies == (
        (REPO_ROOT / "functions/", "functions"),
        (REPO_ROOT / "layers/training/model_code/", "model_code"),
    )


def test_the_model_code_build_argument_picks_the_folder_the_image_ships() -> None:
    recipe = read_image_recipe(
        REPO_ROOT, "layers/training/Dockerfile", {"MODEL_CODE": "examples/model_code"}
    )
    assert recipe.task_root_copies[-1] == (REPO_ROOT / "examples/model_code/", "model_code")


def test_a_requirement_file_changed_since_synth_asks_for_a_new_synth(
    cloud_assembly: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "cdk.out"
    shutil.copytree(cloud_assembly, copy, copy_function=os.link)
    template_path = copy / f"{STACK}.template.json"
    template = json.loads(template_path.read_text())
    layers = [
        resource
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::LayerVersion"
    ]
    for layer in layers:
        layer["Metadata"][LAYER_METADATA]["requirements_sha256"] = "0" * 64
    template_path.unlink()
    template_path.write_text(json.dumps(template))
    with pytest.raises(FunctionEnvError, match="changed since the stack was synthesized"):
        deployed_functions(copy, STACK)
