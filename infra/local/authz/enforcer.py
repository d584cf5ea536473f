"""IAM enforced at run time: every AWS call a function, a state machine or a rule target makes
is authorized, before it reaches moto, against the caller's policies as deployed.

`ENFORCER.authorize_call(call)` decides one signed call (`infra.local.aws_calls.AwsCall`): the
caller from its access key (`principals`), the actions it needs, each on its resource
(`actions.needed`), the identity policies and the resource's policies (`stack`), evaluated as
AWS documents (`policy.evaluate`). The operator's calls (the CLI, the tests, the deployer)
are not evaluated. `authorize` decides what a service does on its own behalf (EventBridge
invoking a function, API Gateway invoking its integration): a service principal with the
request's `aws:SourceArn` and `aws:SourceAccount`, allowed by resource policies only.

A denied call gets the service's own error (`Denial.response`): its AccessDenied code and
status, and AWS's message naming the caller, the action and the resource. Every decision is
recorded: `used` (what was allowed, with the statements that allowed it; the least-privilege
report in `infra.local.authz.usage` reads it) and `denials`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.local.authz import actions, principals, stack
from infra.local.authz.needs import Needed, UnmappedOperation
from infra.local.authz.policy import Decision, Request, evaluate
from infra.local.authz.principals import Principal
from infra.local.authz.reference import context_keys
from infra.local.aws_calls import AwsCall, error_response

log = logging.getLogger("infra.local.iam")

_ACCESS_DENIED: dict[str, tuple[str, int]] = {
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "sqs": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "cloudwatch": ("AccessDenied", 403),
    "lambda": ("AccessDeniedException", 403),
    "api-gateway": ("AccessDeniedException", 403),
}
"""Each service's AccessDenied error code and HTTP status; the others send
`AccessDeniedException` with 400 (DynamoDB, Step Functions, EventBridge, Firehose, KMS,
CloudWatch Logs, SageMaker)."""
UNSIGNED_SFN_KEY = "ak"
"""The key moto's Step Functions interpreter signs with when its client was not given the
state machine's role: a call signed with it is a local cloud bug, denied."""


@dataclass(frozen=True)
class Denial:
    principal: Principal
    action: str
    resource: str
    reason: str
    """Why: `no identity-based policy allows ...`, the denying policy, or what the evaluator
    could not decide."""
    operation: str
    """The API call denied (`s3.GetObject`), or what a service was doing."""
    explicit_in: str = ""
    """`identity-based` or `resource-based` when an explicit Deny decided it."""
    resource_only: bool = False
    """The request was allowed or denied by a resource-based policy alone (a service
    principal; a KMS key's policy)."""

    @property
    def message(self) -> str:
        """AWS's message: who, what, on what, and why."""
        head = (
            f"User: {self.principal.arn} is not authorized to perform: {self.action} "
            f"on resource: {self.resource}"
        )
        if self.explicit_in:
            return f"{head} with an explicit deny in a {self.explicit_in} policy"
        if self.reason.startswith("the local evaluator"):
            return f"{head} because {self.reason}"
        kind = "resource-based" if self.resource_only else "identity-based"
        return f"{head} because no {kind} policy allows the {self.action} action"

    def response(self, service: str) -> tuple[int, dict[str, str], bytes]:
        """The error the service sends for this denial (status, headers, body)."""
        code, status = _ACCESS_DENIED.get(service, ("AccessDeniedException", 400))
        message = self.message
        if service == "sns" and self.action.startswith("kms:"):
            # SNS reports the key's refusal as KMSAccessDenied, quoting KMS's error.
            code, status = "KMSAccessDenied", 400
            from infra.local.sfn_engine import sdk_cause

            message = sdk_cause(message, "AWSKMS", 400, "AccessDeniedException", "local")
        return error_response(service, code, message, status)


