"""Patches that make moto behave like the AWS services the bundle uses, installed once per
process: Lambda's runtime, EventBridge deliveries to Lambda and Step Functions, the Step
Functions interpreter's JSONata evaluator, logs and role, Firehose's custom S3 prefixes, role
and record processing, CloudWatch Logs subscription filters (pattern and role), and the AWS
call boundary (IAM authorization, faults). moto's own partial bucket policy check is off: the
local cloud's authorization evaluates bucket policies whole."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from infra.local import (
    boundary,
    eventbridge,
    firehose,
    lambda_runtime,
    log_subscriptions,
    sfn_engine,
)

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Install every hook; calling it again does nothing."""
    global _installed
    with _lock:
        if _installed:
            return
        lambda_runtime.install()
        eventbridge.install()
        sfn_engine.install()
        firehose.install()
        firehose.deliver_with_role()
        log_subscriptions.install()
        boundary.install()
        _bucket_policies_not_enforced()
        _dynamodb_serialized()
        _installed = True


def _bucket_policies_not_enforced() -> None:
    """moto checks bucket policies on object reads and writes, and its condition check denies
    whenever a statement's condition does not match, even for a Deny statement: CDK's
    `enforce_ssl` policy (Deny if aws:SecureTransport is false) then blocks every object
    request. The local cloud's authorization (`infra.local.authz`) evaluates them instead."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: object, action: str, resource: str) -> PermissionResult:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign,assignment]


def _dynamodb_serialized() -> None:
    """DynamoDB applies each write and each transaction atomically; moto's backend does not
    under threads (a transaction snapshots and restores whole tables, so a concurrent request
    can lose writes or fail with "dictionary changed size during iteration"). The local cloud
    serves requests and runs executions on several threads: one lock around the backend's
    item operations gives DynamoDB's guarantees."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in (
        "get_item",
        "put_item",
        "update_item",
        "delete_item",
        "query",
        "scan",
        "transact_write_items",
        "transact_get_items",
        "batch_write_item",
    ):
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, _call: Callable[..., Any] = original, **kw: Any) -> Any:
            with lock:
                return _call(self, *args, **kw)

        setattr(DynamoDBBackend, name, locked)
