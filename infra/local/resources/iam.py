"""IAM roles and policies: created so they can be listed and read, never enforced (moto does
not evaluate IAM policies for API calls)."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    ResourceSpec,
    log,
    names,
    present,
    tags,
    unapplied,
)

_ROLE = names(
    "RoleName AssumeRolePolicyDocument Policies ManagedPolicyArns Path Description "
    "MaxSessionDuration PermissionsBoundary Tags"
)


def role(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("RoleName") or ctx.physical_name(spec, max_length=64)
    iam = ctx.client("iam")
    request: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": json.dumps(p["AssumeRolePolicyDocument"]),
        "Path": p.get("Path", "/"),
    }
    for key in ("Description", "MaxSessionDuration", "PermissionsBoundary"):
        if key in p:
            request[key] = p[key]
    if tags(p):
        request["Tags"] = tags(p)
    if ctx.previous(spec) is not None:
        created = _update_role(iam, p, request)
    else:
        created = iam.create_role(**request)["Role"]
    for policy in p.get("Policies") or []:
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    notes = unapplied(p, _ROLE)
    for arn in p.get("ManagedPolicyArns") or []:
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except iam.exceptions.NoSuchEntityException:
            # moto loads no AWS-managed policies unless configured to; the role keeps a note.
            notes.append(f"managed policy {arn} recorded, not attached")
    return Created(
        ref=name, attributes={"Arn": created["Arn"], "RoleId": created["RoleId"]}, notes=notes
    )


def _update_role(iam: Any, p: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A role updated in place: its trust policy, and the inline and managed policies the
    template no longer names removed (the ones it names are put after)."""
    name = request["RoleName"]
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=request["AssumeRolePolicyDocument"])
    keep = {policy["PolicyName"] for policy in p.get("Policies") or []}
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy not in keep:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
    managed = set(p.get("ManagedPolicyArns") or [])
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        if attached["PolicyArn"] not in managed:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    return dict(iam.get_role(RoleName=name)["Role"])


def policy(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """An inline policy (`AWS::IAM::Policy`) put on each of its roles, users and groups."""
    p = spec.properties
    name = p["PolicyName"]
    document = json.dumps(p["PolicyDocument"])
    iam = ctx.client("iam")
    for role_name in p.get("Roles") or []:
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=document)
    for user in p.get("Users") or []:
        iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=document)
    for group in p.get("Groups") or []:
        iam.put_group_policy(GroupName=group, PolicyName=name, PolicyDocument=document)
    return Created(ref=ctx.physical_name(spec, max_length=128))


def managed_policy(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("ManagedPolicyName") or ctx.physical_name(spec, max_length=128)
    iam = ctx.client("iam")
    request: dict[str, Any] = {
        "PolicyName": name,
        "PolicyDocument": json.dumps(p["PolicyDocument"]),
        "Path": p.get("Path", "/"),
    }
    request.update(present(p, {"Description": "Description"}))
    arn = iam.create_policy(**request)["Policy"]["Arn"]
    for role_name in p.get("Roles") or []:
        iam.attach_role_policy(RoleName=role_name, PolicyArn=arn)
    for user in p.get("Users") or []:
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    for group in p.get("Groups") or []:
        iam.attach_group_policy(GroupName=group, PolicyArn=arn)
    log.debug("%s: managed policy %s", spec.logical_id, arn)
    return Created(ref=arn, attributes={"PolicyArn": arn})
