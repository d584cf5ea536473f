"""KMS keys and aliases (moto encrypts nothing with them; they exist to be referenced)."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    ResourceSpec,
    names,
    present,
    tags,
    unapplied,
)

_KEY = names(
    "Description KeyPolicy KeyUsage KeySpec EnableKeyRotation Enabled PendingWindowInDays Tags"
)


def key(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = present(p, {"Description": "Description"})
    if "KeyPolicy" in p:
        request["Policy"] = json.dumps(p["KeyPolicy"])
    request.update(present(p, {"KeyUsage": "KeyUsage", "KeySpec": "KeySpec"}))
    if tags(p):
        request["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tags(p)]
    kms = ctx.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    key_id = metadata["KeyId"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key_id)
    if p.get("Enabled") is False:
        kms.disable_key(KeyId=key_id)
    return Created(
        ref=key_id,
        attributes={"Arn": metadata["Arn"], "KeyId": key_id},
        notes=unapplied(p, _KEY),
    )


def alias(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    ctx.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return Created(ref=p["AliasName"])
