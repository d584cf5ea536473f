"""What authorization reads from the deployed resources, in moto's backends at each call: the
resource-based policies (bucket, key, queue, topic, function) and the facts that decide which
actions a call needs (a table's partition key, the customer managed key of a bucket, table or
topic). Lambda function policies are kept here, as the deployer adds them (moto stores
function policies but cannot tell a qualified statement from its function's)."""

from __future__ import annotations

import threading
from typing import Any

from infra.local.authz.needs import Resources
from infra.local.authz.policy import Policy
from infra.local.authz.principals import document_of

_PARTITION = "aws"
_FUNCTION_POLICIES: dict[str, list[dict[str, Any]]] = {}
_LOCK = threading.Lock()


def add_function_permission(function_arn: str, statement: dict[str, Any]) -> None:
    """A statement of a function's resource-based policy (`AWS::Lambda::Permission`, or
    AddPermission): `function_arn` unqualified, the statement's Resource as granted."""
    base = _unqualified(function_arn)
    with _LOCK:
        _FUNCTION_POLICIES.setdefault(base, []).append(statement)


def remove_function_permission(function_arn: str, sid: str) -> None:
    """Remove the statement `sid` of a function's resource-based policy (RemovePermission)."""
    base = _unqualified(function_arn)
    with _LOCK:
        statements = _FUNCTION_POLICIES.get(base, [])
        statements[:] = [statement for statement in statements if statement.get("Sid") != sid]


def function_policy(function_arn: str) -> list[dict[str, Any]]:
    with _LOCK:
        return list(_FUNCTION_POLICIES.get(_unqualified(function_arn), []))


def reset() -> None:
    with _LOCK:
        _FUNCTION_POLICIES.clear()


def _unqualified(arn: str) -> str:
    return ":".join(arn.split(":")[:7])


class MotoResources(Resources):
    """`Resources` read from moto's backends."""

    def __init__(self, account: str, region: str) -> None:
        super().__init__(account=account, region=region)

    def table_key(self, table: str) -> str | None:
        found = _table(self.account, self.region, table)
        return found.hash_key_attr if found is not None else None

    def table_key_arn(self, table: str) -> str | None:
        found = _table(self.account, self.region, table)
        spec = getattr(found, "sse_specification", None) or {}
        key = spec.get("KMSMasterKeyId")
        return key if key and not self._aws_managed(str(key)) else None

    def bucket_key_arn(self, bucket: str) -> str | None:
        found = _bucket(self.account, bucket)
        rule = ((getattr(found, "encryption", None) or {}).get("Rule") or {}).get(
            "ApplyServerSideEncryptionByDefault"
        ) or {}
        if rule.get("SSEAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
            return None
        key = rule.get("KMSMasterKeyID")
        return self.key_arn(str(key)) if key else None

    def topic_key_arn(self, topic: str) -> str | None:
        found = _topic(self.account, self.region, topic)
        key = getattr(found, "kms_master_key_id", "") if found is not None else ""
        if not key or str(key).startswith("alias/aws/"):
            return None
        return self.key_arn(str(key))

    def key_arn(self, key: str) -> str:
        if key.startswith("arn:") and ":alias/" not in key:
            return key
        backend = _kms(self.account, self.region)
        name = key.rsplit(":", 1)[-1] if ":alias/" in key else key
        # moto's lookups: an alias it does not know gives no key id (None), a key id it does
        # not know is missing from `keys`; either is a key this account does not have here.
        key_id = backend.get_key_id_from_alias(name) if name.startswith("alias/") else name
        found = backend.keys.get(key_id) if key_id is not None else None
        return str(found.arn) if found is not None else super().key_arn(key)

    def _aws_managed(self, key: str) -> bool:
        backend = _kms(self.account, self.region)
        for alias in ("alias/aws/dynamodb", "alias/aws/s3", "alias/aws/sns"):
            target = backend.get_key_id_from_alias(alias) if backend.alias_exists(alias) else None
            if target and key.endswith(str(target)):
                return True
        return False


def resource_policies(arn: str, account: str) -> tuple[list[Policy], bool]:
    """The resource-based policies AWS evaluates for a request on `arn`, and whether the
    resource is a KMS key (whose policy must allow, itself or by delegation to IAM)."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return [], False
    service, region = parts[2], parts[3]
    try:
        if service == "s3":
            bucket = parts[5].split("/", 1)[0]
            found = _bucket(account, bucket)
            document = getattr(found, "policy", None)
            return (
                [Policy(f"bucket policy of {bucket}", document_of(document))] if document else []
            ), False
        if service == "kms":
            key_id = parts[5].split("/", 1)[-1]
            key = _kms(account, region).keys.get(key_id)
            if key is None:
                return [], True
            return [Policy(f"key policy of {key_id}", document_of(key.policy))], True
        if service == "lambda":
            statements = function_policy(arn)
            if not statements:
                return [], False
            name = arn.split(":")[6]
            document = {"Version": "2012-10-17", "Statement": statements}
            return [Policy(f"resource-based policy of function {name}", document)], False
        if service == "sqs":
            queue = _sqs(account, region).queues.get(parts[5])
            document = getattr(queue, "policy", None)
            return (
                [Policy(f"queue policy of {parts[5]}", document_of(document))] if document else []
            ), False
        if service == "sns":
            topic = _topic(account, region, arn)
            document = getattr(topic, "_policy_json", None)
            return ([Policy(f"topic policy of {parts[5]}", document)] if document else []), False
    except (KeyError, ValueError):
        # A region moto has no backend for (KeyError); a stored policy that is not JSON
        # (ValueError, from `document_of`).
        return [], service == "kms"
    return [], False


def _table(account: str, region: str, table: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[account][region].tables.get(table)


def _bucket(account: str, bucket: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account][_PARTITION].buckets.get(bucket)


def _topic(account: str, region: str, arn: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account][region].topics.get(arn)


def _kms(account: str, region: str) -> Any:
    from moto.kms.models import kms_backends

    return kms_backends[account][region]


def _sqs(account: str, region: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region]
