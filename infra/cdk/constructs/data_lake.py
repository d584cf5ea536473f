"""The data lake: one versioned, encrypted, private data bucket with a prefix per concern
(raw/, curated/, quarantine/, models/, capture/, feedback/, reports/) and a bucket for its
access logs."""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.common.layout import (
    CAPTURE_ERRORS_PREFIX,
    CAPTURE_PREFIX,
    CURATED_PREFIX,
    ERASED_PREFIXES,
    ERASURE_AUDIT_PREFIX,
    FEEDBACK_PREFIX,
    MODELS_PREFIX,
    REPORTS_PREFIX,
    SHADOW_PREFIX,
)
from functions.common.layout import QUARANTINE_PREFIX as QUARANTINE_PREFIX
from functions.common.layout import RAW_PREFIX as RAW_PREFIX
from infra.cdk.config import DeployConfig
from infra.cdk.nag import acknowledge

DATA_KEY_ID = "DataKey"
EXPIRED_VERSION_DAYS = 1
"""An expired capture or feedback object's (now noncurrent) version is deleted this long after."""


def data_key(scope: Construct, deploy: DeployConfig) -> kms.Key | None:
    """The stack's one customer-managed key (`[data_lake] kms_key = true`), created on first
    use, for the data bucket, the registry table, the capture stream and the functions' log
    groups; None when AWS-owned / S3-managed keys are configured (the default)."""
    if not deploy.config.data_lake.kms_key:
        return None
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(DATA_KEY_ID)
    if isinstance(existing, kms.Key):
        return existing
    key = kms.Key(
        stack,
        DATA_KEY_ID,
        description=f"Encrypts the data, registry, capture and logs of {deploy.stack_name}",
        enable_key_rotation=True,
        removal_policy=deploy.removal_policy,
    )
    # CloudWatch Logs encrypts a log group with the key only if the key policy lets it: for
    # this account's log groups only (`log-group:<name>` ARNs; `aws:SourceAccount` keeps another
    # account's log groups from using the key through the service, the confused deputy).
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                },
                "StringEquals": {"aws:SourceAccount": stack.account},
            },
        )
    )
    acknowledge(
        stack,
        "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
        "DynamoDB grants on a table with a customer key add kms:ReEncrypt* on that key ARN "
        "only (aws-cdk-lib's fixed action list for table grants).",
    )
    acknowledge(
        stack,
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        "DynamoDB grants on a table with a customer key add kms:GenerateDataKey* on that key "
        "ARN only (aws-cdk-lib's fixed action list for table grants).",
    )
    return key


