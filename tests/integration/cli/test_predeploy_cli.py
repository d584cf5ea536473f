"""`mlops predeploy --aws --template-only`: the stack's template read from CloudFormation (moto)
and compared with the new synthesis; a first deploy has nothing to compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.main import app

BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {}}


def _write_assembly(directory: Path, resources: dict[str, Any]) -> Path:
    directory.mkdir()
    template = {"Resources": resources}
    (directory / "mlops-dev.template.json").write_text(json.dumps(template), encoding="utf-8")
    return directory


def _predeploy(cdk_out: Path, *extra: str) -> Any:
    arguments = ["predeploy", "--stage", "dev", "--aws", "--template-only", "--cdk-out"]
    return CliRunner().invoke(app, [*arguments, str(cdk_out), *extra])


def test_a_first_deploy_has_nothing_to_compare(mocked_aws: None, tmp_path: Path) -> None:
    cdk_out = _write_assembly(tmp_path / "cdk.out", {"Data": BUCKET})

    result = _predeploy(cdk_out)

    assert result.exit_code == 0, result.output
    assert "nothing to compare: stack mlops-dev does not exist" in result.output


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Resources": {"DataOld": BUCKET}}),
        "Resources:\n  DataOld:\n    Type: AWS::S3::Bucket\n    Properties: {}\n",
    ],
    ids=["json", "yaml"],
)
def test_the_deployed_stack_s_renamed_bucket_is_refused(
    mocked_aws: None, tmp_path: Path, body: str
) -> None:
    boto3.client("cloudformation").create_stack(StackName="mlops-dev", TemplateBody=body)
    cdk_out = _write_assembly(tmp_path / "cdk.out", {"DataNew": BUCKET})

    refused = _predeploy(cdk_out, "--json")
    allowed = _predeploy(cdk_out, "--json", "--allow-replacement", "DataOld")

    assert refused.exit_code == 1, refused.output
    document = json.loads(refused.output)
    assert document["against"] == "AWS stack mlops-dev (us-east-1)"
    assert document["template_changes"]["refused"] == ["DataOld"]
    assert document["template_changes"]["changes"] == [
        {
            "logical_id": "DataOld",
            "type": "AWS::S3::Bucket",
            "action": "delete",
            "why": ["removed from the template"],
            "stateful": True,
            "policy": "Delete",
        }
    ]
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output)["template_changes"]["allowed"] == ["DataOld"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--against", "x.json", "--against-revision", "HEAD"], "choose one of --aws, --against"),
        (["--against", "missing.json"], "missing.json not found"),
        (["--against-revision", "no-such-revision-xyz"], "no git revision 'no-such-revision-xyz'"),
    ],
)
def test_a_bad_source_fails_in_one_line(options: list[str], message: str, tmp_path: Path) -> None:
    cdk_out = _write_assembly(tmp_path / "cdk.out", {"Data": BUCKET})

    result = CliRunner().invoke(
        app, ["predeploy", "--template-only", "--cdk-out", str(cdk_out), *options]
    )

    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
