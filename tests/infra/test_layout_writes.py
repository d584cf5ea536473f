"""Every prefix a writer puts objects under (`functions.common.layout`) is one its role
may write in the synthesized template: a write added to the layout without its grant, or a
grant narrowed below a write, fails here."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.loading import load_config, parse_config
from functions.common.layout import SAGEMAKER_WRITERS, SHADOW_WRITERS, bucket_writes
from infra.cdk.config import REPO_ROOT

STACK = "mlops-dev"

# Each writer's role, by the start of its logical id (the CDK's construct ids).
WRITER_ROLES = {
    "ingest": "PipelineIngestFunctionRole",
    "train": "PipelineTrainFunctionRole",
    "train-prepare": "PipelineTrainPrepareFunctionRole",
    "sagemaker-job": "PipelineSageMakerTrainingJobRole",
    "train-collect": "PipelineTrainCollectFunctionRole",
    "evaluate": "PipelineEvaluateFunctionRole",
    "register": "PipelineRegisterFunctionRole",
    "predict": "ServingPredictFunctionRole",
    "capture": "ServingCaptureRole",
    "monitor": "MonitoringDriftFunctionRole",
    "batch-plan": "BatchPlanFunctionRole",
    "batch-score": "BatchScoreFunctionRole",
    "batch-finalize": "BatchFinalizeFunctionRole",
    "erasure": "DataLakeErasure",
    "shadow": "ShadowShadowFunctionRole",
}


def _writes(model: str | None = None, dataset: str | None = None) -> dict[str, tuple[str, ...]]:
    """`bucket_writes` of `model` on `dataset` (default: the repository config's model)."""
    if model is None or dataset is None:
        config = load_config(REPO_ROOT / "mlops.toml")
        model, dataset = config.model_name, config.dataset.name
    return bucket_writes(model, dataset)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _writable_prefixes(template: dict[str, Any], role_prefix: str) -> set[str]:
    """The object prefixes `role_prefix`'s role may s3:PutObject under (`x/` for `x/*`)."""
    prefixes: set[str] = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = [r["Ref"] for r in resource["Properties"]["Roles"]]
        if not any(r.startswith(role_prefix) for r in roles):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] != "Allow" or "s3:PutObject" not in _as_list(
                statement["Action"]
            ):
                continue
            for arn in _as_list(statement["Resource"]):
                if isinstance(arn, dict) and "Fn::Join" in arn:
                    last = arn["Fn::Join"][1][-1]
                    if isinstance(last, str) and last.endswith("*"):
                        prefixes.add(last.lstrip("/").removesuffix("*"))
    return prefixes


def _check(
    template: dict[str, Any],
    writers: set[str],
    model: str | None = None,
    dataset: str | None = None,
) -> None:
    writes = _writes(model, dataset)
    for writer in sorted(writers):
        granted = _writable_prefixes(template, WRITER_ROLES[writer])
        for prefix in writes[writer]:
            assert any(prefix.startswith(grant) for grant in granted), (
                f"{writer} writes under {prefix} but its role may write only under "
                f"{sorted(granted)}"
            )


def test_every_writer_of_the_layout_has_a_role() -> None:
    assert set(_writes()) == set(WRITER_ROLES)
    assert set(SAGEMAKER_WRITERS) <= set(WRITER_ROLES)


def test_every_write_is_granted_with_the_default_backend(template_json: dict[str, Any]) -> None:
    _check(template_json, set(_writes()) - SAGEMAKER_WRITERS - SHADOW_WRITERS)


@pytest.fixture(scope="module")
def sagemaker_template(sagemaker_assembly: Path) -> dict[str, Any]:
    return dict(json.loads((sagemaker_assembly / f"{STACK}.template.json").read_text()))


def test_every_write_is_granted_with_the_sagemaker_backend(
    sagemaker_template: dict[str, Any],
) -> None:
    _check(sagemaker_template, set(_writes()) - {"train"} - SHADOW_WRITERS)


def test_the_shadow_scorer_may_write_its_records(shadow_template: dict[str, Any]) -> None:
    _check(shadow_template, set(SHADOW_WRITERS))


PIPELINE_WRITERS = {"ingest", "train", "evaluate", "register"}


def test_every_models_pipeline_writes_are_granted_in_a_portfolio(
    portfolio_template: dict[str, Any],
) -> None:
    from tests.helpers.portfolio import portfolio_config

    config = parse_config(tomllib.loads(portfolio_config()))
    for model, entry in config.models.items():
        _check(portfolio_template, PIPELINE_WRITERS, model, entry.dataset)


def test_a_missing_grant_is_found() -> None:
    """The check itself: a write under a prefix no grant covers fails."""
    template = {
        "Resources": {
            "P": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "PipelineIngestFunctionRoleX"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:PutObject"],
                                "Resource": {"Fn::Join": ["", [{"Ref": "B"}, "/curated/*"]]},
                            }
                        ]
                    },
                },
            }
        }
    }
    with pytest.raises(AssertionError, match="quarantine/"):
        _check(template, {"ingest"})