class DataLake(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, deploy: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        lake = deploy.config.data_lake
        self.key = data_key(self, deploy)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=deploy.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(lake.access_log_retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        )

        derived = [CURATED_PREFIX, MODELS_PREFIX, REPORTS_PREFIX]
        self.bucket = s3.Bucket(
            self,
            "Data",
            versioned=True,
            encryption=s3.BucketEncryption.KMS if self.key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.key,
            bucket_key_enabled=True if self.key else None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data-bucket/",
            event_bridge_enabled=True,
            removal_policy=deploy.removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="expire-quarantine",
                    prefix=QUARANTINE_PREFIX,
                    expiration=Duration.days(lake.quarantine_retention_days),
                    noncurrent_version_expiration=Duration.days(
                        lake.noncurrent_version_retention_days
                    ),
                ),
                *(
                    s3.LifecycleRule(
                        id=f"expire-{prefix.rstrip('/')}",
                        prefix=prefix,
                        expiration=Duration.days(days),
                        noncurrent_version_expiration=Duration.days(EXPIRED_VERSION_DAYS),
                    )
                    for prefix, days in (
                        (CAPTURE_PREFIX, lake.capture_retention_days),
                        (CAPTURE_ERRORS_PREFIX, lake.capture_retention_days),
                        (FEEDBACK_PREFIX, lake.feedback_retention_days),
                        (SHADOW_PREFIX, lake.capture_retention_days),
                    )
                ),
                *(
                    s3.LifecycleRule(
                        id=f"expire-noncurrent-{prefix.rstrip('/')}",
                        prefix=prefix,
                        noncurrent_version_expiration=Duration.days(
                            lake.noncurrent_version_retention_days
                        ),
                    )
                    for prefix in derived
                ),
            ],
        )

        self._erasure_role()

    def _erasure_role(self) -> None:
        """The only principal that may delete raw data: `mlops erase` assumes it. The bucket
        policy denies deleting under raw/ to everyone else, whatever their IAM policies say."""
        self.erasure_role = iam.Role(
            self,
            "Erasure",
            assumed_by=iam.AccountRootPrincipal(),
            description="mlops erase: removes one data subject from the data bucket, "
            "every object version included",
            max_session_duration=Duration.hours(1),
        )
        erased = ERASED_PREFIXES
        iam.Grant.add_to_principal(
            grantee=self.erasure_role,
            actions=["s3:ListBucket", "s3:ListBucketVersions"],
            resource_arns=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in erased]}},
        )
        for prefix in erased:
            self._grant_objects(
                self.erasure_role,
                prefix,
                [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                ],
            )
        self._grant_objects(self.erasure_role, ERASURE_AUDIT_PREFIX, ["s3:PutObject"])
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyErasureDeletesRawData",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{RAW_PREFIX}*")],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": self.erasure_role.role_arn}},
            )
        )
        # An output of the stack (not of this construct's path): `mlops erase` reads it by name.
        output = CfnOutput(self, "ErasureRoleArn", value=self.erasure_role.role_arn)
        output.override_logical_id("ErasureRoleArn")

    def reserve_writes(self, prefix: str, *writers: iam.IRole) -> None:
        """Only `writers` (and the erasure role, which rewrites what holds a data subject) may
        put objects under `prefix`: the bucket policy denies it to everyone else, whatever
        their IAM policies grant (a producer allowed to write the whole bucket included)."""
        sid = "OnlyItsWritersWrite" + "".join(
            part.capitalize() for part in prefix.strip("/").split("/")
        )
        arns = [writer.role_arn for writer in (*writers, self.erasure_role)]
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=sid,
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{prefix}*")],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": arns}},
            )
        )

    def grant_read_objects(self, grantee: iam.IRole, prefix: str) -> None:
        """Read current and earlier versions of the objects under `prefix`, nothing else."""
        self._grant_objects(grantee, prefix, ["s3:GetObject", "s3:GetObjectVersion"])

    def grant_write_objects(self, grantee: iam.IRole, prefix: str) -> None:
        """Create objects under `prefix` (multipart uploads included); no delete."""
        self._grant_objects(grantee, prefix, ["s3:PutObject", "s3:AbortMultipartUpload"])

    def object_created(self, key: Any) -> events.EventPattern:
        """The EventBridge pattern of S3's Object Created in this bucket for a key matching
        `key` (an event pattern's key filter: `[{"prefix": ...}]`, `events.Match.wildcard`)."""
        return events.EventPattern(
            source=["aws.s3"],
            detail_type=["Object Created"],
            detail={"bucket": {"name": [self.bucket.bucket_name]}, "object": {"key": key}},
        )

    def grant_list(self, grantee: iam.IRole, prefixes: list[str]) -> None:
        """List the keys under `prefixes` only (an `s3:prefix` condition on ListBucket)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        )

    def _grant_objects(self, grantee: iam.IRole, prefix: str, actions: list[str]) -> None:
        if not prefix.endswith("/"):
            raise ValueError(f"object grants are scoped to a prefix ending in '/': {prefix!r}")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=actions,
            resource_arns=[self.bucket.arn_for_objects(f"{prefix}*")],
        )
        if self.key is not None:
            writes = any(action.startswith("s3:Put") for action in actions)
            self.key.grant(grantee, "kms:Decrypt", *(["kms:GenerateDataKey"] if writes else []))
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            grantee,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
            f"Object access is scoped to the {prefix} prefix the function owns; object keys "
            "under it are data-dependent (dataset versions, quarantined file names).",
        )
