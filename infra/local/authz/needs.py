"""The vocabulary of authorization rules: what a call needs (`Needed`: one action on one
resource, with the request's condition keys), what the rules know of the deployed stack
(`Resources`), and the refusal of a call no rule covers (`UnmappedOperation`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra.local.authz.reference import action_exists
from infra.local.aws_calls import AwsCall


class UnmappedOperation(Exception):
    """The call's operation has no authorization rule here: denied, naming it."""


@dataclass(frozen=True)
class Needed:
    """One action on one resource, with the request's condition keys."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resources:
    """What the mapping needs to know of the deployed stack, as plain tables (a test's view;
    the local cloud reads the same from moto's backends: `infra.local.authz.stack`)."""

    account: str
    region: str
    table_keys: dict[str, str] = field(default_factory=dict)
    """Table name -> its partition key attribute."""
    table_kms: dict[str, str] = field(default_factory=dict)
    """Table name -> the ARN of the customer managed key encrypting it."""
    bucket_kms: dict[str, str] = field(default_factory=dict)
    """Bucket name -> the ARN of the customer managed key of its default encryption."""
    topic_kms: dict[str, str] = field(default_factory=dict)
    """Topic ARN -> the ARN of the customer managed key encrypting it."""
    kms_aliases: dict[str, str] = field(default_factory=dict)
    """`alias/name` or key id -> key ARN."""

    def table_key(self, table: str) -> str | None:
        return self.table_keys.get(table)

    def table_key_arn(self, table: str) -> str | None:
        return self.table_kms.get(table)

    def bucket_key_arn(self, bucket: str) -> str | None:
        return self.bucket_kms.get(bucket)

    def topic_key_arn(self, topic: str) -> str | None:
        return self.topic_kms.get(topic)

    def key_arn(self, key: str) -> str:
        """A key id, alias or ARN as the key's ARN."""
        found = self.kms_aliases.get(key, key)
        if found.startswith("arn:"):
            return found
        return f"arn:aws:kms:{self.region}:{self.account}:key/{found}"


def own_action(call: AwsCall, prefix: str) -> str:
    """The action named as the operation (`sqs:SendMessage`); UnmappedOperation if the
    service authorization reference has none."""
    action = f"{prefix}:{call.operation}"
    if not action_exists(action):
        raise UnmappedOperation(f"no authorization rule for {call.name}")
    return action
