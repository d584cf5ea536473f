"""Data protection as deployed: encryption at rest everywhere (one customer-managed key when
`[data_lake] kms_key = true`, AWS-owned / S3-managed keys otherwise), TLS-only private buckets,
versioning where data or models live, and capture and feedback retention from the config.
cdk-nag runs during every synth here and fails it on a finding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.cdk.app import build_app
from infra.local.authz.policy import Policy, Request, evaluate
from infra.local.authz.reference import context_keys
from infra.local.intrinsics import Resolver, StackContext

Resources = Callable[[str], dict[str, dict[str, Any]]]
REPO = Path(__file__).resolve().parents[2]


def _data_bucket(template: dict[str, Any]) -> dict[str, Any]:
    (bucket,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::Bucket" and "VersioningConfiguration" in r["Properties"]
    ]
    return bucket


def _rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = _data_bucket(template)["LifecycleConfiguration"]["Rules"]
    return {rule["Id"]: rule for rule in rules}


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _synth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_lake: str) -> dict[str, Any]:
    config = tmp_path / "mlops.toml"
    config.write_text((REPO / "mlops.toml").read_text() + f"\n[data_lake]\n{data_lake}\n")
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    app = build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"})
    template: dict[str, Any] = app.synth().get_stack_by_name("mlops-dev").template
    return template


@pytest.fixture(scope="module")
def kms_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _synth(
            tmp_path_factory.mktemp("kms"),
            monkeypatch,
            "kms_key = true\ncapture_retention_days = 30\nfeedback_retention_days = 180",
        )


def _key_id(template: dict[str, Any]) -> str:
    keys = _of_type(template, "AWS::KMS::Key")
    (data_key,) = [k for k, r in keys.items() if k.startswith("DataKey")]
    return data_key


def test_by_default_no_customer_key_encrypts_data(template_json: dict[str, Any]) -> None:
    keys = _of_type(template_json, "AWS::KMS::Key")
    assert not [k for k in keys if k.startswith("DataKey")], "kms_key is off by default"
    encryption = _data_bucket(template_json)["BucketEncryption"]
    assert encryption["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    (table,) = _of_type(template_json, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    (stream,) = _of_type(template_json, "AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    assert "EncryptionConfiguration" not in props["ExtendedS3DestinationConfiguration"]
    for group in _of_type(template_json, "AWS::Logs::LogGroup").values():
        assert "KmsKeyId" not in group["Properties"]


def test_every_bucket_holding_data_or_models_is_versioned_and_private(
    template_json: dict[str, Any],
) -> None:
    # The data bucket holds raw, curated, models, capture and feedback; the other bucket holds
    # only its access logs (which S3 cannot deliver to a bucket encrypted with a customer key).
    buckets = _of_type(template_json, "AWS::S3::Bucket")
    versioned = {k for k, b in buckets.items() if "VersioningConfiguration" in b["Properties"]}
    assert len(versioned) == 1
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        if logical_id not in versioned:
            assert "AccessLogs" in logical_id, f"{logical_id} holds data but is not versioned"
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        assert all(props["PublicAccessBlockConfiguration"].values())


def test_capture_and_feedback_expire_after_the_configured_days(
    template_json: dict[str, Any], kms_template: dict[str, Any]
) -> None:
    defaults, configured = _rules(template_json), _rules(kms_template)
    for rules, capture, feedback in ((defaults, 90, 365), (configured, 30, 180)):
        for rule_id, prefix, days in (
            ("expire-capture", "capture/", capture),
            ("expire-capture-errors", "capture-errors/", capture),
            ("expire-feedback", "feedback/", feedback),
        ):
            rule = rules[rule_id]
            assert rule["Status"] == "Enabled"
            assert rule["Prefix"] == prefix and rule["ExpirationInDays"] == days
            # the expired version is really gone a day later, not kept as noncurrent
            assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_a_customer_key_with_rotation_encrypts_bucket_table_stream_and_logs(
    kms_template: dict[str, Any],
) -> None:
    key_id = _key_id(kms_template)
    key = kms_template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    key_arn = {"Fn::GetAtt": [key_id, "Arn"]}

    (rule,) = _data_bucket(kms_template)["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "BucketKeyEnabled": True,
        "ServerSideEncryptionByDefault": {"KMSMasterKeyID": key_arn, "SSEAlgorithm": "aws:kms"},
    }
    (table,) = _of_type(kms_template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["SSESpecification"] == {
        "KMSMasterKeyId": key_arn,
        "SSEEnabled": True,
        "SSEType": "KMS",
    }
    (stream,) = _of_type(kms_template, "AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {
        "KeyARN": key_arn,
        "KeyType": "CUSTOMER_MANAGED_CMK",
    }
    assert props["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"] == {
        "KMSEncryptionConfig": {"AWSKMSKeyARN": key_arn}
    }
    functions = _of_type(kms_template, "AWS::Lambda::Function")
    function_logs = {
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for f in functions.values()
        if "LogGroup" in f["Properties"].get("LoggingConfig", {})
    }
    assert function_logs
    for logical_id in function_logs:
        group = kms_template["Resources"][logical_id]["Properties"]
        assert group["KmsKeyId"] == key_arn, logical_id
    services = [
        s["Principal"].get("Service")
        for s in key["KeyPolicy"]["Statement"]
        if isinstance(s["Principal"], dict)
    ]
    assert any("logs." in str(service) for service in services)


def _key_actions(template: dict[str, Any], role_id: str, key_id: str) -> set[str]:
    actions: set[str] = set()
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}:
                listed = statement["Action"]
                actions |= set(listed if isinstance(listed, list) else [listed])
    return actions


def test_roles_that_read_or_write_data_may_use_the_key(kms_template: dict[str, Any]) -> None:
    key_id = _key_id(kms_template)
    roles = _of_type(kms_template, "AWS::IAM::Role")

    def role(fragment: str) -> str:
        (found,) = [k for k in roles if fragment in k]
        return found

    # predict reads models and writes feedback, Firehose writes capture, ingest reads raw/
    # and writes curated/, the drift check reads capture and writes reports
    for fragment in (
        "PredictFunctionRole",
        "CaptureRole",
        "IngestFunctionRole",
        "DriftFunction",
        "BatchScoreFunctionRole",
    ):
        actions = _key_actions(kms_template, role(fragment), key_id)
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions, (fragment, actions)
    # the batch map's item reader reads the (encrypted) items file
    assert _key_actions(kms_template, role("BatchStateMachineRole"), key_id) == {"kms:Decrypt"}
    for fragment in ("PipelineStateMachineRole", "ApiCloudWatchRole"):  # no data: no key
        assert not _key_actions(kms_template, role(fragment), key_id), fragment


def test_tls_is_enforced_with_the_customer_key_too(kms_template: dict[str, Any]) -> None:
    for policy in _of_type(kms_template, "AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
    Template.from_json(kms_template).resource_count_is("AWS::S3::Bucket", 2)


def test_cloudwatch_logs_may_use_the_key_only_for_this_accounts_log_groups(
    kms_template: dict[str, Any],
) -> None:
    # The key policy as deployed, decided by the evaluator the local cloud enforces IAM with.
    key_id = _key_id(kms_template)
    context = StackContext("mlops-dev")
    resolver = Resolver(kms_template, context, lookup=lambda _logical_id: None)
    key_policy = resolver.resolve(kms_template["Resources"][key_id]["Properties"], key_id)
    policy = Policy("key policy", key_policy["KeyPolicy"])
    key_arn = f"arn:aws:kms:{context.region}:{context.account_id}:key/data"
    service = f"logs.{context.region}.amazonaws.com"

    def logs_may_encrypt_for(account: str) -> bool:
        group = f"arn:aws:logs:{context.region}:{account}:log-group:/aws/lambda/predict"
        request = Request(
            principal=service,
            action="kms:GenerateDataKey",
            resource=key_arn,
            context={
                "aws:PrincipalIsAWSService": True,
                "aws:PrincipalServiceName": service,
                "aws:SecureTransport": True,
                "aws:SourceAccount": account,
                "aws:SourceArn": group,
                "kms:EncryptionContext:aws:logs:arn": group,
            },
            known_keys=context_keys("kms:GenerateDataKey"),
        )
        decision = evaluate(request, [], [policy], account=context.account_id, kms_key=True)
        return decision.allowed

    assert logs_may_encrypt_for(context.account_id)
    # a log group of another account, named like ours (the confused deputy): refused
    assert not logs_may_encrypt_for("210987654321")
