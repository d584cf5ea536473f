"""The data lake: one versioned, encrypted, private data bucket with a prefix per concern
(raw/, curated/, quarantine/, models/, capture/, feedback/, reports/) and a bucket for its
access logs."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge

RAW_PREFIX = "raw/"
CURATED_PREFIX = "curated/"
QUARANTINE_PREFIX = "quarantine/"
MODELS_PREFIX = "models/"
CAPTURE_PREFIX = "capture/"
"""Prediction requests and responses captured by Firehose, by day: `capture/dt=YYYY-MM-DD/`."""
CAPTURE_ERRORS_PREFIX = "capture-errors/"
"""Records Firehose could not deliver under capture/ (kept apart so drift never reads them)."""
FEEDBACK_PREFIX = "feedback/"
"""True labels for earlier predictions (POST /v1/feedback), by request id."""
REPORTS_PREFIX = "reports/"


class DataLake(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, deploy: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        lake = deploy.config.data_lake

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
            encryption=s3.BucketEncryption.S3_MANAGED,
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
                s3.LifecycleRule(
                    id="expire-capture-errors",
                    prefix=CAPTURE_ERRORS_PREFIX,
                    expiration=Duration.days(lake.quarantine_retention_days),
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

    def grant_read_objects(self, grantee: iam.IRole, prefix: str) -> None:
        """Read current and earlier versions of the objects under `prefix`, nothing else."""
        self._grant_objects(grantee, prefix, ["s3:GetObject", "s3:GetObjectVersion"])

    def grant_write_objects(self, grantee: iam.IRole, prefix: str) -> None:
        """Create objects under `prefix` (multipart uploads included); no delete."""
        self._grant_objects(grantee, prefix, ["s3:PutObject", "s3:AbortMultipartUpload"])

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
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            grantee,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
            f"Object access is scoped to the {prefix} prefix the function owns; object keys "
            "under it are data-dependent (dataset versions, quarantined file names).",
        )
