"""S3 buckets, bucket policies and CDK's bucket-notifications custom resource."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    ResourceSpec,
    log,
    names,
    tags,
    unapplied,
)

_APPLIED = names(
    "BucketName VersioningConfiguration BucketEncryption "
    "PublicAccessBlockConfiguration OwnershipControls LifecycleConfiguration "
    "LoggingConfiguration NotificationConfiguration CorsConfiguration "
    "ObjectLockEnabled Tags"
)


def bucket(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("BucketName") or ctx.physical_name(spec, max_length=63, lower=True)
    s3 = ctx.client("s3")
    create: dict[str, Any] = {"Bucket": name}
    if ctx.context.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": ctx.context.region}
    if p.get("ObjectLockEnabled"):
        create["ObjectLockEnabledForBucket"] = True
    if ctx.previous(spec) is None:
        s3.create_bucket(**create)
    if "VersioningConfiguration" in p:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
    if "BucketEncryption" in p:
        rules = [
            _encryption_rule(r) for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"]
        )
    if "OwnershipControls" in p:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
    if "LifecycleConfiguration" in p:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [lifecycle_rule(rule) for rule in p["LifecycleConfiguration"]["Rules"]]
            },
        )
    if "CorsConfiguration" in p:
        s3.put_bucket_cors(Bucket=name, CORSConfiguration=_cors(p["CorsConfiguration"]))
    if tags(p):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags(p)})
    if (
        (p.get("NotificationConfiguration") or {})
        .get("EventBridgeConfiguration", {})
        .get("EventBridgeEnabled")
    ):
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
    notes = unapplied(p, _APPLIED)
    if "LoggingConfiguration" in p:
        ctx.deferred.append((f"{spec.logical_id} access logging", _logging(ctx, name, p)))
    return Created(ref=name, attributes=_bucket_attributes(ctx, name), notes=notes)


def _encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in rule.items() if key != "ServerSideEncryptionByDefault"}
    if "ServerSideEncryptionByDefault" in rule:
        out["ApplyServerSideEncryptionByDefault"] = rule["ServerSideEncryptionByDefault"]
    return out


def _logging(ctx: DeployContext, name: str, p: dict[str, Any]) -> Any:
    config = p["LoggingConfiguration"]

    def apply() -> None:
        enabled = {
            "TargetBucket": config.get("DestinationBucketName", name),
            "TargetPrefix": config.get("LogFilePrefix", ""),
        }
        ctx.client("s3").put_bucket_logging(
            Bucket=name, BucketLoggingStatus={"LoggingEnabled": enabled}
        )

    return apply


def _bucket_attributes(ctx: DeployContext, name: str) -> dict[str, Any]:
    region, suffix = ctx.context.region, ctx.context.url_suffix
    return {
        "Arn": f"arn:{ctx.context.partition}:s3:::{name}",
        "DomainName": f"{name}.s3.{suffix}",
        "RegionalDomainName": f"{name}.s3.{region}.{suffix}",
        "DualStackDomainName": f"{name}.s3.dualstack.{region}.{suffix}",
        "WebsiteURL": f"http://{name}.s3-website-{region}.{suffix}",
    }


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the shape of the S3 API."""
    out: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    out["Filter"] = _lifecycle_filter(rule)
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = rule["ExpirationInDays"]
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = rule["ExpiredObjectDeleteMarker"]
    if expiration:
        out["Expiration"] = expiration
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    elif "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]
        }
    if "Transitions" in rule:
        out["Transitions"] = [
            _transition(t, "TransitionInDays", "Days") for t in rule["Transitions"]
        ]
    if "NoncurrentVersionTransitions" in rule:
        out["NoncurrentVersionTransitions"] = [
            _transition(t, "TransitionInDays", "NoncurrentDays")
            for t in rule["NoncurrentVersionTransitions"]
        ]
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return out


def _lifecycle_filter(rule: dict[str, Any]) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    if rule.get("Prefix"):
        parts["Prefix"] = rule["Prefix"]
    if rule.get("TagFilters"):
        parts["Tags"] = rule["TagFilters"]
    for size in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if size in rule:
            parts[size] = int(rule[size])
    if not parts:
        return {"Prefix": ""}
    if len(parts) == 1 and "Tags" in parts and len(parts["Tags"]) == 1:
        return {"Tag": parts["Tags"][0]}
    if len(parts) == 1 and "Tags" not in parts:
        return parts
    return {"And": parts}


def _transition(transition: dict[str, Any], days_key: str, api_days_key: str) -> dict[str, Any]:
    out = {
        key: value for key, value in transition.items() if key not in (days_key, "TransitionDate")
    }
    if days_key in transition:
        out[api_days_key] = transition[days_key]
    if "TransitionDate" in transition:
        out["Date"] = transition["TransitionDate"]
    return out


def _cors(config: dict[str, Any]) -> dict[str, Any]:
    api_names = {
        "AllowedHeaders": "AllowedHeaders",
        "AllowedMethods": "AllowedMethods",
        "AllowedOrigins": "AllowedOrigins",
        "ExposedHeaders": "ExposeHeaders",
        "Id": "ID",
        "MaxAge": "MaxAgeSeconds",
    }
    return {
        "CORSRules": [
            {api_names[key]: value for key, value in rule.items() if key in api_names}
            for rule in config["CorsRules"]
        ]
    }


def bucket_policy(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    ctx.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
    return Created(ref=ctx.physical_name(spec))


def bucket_notifications(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """CDK's `Custom::S3BucketNotifications`: what its handler Lambda would do, done here."""
    p = spec.properties
    config = dict(p.get("NotificationConfiguration") or {})
    if str(p.get("Managed", True)).lower() != "true":
        log.info("%s: unmanaged notifications are applied as managed ones", spec.logical_id)
    ctx.client("s3").put_bucket_notification_configuration(
        Bucket=p["BucketName"], NotificationConfiguration=config
    )
    return Created(ref=ctx.physical_name(spec))
