"""The data bucket is private, encrypted, versioned, TLS-only, logged, and emits S3 events to
EventBridge; its lifecycle never expires raw data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Match, Template

Resources = Callable[[str], dict[str, dict[str, Any]]]


def test_data_bucket_is_versioned_encrypted_private_and_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {"LogFilePrefix": "data-bucket/"},
        },
    )


def test_every_bucket_is_private_encrypted_and_denies_plain_http(resources: Resources) -> None:
    buckets = resources("AWS::S3::Bucket")
    policies = resources("AWS::S3::BucketPolicy")
    assert len(buckets) == 2
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
        assert "BucketEncryption" in props, logical_id
        policy = next(
            p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": logical_id}
        )
        denies_http = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies_http, f"{logical_id} accepts plain HTTP"


def test_lifecycle_expires_quarantine_and_old_versions_but_never_raw(resources: Resources) -> None:
    data = next(
        b
        for b in resources("AWS::S3::Bucket").values()
        if "VersioningConfiguration" in b["Properties"]
    )
    rules = {r["Id"]: r for r in data["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-quarantine"]["Prefix"] == "quarantine/"
    assert rules["expire-quarantine"]["ExpirationInDays"] == 365
    assert rules["expire-noncurrent-curated"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    for rule in rules.values():
        assert not rule.get("Prefix", "").startswith("raw"), "raw data must never expire"
        if "ExpirationInDays" in rule or "NoncurrentVersionExpiration" in rule:
            assert rule.get("Prefix"), f"rule {rule['Id']} would expire objects under raw/"


def test_bucket_sends_events_to_eventbridge(template: Template) -> None:
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {}}},
    )


def test_access_log_bucket_expires_logs(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"Id": "expire-access-logs"})])
            }
        },
    )
