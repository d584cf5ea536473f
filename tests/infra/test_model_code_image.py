"""`[train] code` ships in the training image: the CDK passes the folder as the image's
MODEL_CODE build argument, and the deployed train function, rebuilt here as Lambda runs it
(the local cloud's host twin: its own Python and sys.path, nothing from this repo's checkout),
imports the factory from the shipped copy under its task root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.cdk.app import build_app
from infra.cdk.constructs.stage_function import model_code_folder, training_image_build
from infra.cdk.function_env import deployed_functions, host_environment
from infra.cdk.import_check import lambda_environment
from infra.cdk.layers import missing_python_message, runtime_python

REPO = Path(__file__).resolve().parents[2]
STACK = "ownmodel-dev"
_PROBE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from functions.common.config.loading import deployed_config
from functions.common.config.dataset import FeatureType
from functions.ml.model_code import FeatureContract, build_estimator
from functions.train.logic import deployed_code_dir, model_factory
config = deployed_config()
factory = model_factory(config, deployed_code_dir(config))
schema = {n: FeatureType(t) for n, t in config.dataset.features.items()}
contract = FeatureContract.from_schema(schema, task=config.dataset.task, target="churned", seed=1)
pipeline = build_estimator(factory, contract)
import lightgbm
print(json.dumps({"module_file": factory.module_file, "lightgbm": lightgbm.__file__,
                  "model": type(pipeline.steps[-1][1]).__name__}))
"""


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("own-model") / "cdk.out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(REPO / "examples" / "own-model.toml"))
        build_app(outdir=str(out), context={"commit": "abc123def456"}).synth()
    return out


def test_the_image_asset_gets_the_model_code_folder(assembly: Path) -> None:
    manifests = [json.loads(p.read_text()) for p in assembly.glob("*.assets.json")]
    images = [image for m in manifests for image in m.get("dockerImages", {}).values()]
    assert images
    assert {json.dumps(i["source"].get("dockerBuildArgs")) for i in images} == {
        json.dumps({"MODEL_CODE": "examples/model_code"})
    }


def test_the_train_function_imports_the_factory_from_its_shipped_copy(assembly: Path) -> None:
    if runtime_python() is None:
        pytest.fail(missing_python_message(), pytrace=False)
    (train,) = [
        f
        for f in deployed_functions(assembly, STACK)
        if f.handler == "functions.train.handler.lambda_handler"
    ]
    environment = host_environment(train)
    result = subprocess.run(
        [
            environment.python.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _PROBE,
            json.dumps([str(p) for p in environment.sys_path]),
        ],
        capture_output=True,
        text=True,
        env=lambda_environment(train, environment),
        cwd=environment.task_root,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])

    shipped = environment.task_root / "model_code" / "churn_model" / "pipeline.py"
    assert probe["module_file"] == str(shipped)
    assert (
        shipped.read_bytes() == (REPO / "examples/model_code/churn_model/pipeline.py").read_bytes()
    )
    assert not probe["module_file"].startswith(str(REPO / "examples"))
    assert probe["model"] == "LGBMClassifier"
    assert any(probe["lightgbm"].startswith(str(p)) for p in environment.site_packages)


def test_a_code_folder_outside_the_repository_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the repository"):
        model_code_folder(tmp_path.name, tmp_path.parent)
    with pytest.raises(ValueError, match="is not a folder"):
        model_code_folder("no_such_folder", REPO)
    assert model_code_folder("model_code", REPO / "examples") == "examples/model_code"
    build = training_image_build("examples/model_code")
    assert build["build_args"] == {"MODEL_CODE": "examples/model_code"}
    assert {"!examples/model_code", "!examples/model_code/**"} <= set(build["exclude"])
