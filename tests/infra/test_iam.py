"""Least privilege: no wildcard actions, S3 object access scoped to the prefixes a role needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Resources = Callable[[str], dict[str, dict[str, Any]]]


def _statements(resources: Resources, role_prefix: str) -> Iterator[dict[str, Any]]:
    for policy in resources("AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy["Properties"]["Roles"]]
        if any(r.startswith(role_prefix) for r in roles):
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _object_prefixes(statement: dict[str, Any]) -> set[str]:
    prefixes = set()
    for resource in _as_list(statement["Resource"]):
        parts = resource["Fn::Join"][1]
        prefixes.add(parts[-1].lstrip("/"))
    return prefixes


def test_no_policy_allows_every_action(resources: Resources) -> None:
    for logical_id, policy in resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            assert "*" not in actions, logical_id
            assert not any(a.endswith(":*") for a in actions), (logical_id, actions)


def test_ingest_reads_raw_writes_curated_and_quarantine_and_deletes_nothing(
    resources: Resources,
) -> None:
    s3_statements = [
        s
        for s in _statements(resources, "PipelineIngestFunctionRole")
        if any(a.startswith("s3:") for a in _as_list(s["Action"]))
    ]
    reads = [s for s in s3_statements if "s3:GetObject" in _as_list(s["Action"])]
    writes = [s for s in s3_statements if "s3:PutObject" in _as_list(s["Action"])]
    # Its own curated versions: the lineage event's schema facet reads back the manifest it wrote.
    assert set().union(*map(_object_prefixes, reads)) == {"raw/*", "curated/churn/*"}
    assert set().union(*map(_object_prefixes, writes)) == {
        "curated/churn/*",
        "quarantine/*",
        "lineage/*",
    }
    for statement in s3_statements:
        actions = _as_list(statement["Action"])
        assert not any("Delete" in a for a in actions), "ingest must never delete objects"
        assert not any(a.endswith("*") for a in actions), actions


def test_ingest_logs_only_to_its_own_log_group(resources: Resources) -> None:
    log_statements = [
        s
        for s in _statements(resources, "PipelineIngestFunctionRole")
        if any(a.startswith("logs:") for a in _as_list(s["Action"]))
    ]
    assert log_statements
    for statement in log_statements:
        (resource,) = _as_list(statement["Resource"])
        assert resource["Fn::GetAtt"][0].startswith("PipelineIngestFunctionLogs")


# Roles AWS defines the policy of: CDK's notifications handler (deploy time only) and API
# Gateway's account-wide CloudWatch role (AmazonAPIGatewayPushToCloudWatchLogs, which
# execution and access logging require).
MANAGED_POLICY_ROLES = ("BucketNotificationsHandler", "ServingApiCloudWatchRole")


def test_no_role_uses_a_managed_policy_except_the_ones_aws_defines(
    resources: Resources,
) -> None:
    for logical_id, role in resources("AWS::IAM::Role").items():
        if role["Properties"].get("ManagedPolicyArns"):
            assert logical_id.startswith(MANAGED_POLICY_ROLES), logical_id


def _s3_prefixes(resources: Resources, role: str, action: str) -> set[str]:
    statements = [s for s in _statements(resources, role) if action in _as_list(s["Action"])]
    return set().union(*map(_object_prefixes, statements)) if statements else set()


def test_training_stages_touch_only_the_prefixes_they_need(resources: Resources) -> None:
    train = "PipelineTrainFunctionRole"
    assert _s3_prefixes(resources, train, "s3:GetObject") == {"curated/churn/*"}
    assert _s3_prefixes(resources, train, "s3:PutObject") == {"models/churn/runs/*", "lineage/*"}
    evaluate = "PipelineEvaluateFunctionRole"
    assert _s3_prefixes(resources, evaluate, "s3:PutObject") == {
        "models/churn/runs/*",
        "lineage/*",
    }
    assert _s3_prefixes(resources, "PipelineRegisterFunctionRole", "s3:PutObject") == {
        "models/churn/*",
        "reports/churn/*",
        "lineage/*",
    }
    for role in ("Train", "Evaluate", "Register"):
        prefixes = _s3_prefixes(resources, f"Pipeline{role}FunctionRole", "s3:GetObject")
        assert "raw/*" not in prefixes, f"{role} must not read raw data"


def _of_type(template: dict[str, Any]) -> Resources:
    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}

    return of_type


def _registry_grants(resources: Resources, role: str) -> dict[str, set[str]]:
    """{registry action: the partitions (`dynamodb:LeadingKeys`) it is granted on}; `*` for
    a grant on every partition."""
    grants: dict[str, set[str]] = {}
    for statement in _statements(resources, role):
        actions = [a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")]
        condition = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
        partitions = set(condition.get("dynamodb:LeadingKeys", ["*"]))
        for action in actions:
            grants.setdefault(action, set()).update(partitions)
    return grants


PORTFOLIO_MODELS = ("churn", "churn-strict", "churn-broken", "prices")


def test_each_pipeline_stage_names_exactly_the_configured_models_and_datasets(
    portfolio_template: dict[str, Any],
) -> None:
    resources = _of_type(portfolio_template)
    models = {f"MODEL#{m}" for m in PORTFOLIO_MODELS}
    runs = {f"RUNS#{m}" for m in PORTFOLIO_MODELS}
    datasets = {"DATASET#churn", "DATASET#prices"}
    assert _registry_grants(resources, "PipelineIngestFunctionRole") == dict.fromkeys(
        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        {*datasets, "IDEMPOTENCY#ingest"},
    )
    assert _registry_grants(resources, "PipelineTrainFunctionRole") == {
        "dynamodb:Query": datasets | runs,
        "dynamodb:PutItem": runs,
    }
    assert _registry_grants(resources, "PipelineEvaluateFunctionRole") == {
        "dynamodb:GetItem": models,
        "dynamodb:UpdateItem": runs,
    }
    assert _registry_grants(resources, "PipelineRegisterFunctionRole") == dict.fromkeys(
        (
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        ),
        models | runs,
    )
    train = "PipelineTrainFunctionRole"
    assert _s3_prefixes(resources, train, "s3:GetObject") == {"curated/churn/*", "curated/prices/*"}
    assert _s3_prefixes(resources, train, "s3:PutObject") == {
        *(f"models/{m}/runs/*" for m in PORTFOLIO_MODELS),
        "lineage/*",
    }
    assert _s3_prefixes(resources, "PipelineEvaluateFunctionRole", "s3:GetObject") == {
        f"models/{m}/*" for m in PORTFOLIO_MODELS
    }
    assert _s3_prefixes(resources, "PipelineRegisterFunctionRole", "s3:PutObject") == {
        *(f"models/{m}/*" for m in PORTFOLIO_MODELS),
        *(f"reports/{m}/*" for m in PORTFOLIO_MODELS),
        "lineage/*",
    }
    assert _s3_prefixes(resources, "PipelineIngestFunctionRole", "s3:PutObject") == {
        "curated/churn/*",
        "curated/prices/*",
        "quarantine/*",
        "lineage/*",
    }


def test_only_register_publishes_events_and_only_to_the_default_bus(
    resources: Resources,
) -> None:
    for role in ("Ingest", "Train", "Evaluate", "Register"):
        statements = [
            s
            for s in _statements(resources, f"Pipeline{role}FunctionRole")
            if "events:PutEvents" in _as_list(s["Action"])
        ]
        if role != "Register":
            assert not statements, f"{role} can publish events"
            continue
        (statement,) = statements
        assert statement["Resource"]["Fn::Join"][1][-1] == ":event-bus/default"
