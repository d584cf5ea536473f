"""Erasure is the only path that deletes raw data: the data bucket denies deleting under raw/
to every principal but the stack's erasure role, whose ARN is a stack output. Writing under
quarantine/ is denied to all but ingest and that role (no producer forges a reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Resources = Callable[[str], dict[str, dict[str, Any]]]


def _erasure_role(resources: Resources) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, role in resources("AWS::IAM::Role").items()
        if "mlops erase" in role["Properties"].get("Description", "")
    ]
    return logical_id


def _data_bucket_policy(resources: Resources) -> list[dict[str, Any]]:
    data = next(
        logical_id
        for logical_id, bucket in resources("AWS::S3::Bucket").items()
        if "VersioningConfiguration" in bucket["Properties"]
    )
    policy = next(
        p
        for p in resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": data}
    )
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_bucket_denies_deleting_raw_data_to_all_but_the_erasure_role(resources: Resources) -> None:
    role = _erasure_role(resources)
    (deny,) = [
        s for s in _data_bucket_policy(resources) if s.get("Sid") == "OnlyErasureDeletesRawData"
    ]

    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert sorted(deny["Action"]) == ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    assert deny["Resource"]["Fn::Join"][1][-1] == "/raw/*"
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": [role, "Arn"]}}
    }


def test_erasure_role_is_an_output_and_may_delete_versions_where_subjects_live(
    resources: Resources, template_json: dict[str, Any]
) -> None:
    role = _erasure_role(resources)

    assert template_json["Outputs"]["ErasureRoleArn"]["Value"] == {"Fn::GetAtt": [role, "Arn"]}
    statements = [
        statement
        for policy in resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    deletable = {
        prefix
        for statement in statements
        if "s3:DeleteObjectVersion" in statement["Action"]
        for prefix in _prefixes(statement)
    }
    areas = ("raw", "quarantine", "curated", "capture", "feedback", "shadow")
    assert deletable == {f"/{p}/*" for p in areas}
    audit = [s for s in statements if s["Action"] == "s3:PutObject"]
    assert [p for s in audit for p in _prefixes(s)] == ["/audit/erasure/*"]


def _prefixes(statement: dict[str, Any]) -> list[str]:
    """The object prefixes of a statement's resources (`/raw/*`)."""
    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    return [r["Fn::Join"][1][-1] for r in resources if "Fn::Join" in r]


def test_bucket_lets_only_ingest_and_the_erasure_role_write_quarantine(
    resources: Resources,
) -> None:
    (ingest,) = [
        name
        for name in resources("AWS::IAM::Role")
        if name.startswith("PipelineIngestFunctionRole")
    ]
    (deny,) = [
        s for s in _data_bucket_policy(resources) if s.get("Sid") == "OnlyItsWritersWriteQuarantine"
    ]

    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert deny["Action"] == "s3:PutObject"
    assert deny["Resource"]["Fn::Join"][1][-1] == "/quarantine/*"
    assert deny["Condition"] == {
        "ArnNotEquals": {
            "aws:PrincipalArn": [
                {"Fn::GetAtt": [ingest, "Arn"]},
                {"Fn::GetAtt": [_erasure_role(resources), "Arn"]},
            ]
        }
    }
