"""`[train] backend`: the default keeps the Train Lambda task; `sagemaker` synthesizes
Prepare -> a SageMaker training job (.sync) -> Collect, the job's image built for the configured
architecture, and permissions scoped to the stack's job prefix and the job's S3 prefixes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.loading import parse_config
from infra.cdk.app import build_app
from infra.cdk.checks import cfn_lint, stack_templates

STACK = "mlops-dev"


def _template(assembly: Path, stack: str = STACK) -> dict[str, Any]:
    return json.loads((assembly / f"{stack}.template.json").read_text())


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = [
        machine
        for logical_id, machine in _of_type(template, "AWS::StepFunctions::StateMachine").items()
        if logical_id.startswith("PipelineStateMachine")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    rendered = []
    for part in parts:
        if isinstance(part, str):
            rendered.append(part)
        elif "Ref" in part:
            rendered.append(f"<{part['Ref']}>")
        elif "Fn::Sub" in part:
            rendered.append(part["Fn::Sub"])
        else:
            rendered.append("<" + ".".join(part["Fn::GetAtt"]) + ">")
    definition: dict[str, Any] = json.loads("".join(rendered))
    # A model's iteration (the Map's item processor) with the top-level states: their names
    # are unique across both.
    processor = definition["States"]["Train each model"]["ItemProcessor"]
    definition["IterationStartAt"] = processor["StartAt"]
    definition["States"] = {**definition["States"], **processor["States"]}
    return definition


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role_prefix) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_joined(part) for part in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return f"<{json.dumps(value)}>"


@pytest.fixture(scope="module")
def sagemaker(sagemaker_assembly: Path) -> dict[str, Any]:
    return _template(sagemaker_assembly)


def test_default_backend_trains_in_the_train_lambda(template_json: dict[str, Any]) -> None:
    definition = _definition(template_json)
    states = definition["States"]
    assert definition["IterationStartAt"] == "Train"
    assert states["Train"]["Resource"].startswith("<PipelineTrainFunction")
    assert states["Train"]["Next"] == "Training set changed?"
    assert states["Training set changed?"]["Default"] == "Evaluate"
    assert "Prepare training job" not in states
    roles = _of_type(template_json, "AWS::IAM::Role")
    assert not any(k.startswith("PipelineSageMakerTraining") for k in roles)


def test_sagemaker_backend_runs_prepare_job_collect_then_the_same_pipeline(
    sagemaker: dict[str, Any],
) -> None:
    definition = _definition(sagemaker)
    states = definition["States"]
    assert definition["IterationStartAt"] == "Prepare training job"
    assert states["Prepare training job"]["Resource"].startswith("<PipelineTrainPrepareFunction")
    assert states["Collect training run"]["Resource"].startswith("<PipelineTrainCollectFunction")
    assert states["Prepare training job"]["ResultPath"] == "$.training_job"
    assert states["Prepare training job"]["Next"] == "Train"
    train = states["Train"]
    assert train["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert train["Next"] == "Collect training run"
    assert states["Collect training run"]["ResultPath"] == "$.training"
    assert states["Collect training run"]["Next"] == "Training set changed?"
    assert states["Training set changed?"]["Default"] == "Evaluate"
    for name in ("Prepare training job", "Train", "Collect training run"):
        (catch,) = states[name]["Catch"]
        assert catch == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "Error from a function? (model)",
        }
        assert states[name]["Retry"], name
    for name in ("Evaluate", "Gate passed?", "Register", "Notify", "Failed"):
        assert name in states


def test_sagemaker_job_reads_its_channels_and_writes_under_its_models_prefix(
    sagemaker: dict[str, Any],
) -> None:
    parameters = _definition(sagemaker)["States"]["Train"]["Parameters"]
    assert parameters["TrainingJobName.$"] == "$.training_job.job_name"
    assert parameters["HyperParameters.$"] == "$.training_job.hyperparameters"
    assert parameters["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in parameters["InputDataConfig"]
    }
    assert channels["train"]["S3DataType"] == "ManifestFile"
    assert channels["train"]["S3Uri.$"] == "$.training_job.train_manifest_uri"
    assert channels["spec"]["S3DataType"] == "S3Prefix"
    assert channels["spec"]["S3Uri.$"] == "$.training_job.spec_uri"
    # Prepare names the model's models/<model>/sagemaker/ prefix (the job role may write
    # only under the configured models' ones).
    assert parameters["OutputDataConfig"] == {"S3OutputPath.$": "$.training_job.output_uri"}
    assert parameters["ResourceConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.m5.xlarge",
        "VolumeSizeInGB": 30,
    }
    assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert parameters["RoleArn"].startswith("<PipelineSageMakerTrainingJobRole")


def test_training_image_is_built_for_x86_64_from_the_sagemaker_dockerfile(
    sagemaker_assembly: Path, sagemaker: dict[str, Any]
) -> None:
    assets = json.loads((sagemaker_assembly / f"{STACK}.assets.json").read_text())
    sources = [image["source"] for image in assets["dockerImages"].values()]
    (training,) = [
        s for s in sources if s.get("dockerFile") == "layers/training/sagemaker.Dockerfile"
    ]
    assert training["platform"] == "linux/amd64"
    image = _definition(sagemaker)["States"]["Train"]["Parameters"]["AlgorithmSpecification"]
    asset_hash = next(h for h, i in assets["dockerImages"].items() if i["source"] is training)
    assert image["TrainingImage"].endswith(
        f"container-assets-${{AWS::AccountId}}-${{AWS::Region}}:{asset_hash}"
    )
    lambda_images = [s for s in sources if s.get("dockerFile") == "layers/training/Dockerfile"]
    assert lambda_images and all(s["platform"] == "linux/arm64" for s in lambda_images)


@pytest.mark.slow
def test_graviton_instances_get_an_arm64_image(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    use_config(
        "[ingest]",
        '[train]\nbackend = "sagemaker"\n\n[train.sagemaker]\ninstance_type = '
        '"ml.m7g.xlarge"\narchitecture = "arm64"\n\n[ingest]',
        1,
    )
    build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc", "stage": "dev"}).synth()
    assets = json.loads((tmp_path / "cdk.out" / f"{STACK}.assets.json").read_text())
    (training,) = [
        image["source"]
        for image in assets["dockerImages"].values()
        if image["source"].get("dockerFile") == "layers/training/sagemaker.Dockerfile"
    ]
    assert training["platform"] == "linux/arm64"
    parameters = _definition(_template(tmp_path / "cdk.out"))["States"]["Train"]["Parameters"]
    assert parameters["ResourceConfig"]["InstanceType"] == "ml.m7g.xlarge"


def test_architecture_must_fit_the_instance_family() -> None:
    base = {"dataset": {"name": "churn", "target": "churned", "task": "classification"}}
    with pytest.raises(ConfigError, match="train.sagemaker.architecture 'x86_64' does not run"):
        parse_config(
            {
                **base,
                "train": {"backend": "sagemaker", "sagemaker": {"instance_type": "ml.c7g.2xlarge"}},
            }
        )
    with pytest.raises(ConfigError, match="use architecture = 'x86_64'"):
        parse_config({**base, "train": {"sagemaker": {"architecture": "arm64"}}})
    with pytest.raises(ConfigError, match="train.backend"):
        parse_config({**base, "train": {"backend": "batch"}})


def test_state_machine_may_only_run_jobs_of_the_stack_prefix_and_pass_the_job_role(
    sagemaker: dict[str, Any],
) -> None:
    statements = _statements(sagemaker, "PipelineStateMachineRole")
    sagemaker_actions = [
        s for s in statements if any(a.startswith("sagemaker:") for a in _list(s["Action"]))
    ]
    (jobs,) = sagemaker_actions
    assert sorted(_list(jobs["Action"])) == [
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:ListTags",
        "sagemaker:StopTrainingJob",
    ]
    assert _joined(jobs["Resource"]).endswith(":training-job/mlops-dev-*")
    (events,) = [s for s in statements if any(a.startswith("events:") for a in _list(s["Action"]))]
    assert _joined(events["Resource"]).endswith(
        ":rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
    )
    (passrole,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passrole["Resource"]["Fn::GetAtt"][0].startswith("PipelineSageMakerTrainingJobRole")
    assert passrole["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_job_role_reads_its_datasets_and_models_prefixes_and_writes_only_the_latter(
    sagemaker: dict[str, Any],
) -> None:
    statements = _statements(sagemaker, "PipelineSageMakerTrainingJobRole")
    reads, writes = set(), set()
    for statement in statements:
        actions = _list(statement["Action"])
        resources = {_joined(r).split(">", 1)[-1] for r in _list(statement["Resource"])}
        if "s3:GetObject" in actions:
            reads |= resources
        if "s3:PutObject" in actions:
            writes |= resources
        if "s3:ListBucket" in actions:
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [
                "curated/churn/*",
                "models/churn/sagemaker/*",
            ]
        if any(a.startswith("logs:") for a in actions):
            assert all("/aws/sagemaker/TrainingJobs" in r for r in resources)
    assert reads == {"/curated/churn/*", "/models/churn/sagemaker/*"}
    assert writes == {"/models/churn/sagemaker/*"}
    trust = _of_type(sagemaker, "AWS::IAM::Role")
    (role,) = [r for k, r in trust.items() if k.startswith("PipelineSageMakerTrainingJobRole")]
    (assume,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert assume["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_sagemaker_templates_pass_cfn_lint_and_acknowledge_nag_with_reasons(
    sagemaker_assembly: Path,
) -> None:
    templates = stack_templates(sagemaker_assembly)
    assert set(templates) == {"mlops-dev", "mlops-prod"}
    errors = [f for f in cfn_lint(list(templates.values())) if f.level == "Error"]
    assert not errors, errors
    metadata = json.loads((sagemaker_assembly / f"{STACK}.metadata.json").read_text())
    acknowledged = {
        rule
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
    }
    assert any("training-job/mlops-dev-*" in rule for rule in acknowledged)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
