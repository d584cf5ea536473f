"""The deploy bootstrap (`infra/cdk/bootstrap.py`): GitHub's OIDC provider and a deploy role that
only this repo's main branch, version tags and environment `prod` can assume, and that can do
nothing but hand over to the CDK bootstrap roles, read the project stacks' outputs and
resources, and run the smoke test and `mlops migrate` after a deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.loading import load_config
from infra.cdk.bootstrap import BootstrapError, build_app
from tests.helpers.synth import acknowledged_rules, synth_in_child

REPO = Path(__file__).resolve().parents[2]
PROJECT = load_config().project.name
STACK = f"{PROJECT}-deploy-bootstrap"
GITHUB = "token.actions.githubusercontent.com"
ACCOUNT = "<AWS::AccountId>"
ROLE_ARN = (
    f"arn:<AWS::Partition>:iam::{ACCOUNT}:role/"
    f"cdk-{{qualifier}}-{{role}}-role-{ACCOUNT}-<AWS::Region>"
)
STACKS_ARN = f"arn:<AWS::Partition>:cloudformation:<AWS::Region>:{ACCOUNT}:stack/{PROJECT}-*/*"
FUNCTIONS_ARN = f"arn:<AWS::Partition>:lambda:<AWS::Region>:{ACCOUNT}:function:{PROJECT}-*"
HEALTH_ROUTES = {
    f"arn:<AWS::Partition>:execute-api:<AWS::Region>:{ACCOUNT}:*/*/GET/v1/health",
    f"arn:<AWS::Partition>:execute-api:<AWS::Region>:{ACCOUNT}:*/*/GET/v2/health/*",
}
TABLES_ARN = f"arn:<AWS::Partition>:dynamodb:<AWS::Region>:{ACCOUNT}:table/{PROJECT}-*"
MODELS_ARN = f"arn:<AWS::Partition>:s3:::{PROJECT}-*/models/*"
BUCKETS_ARN = f"arn:<AWS::Partition>:s3:::{PROJECT}-*"
MIGRATIONS_ARN = f"arn:<AWS::Partition>:s3:::{PROJECT}-*/migrations/*"
BATCH_ARN = f"arn:<AWS::Partition>:s3:::{PROJECT}-*/batch/*"
PROJECT_ROLES_ARN = f"arn:<AWS::Partition>:iam::{ACCOUNT}:role/{PROJECT}-*"


def _synth(outdir: Path, **context: str) -> dict[str, Any]:
    build_app(outdir=str(outdir), context=context).synth()
    return dict(json.loads((outdir / f"{STACK}.template.json").read_text()))


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("bootstrap.out")
    _synth(outdir, github_repo="acme/churn")
    return outdir


@pytest.fixture(scope="module")
def template(assembly: Path) -> dict[str, Any]:
    return dict(json.loads((assembly / f"{STACK}.template.json").read_text()))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def _text(value: Any) -> str:
    """An ARN as a string: `Fn::Join` joined, pseudo parameters as `<AWS::Region>`."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_text(part) for part in parts)


def _permissions(template: dict[str, Any]) -> dict[str, set[str]]:
    """Every action the stack's policies allow -> the resources it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                allowed.setdefault(action, set()).update(
                    _text(r) for r in (resources if isinstance(resources, list) else [resources])
                )
    return allowed


def test_github_oidc_provider_trusts_tokens_meant_for_sts(template: dict[str, Any]) -> None:
    (provider,) = _of_type(template, "AWS::IAM::OIDCProvider").values()
    assert provider["Url"] == f"https://{GITHUB}"
    assert provider["ClientIdList"] == ["sts.amazonaws.com"]
    assert not _of_type(template, "AWS::Lambda::Function"), "no custom-resource Lambda"


def test_only_this_repos_main_tags_and_prod_environment_can_assume_the_role(
    template: dict[str, Any],
) -> None:
    ((provider_id, _),) = _of_type(template, "AWS::IAM::OIDCProvider").items()
    (role,) = _of_type(template, "AWS::IAM::Role").values()
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Effect": "Allow",
            "Principal": {"Federated": {"Ref": provider_id}},
            "Condition": {
                "StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                "StringLike": {
                    f"{GITHUB}:sub": [
                        "repo:acme/churn:ref:refs/heads/main",
                        "repo:acme/churn:ref:refs/tags/v*",
                        "repo:acme/churn:environment:prod",
                    ]
                },
            },
        }
    ]
    assert role["MaxSessionDuration"] == 3600
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


SMOKE_TEST = {
    "cloudformation:ListStackResources": {STACKS_ARN},
    "lambda:GetFunctionConfiguration": {FUNCTIONS_ARN},
    "lambda:InvokeFunction": {FUNCTIONS_ARN},
    "execute-api:Invoke": HEALTH_ROUTES,
    "dynamodb:GetItem": {TABLES_ARN},
    "s3:GetObject": {MODELS_ARN},
}
"""What `mlops smoke --aws` needs after a deploy, on the project's resources only."""

