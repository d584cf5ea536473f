"""Patches that make moto behave like the AWS services the bundle uses, installed once per
process: in-process Lambda, EventBridge deliveries to Lambda and Step Functions, the Step
Functions interpreter's JSONata evaluator and logs, and S3 bucket policies not enforced."""

from __future__ import annotations

import threading

from infra.local import eventbridge, lambda_runtime, sfn_engine

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
        _bucket_policies_not_enforced()
        _installed = True


def _bucket_policies_not_enforced() -> None:
    """moto checks bucket policies on object reads and writes, and its condition check denies
    whenever a statement's condition does not match, even for a Deny statement: CDK's
    `enforce_ssl` policy (Deny if aws:SecureTransport is false) then blocks every object
    request. Policies stay readable; like IAM, they are recorded and not enforced."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: object, action: str, resource: str) -> PermissionResult:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign,assignment]
