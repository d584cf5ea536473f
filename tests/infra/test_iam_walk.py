"""Every identity policy of every synthesized stack (AWS::IAM::Policy, AWS::IAM::ManagedPolicy,
inline role policies), walked statement by statement: no service-wide actions, `Resource: "*"`
only where the service has no resource to scope to, S3 object access under a data-lake prefix
and listing only with an `s3:prefix` condition. test_iam.py checks which prefixes each role
gets; this file checks that no policy anywhere escapes the rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import pytest

from functions.common import layout
from infra.cdk.checks import stack_templates

# Actions allowed on Resource "*": the service defines no resource type for them.
XRAY = "X-Ray has no resource types: trace segments and sampling rules are account-wide."
LOG_DELIVERY = (
    "Step Functions' execution logging is a CloudWatch Logs vended delivery: these actions "
    "have no resource types, and Step Functions documents them with Resource '*'."
)
RESOURCE_STAR_ACTIONS = {
    "xray:PutTraceSegments": XRAY,
    "xray:PutTelemetryRecords": XRAY,
    "xray:GetSamplingRules": XRAY,
    "xray:GetSamplingTargets": XRAY,
    "logs:CreateLogDelivery": LOG_DELIVERY,
    "logs:GetLogDelivery": LOG_DELIVERY,
    "logs:UpdateLogDelivery": LOG_DELIVERY,
    "logs:DeleteLogDelivery": LOG_DELIVERY,
    "logs:ListLogDeliveries": LOG_DELIVERY,
    "logs:PutResourcePolicy": LOG_DELIVERY,
    "logs:DescribeResourcePolicies": LOG_DELIVERY,
    "logs:DescribeLogGroups": LOG_DELIVERY,
    "ecr:GetAuthorizationToken": (
        "ECR's registry login token has no resource type; the SageMaker job role pulls only "
        "from the training image's repository."
    ),
}
# Used only with `[train] backend = "sagemaker"` (the job role pulls its image from ECR).
SAGEMAKER_ONLY = {"ecr:GetAuthorizationToken"}

# AWS-managed policies are not in the template, so they cannot be walked: only these may be
# attached.
AWS_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole": (
        "CDK's BucketNotificationsHandler (Custom::S3BucketNotifications), fixed by "
        "aws-cdk-lib; it runs only during deployment."
    ),
    "service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
        "API Gateway's account-wide CloudWatch role, which execution and access logging "
        "require; AWS documents this managed policy for it."
    ),
}

# The prefixes the bucket layout declares (its `*_PREFIX` constants): raw/, curated/, models/, ...
LAKE_PREFIXES = tuple(
    value
    for name, value in vars(layout).items()
    if name.endswith("_PREFIX") and isinstance(value, str) and value.endswith("/")
)
# Actions on objects: any action (or wildcard) matching one of these reaches object data.
OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectTagging",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:RestoreObject",
    "s3:ListMultipartUploadParts",
)
OBJECT_ACTION_FAMILIES = ("s3:getobject", "s3:putobject", "s3:deleteobject")


@dataclass(frozen=True)
class Statement:
    """One Allow statement of an identity policy (Deny statements cannot widen access)."""

    where: str
    """`stack/policy resource (role, ...)`: enough to find it in the template."""
    body: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        return _as_list(self.body.get("Action", []))

    @property
    def resources(self) -> list[Any]:
        return _as_list(self.body.get("Resource", []))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _refs(values: list[Any]) -> str:
    return ", ".join(v["Ref"] if isinstance(v, dict) and "Ref" in v else str(v) for v in values)


def _documents(stack: str, template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield f"{stack}/{logical_id} ({_refs(props.get('Roles', []))})", props["PolicyDocument"]
        elif kind == "AWS::IAM::Role":
            for inline in props.get("Policies", []):
                yield f"{stack}/{logical_id}:{inline['PolicyName']}", inline["PolicyDocument"]


@pytest.fixture(scope="module", params=["lambda", "sagemaker"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every check runs on the app as configured and with `[train] backend = "sagemaker"`."""
    return str(request.param)