MIGRATE = {
    # quarantine/, batch/ and migrations/ only (an s3:prefix condition)
    "s3:ListBucket": {BUCKETS_ARN},
    "s3:GetObject": {MIGRATIONS_ARN, BATCH_ARN},
    "s3:PutObject": {MIGRATIONS_ARN, BATCH_ARN},
    "s3:DeleteObject": {BATCH_ARN},  # the batch jobs moved to their model's folder
    "dynamodb:Scan": {TABLES_ARN},
    "sts:AssumeRole": {PROJECT_ROLES_ARN},  # the erasure role, the only one trusting the account
}
"""What `mlops migrate --aws --apply` needs after a deploy (`make deploy` runs it)."""


def test_role_may_only_assume_cdk_bootstrap_roles_read_project_stacks_and_smoke_test(
    template: dict[str, Any],
) -> None:
    expected: dict[str, set[str]] = {
        "sts:AssumeRole": {
            ROLE_ARN.format(qualifier="hnb659fds", role=role)
            for role in ("deploy", "file-publishing", "image-publishing", "lookup")
        },
        "cloudformation:DescribeStacks": {STACKS_ARN},
        "cloudformation:GetTemplate": {STACKS_ARN},  # mlops predeploy --aws
        **SMOKE_TEST,
    }
    for action, resources in MIGRATE.items():
        expected[action] = expected.get(action, set()) | resources
    assert _permissions(template) == expected
    [listing] = [
        statement
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Action"] == "s3:ListBucket"
    ]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["quarantine/*", "batch/*", "migrations/*"]}
    }


def test_every_wildcard_is_a_generated_name_and_acknowledged_with_a_reason(
    template: dict[str, Any], assembly: Path
) -> None:
    wildcards = {
        resource
        for resources in _permissions(template).values()
        for resource in resources
        if "*" in resource
    }
    assert wildcards == {
        STACKS_ARN,
        FUNCTIONS_ARN,
        *HEALTH_ROUTES,
        TABLES_ARN,
        MODELS_ARN,
        BUCKETS_ARN,
        MIGRATIONS_ARN,
        BATCH_ARN,
        PROJECT_ROLES_ARN,
    }
    assert not [action for action in _permissions(template) if "*" in action]
    report = json.loads((assembly / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin["violations"]] == []
    acknowledged = acknowledged_rules(assembly, STACK)
    assert set(acknowledged) == {
        "Annotation::AwsSolutions-IAM5[Resource::" + resource + "]" for resource in wildcards
    }
    assert all(len(reason) >= 40 for reason in acknowledged.values())


def test_deploy_role_arn_is_an_output(template: dict[str, Any]) -> None:
    ((role_id, _),) = _of_type(template, "AWS::IAM::Role").items()
    assert template["Outputs"]["DeployRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}


def test_a_custom_cdk_qualifier_names_its_bootstrap_roles(tmp_path: Path) -> None:
    template = _synth(
        tmp_path, github_repo="acme/churn", **{"@aws-cdk/core:bootstrapQualifier": "churn01"}
    )
    assert all(
        "/cdk-churn01-" in arn and "hnb659fds" not in arn
        for arn in _permissions(template)["sts:AssumeRole"] - MIGRATE["sts:AssumeRole"]
    )


@pytest.mark.parametrize("repo", ["acme", "acme/*", "acme/churn:ref:refs/heads/*", "*/*"])
def test_a_repo_that_is_not_owner_slash_name_is_refused(tmp_path: Path, repo: str) -> None:
    with pytest.raises(BootstrapError, match="github_repo must look like <owner>/<repo>"):
        build_app(outdir=str(tmp_path), context={"github_repo": repo})


@pytest.mark.slow
def test_synth_without_github_repo_fails_naming_the_context_key(tmp_path: Path) -> None:
    result = synth_in_child(
        ["-m", "infra.cdk.bootstrap"], tmp_path / "cdk.out", {"CDK_CONTEXT_JSON": None}
    )
    assert result.returncode == 2
    assert "-c github_repo=<owner>/<repo>" in result.stderr
    assert not (tmp_path / "cdk.out" / f"{STACK}.template.json").exists()


def test_the_stage_app_does_not_synthesize_the_bootstrap(cloud_assembly: Path) -> None:
    assert not list(cloud_assembly.glob("*deploy-bootstrap*"))