class AccessDenied(Exception):
    """A service's own action was denied (`Enforcer.check`)."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.message)
        self.denial = denial


@dataclass(frozen=True)
class Use:
    """One allowed request: who, what, on what, and the statements that allowed it."""

    principal: str
    """The role's or user's ARN, or the service."""
    action: str
    resource: str
    statements: tuple[tuple[str, int], ...]
    operation: str


@dataclass
class Enforcer:
    enabled: bool = False
    account: str = "123456789012"
    region: str = "us-east-1"
    used: set[Use] = field(default_factory=set)
    denials: list[Denial] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def authorize_call(self, call: AwsCall) -> Denial | None:
        """None if the call may go on (or is the operator's); the denial otherwise."""
        if not self.enabled:
            return None
        if call.access_key == UNSIGNED_SFN_KEY:
            caller = principals.service("states.amazonaws.com", self.account)
            return self._denied(
                Denial(
                    caller,
                    call.name,
                    "*",
                    "the local evaluator cannot decide it: the call was not signed with its "
                    "state machine's role",
                    call.name,
                )
            )
        principal = principals.from_access_key(call.access_key, self.account)
        if principal is None:
            return None
        resources = stack.MotoResources(self.account, call.region or self.region)
        try:
            needs = actions.needed(call, resources)
        except UnmappedOperation as exc:
            return self._denied(
                Denial(
                    principal,
                    call.name,
                    "*",
                    f"the local evaluator cannot decide it: {exc}",
                    call.name,
                )
            )
        return self.authorize(principal, needs, call.name)

    def authorize(
        self,
        principal: Principal,
        needs: Iterable[Needed],
        operation: str,
        source_arn: str | None = None,
    ) -> Denial | None:
        """Decide each needed action in turn; the first denial, or None. `source_arn` is the
        resource on whose behalf a service principal acts (`aws:SourceArn`)."""
        if not self.enabled:
            return None
        identity = principals.identity_policies(principal)
        identity_names = {policy.name for policy in identity}
        for need in needs:
            resource_policies, is_key = stack.resource_policies(need.resource, self.account)
            request = Request(
                principal=principal.arn,
                action=need.action,
                resource=need.resource,
                context=self._context(principal, need, source_arn),
                known_keys=context_keys(need.action),
            )
            decision = evaluate(
                request, identity, resource_policies, account=self.account, kms_key=is_key
            )
            if not decision.allowed:
                return self._denied(
                    _denial(principal, need, decision, operation, identity_names, is_key)
                )
            with self._lock:
                self.used.add(
                    Use(principal.identity, need.action, need.resource, decision.matched, operation)
                )
        return None

    def check(
        self,
        principal: Principal,
        needs: Iterable[Needed],
        operation: str,
        source_arn: str | None = None,
    ) -> None:
        """`authorize`, raising AccessDenied on a denial."""
        denial = self.authorize(principal, needs, operation, source_arn)
        if denial is not None:
            raise AccessDenied(denial)

    def reset(self, enabled: bool, account: str, region: str) -> None:
        """A new cloud: enforcement on or off; the record of decisions is kept."""
        self.enabled = enabled
        self.account = account
        self.region = region
        principals.reset()
        stack.reset()

    def take_used(self) -> list[Use]:
        """What was allowed since the last call, forgotten here."""
        with self._lock:
            taken = list(self.used)
            self.used.clear()
        return taken

    def clear_record(self) -> None:
        with self._lock:
            self.used.clear()
            self.denials.clear()

    def _context(
        self, principal: Principal, need: Needed, source_arn: str | None
    ) -> dict[str, Any]:
        now = time.time()
        context: dict[str, Any] = {
            "aws:SecureTransport": True,
            "aws:RequestedRegion": self.region,
            "aws:CurrentTime": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now)),
            "aws:PrincipalIsAWSService": principal.kind == "service",
        }
        if principal.kind == "service":
            context["aws:PrincipalServiceName"] = principal.identity
            if source_arn is not None:
                context["aws:SourceArn"] = source_arn
                context["aws:SourceAccount"] = self.account
        else:
            context["aws:PrincipalArn"] = principal.identity
            context["aws:PrincipalAccount"] = principal.account
            context["aws:PrincipalType"] = "AssumedRole" if principal.kind == "role" else "User"
            if principal.kind == "user":
                context["aws:username"] = principal.label
        context.update(need.context)
        return context

    def _denied(self, denial: Denial) -> Denial:
        log.warning("AccessDenied (%s): %s", denial.operation, denial.message)
        with self._lock:
            self.denials.append(denial)
        return denial


def _denial(
    principal: Principal,
    need: Needed,
    decision: Decision,
    operation: str,
    identity_names: set[str],
    is_key: bool,
) -> Denial:
    explicit = ""
    if decision.reason.startswith("explicitly denied by "):
        policy = decision.reason.removeprefix("explicitly denied by ").rsplit(" (#", 1)[0]
        explicit = "identity-based" if policy in identity_names else "resource-based"
    return Denial(
        principal,
        need.action,
        need.resource,
        decision.reason,
        operation,
        explicit_in=explicit,
        resource_only=principal.kind == "service" or (is_key and not _delegates(need.resource)),
    )


def _delegates(key_arn: str) -> bool:
    """Does the key's policy delegate to the account's IAM policies (a statement allowing
    the account root)? Then a refusal is the identity policies'."""
    policies, _ = stack.resource_policies(key_arn, key_arn.split(":")[4])
    for policy in policies:
        for statement in policy.statements:
            named = statement.get("Principal") or {}
            values = named.get("AWS", []) if isinstance(named, dict) else []
            values = values if isinstance(values, list) else [values]
            if statement.get("Effect") == "Allow" and any(
                str(value).endswith(":root") for value in values
            ):
                return True
    return False


ENFORCER = Enforcer()