@pytest.fixture(scope="module")
def stacks(backend: str, request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    assembly = request.getfixturevalue(
        "cloud_assembly" if backend == "lambda" else "sagemaker_assembly"
    )
    found = stack_templates(assembly)
    assert set(found) == {"mlops-dev", "mlops-prod"}
    return {name: json.loads(path.read_text()) for name, path in found.items()}


@pytest.fixture(scope="module")
def statements(stacks: dict[str, dict[str, Any]]) -> list[Statement]:
    walked = [
        Statement(where, body)
        for stack, template in stacks.items()
        for where, document in _documents(stack, template)
        for body in _as_list(document["Statement"])
        if body.get("Effect") == "Allow"
    ]
    assert len(walked) > 20, "the walk found almost no policies: has the template changed shape?"
    return walked


def _matches(action: str, examples: tuple[str, ...]) -> bool:
    """Whether `action` (possibly a wildcard such as `s3:Get*`) covers any of `examples`."""
    action = action.lower()
    return any(fnmatchcase(example.lower(), action) for example in examples)


def _is_object_action(action: str) -> bool:
    return _matches(action, OBJECT_ACTIONS) or action.lower().startswith(OBJECT_ACTION_FAMILIES)


def _object_key_pattern(resource: Any) -> str | None:
    """`raw/*` of `<bucket arn>/raw/*`, as a literal ARN or CDK's `Fn::Join` of the bucket's
    Arn and a suffix; None when the resource is not an object ARN of that shape."""
    if isinstance(resource, str):
        if resource.startswith("arn:") and ":s3:::" in resource and "/" in resource:
            return resource.split("/", 1)[1]
        return None
    parts = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
    if len(parts) < 2 or resource["Fn::Join"][0] != "" or not isinstance(parts[-1], str):
        return None
    bucket = parts[-2]
    if not (isinstance(bucket, dict) and bucket.get("Fn::GetAtt", [None, None])[1] == "Arn"):
        return None
    suffix = parts[-1]
    return suffix[1:] if suffix.startswith("/") else None


def test_no_statement_allows_every_action_or_a_whole_service(
    statements: list[Statement],
) -> None:
    for statement in statements:
        assert "NotAction" not in statement.body, statement.where
        assert "NotResource" not in statement.body, statement.where
        for action in statement.actions:
            assert action != "*", f"{statement.where}: Action '*'"
            assert not action.endswith(":*"), f"{statement.where}: {action}"


def test_resource_star_only_for_actions_without_resource_types(
    statements: list[Statement], backend: str
) -> None:
    used = set()
    for statement in statements:
        if "*" not in statement.resources:
            continue
        unscoped = set(statement.actions) - set(RESOURCE_STAR_ACTIONS)
        assert not unscoped, f"{statement.where}: {sorted(unscoped)} on Resource '*'"
        used |= set(statement.actions)
    stale = set(RESOURCE_STAR_ACTIONS) - used - (SAGEMAKER_ONLY if backend == "lambda" else set())
    assert not stale, f"no policy uses {sorted(stale)} on '*' any more: drop them from the list"


def test_s3_object_access_is_scoped_to_a_data_lake_prefix(statements: list[Statement]) -> None:
    checked = 0
    for statement in statements:
        if not any(_is_object_action(a) for a in statement.actions if a.startswith("s3:")):
            continue
        for resource in statement.resources:
            pattern = _object_key_pattern(resource)
            assert pattern is not None, f"{statement.where}: object actions on {resource}"
            prefix = pattern.split("*", 1)[0].split("?", 1)[0]
            assert prefix.endswith("/"), f"{statement.where}: '{pattern}' is not under a prefix"
            assert prefix.startswith(LAKE_PREFIXES), f"{statement.where}: unknown prefix {prefix}"
            checked += 1
    assert checked, "no S3 object grant found: has the template changed shape?"


def test_listing_a_bucket_requires_an_s3_prefix_condition(statements: list[Statement]) -> None:
    for statement in statements:
        if not any(
            _matches(a, ("s3:ListBucket", "s3:ListBucketVersions")) for a in statement.actions
        ):
            continue
        condition = statement.body.get("Condition", {})
        prefixes = [
            prefix
            for operator in ("StringLike", "StringEquals")
            for prefix in _as_list(condition.get(operator, {}).get("s3:prefix", []))
        ]
        assert prefixes, f"{statement.where}: ListBucket without an s3:prefix condition"
        for prefix in prefixes:
            assert prefix.startswith(LAKE_PREFIXES), f"{statement.where}: lists {prefix!r}"


def test_only_the_listed_aws_managed_policies_are_attached(
    stacks: dict[str, dict[str, Any]],
) -> None:
    attached = set()
    for stack, template in stacks.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for arn in resource["Properties"].get("ManagedPolicyArns", []):
                parts = arn["Fn::Join"][1] if isinstance(arn, dict) else [arn]
                name = str(parts[-1]).split(":policy/", 1)[-1]
                assert name in AWS_MANAGED_POLICIES, f"{stack}/{logical_id}: {name}"
                attached.add(name)
    assert attached == set(AWS_MANAGED_POLICIES), "drop policies no role attaches any more"
