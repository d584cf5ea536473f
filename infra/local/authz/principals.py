"""Who made a call, and the policies that speak for them, read from moto's IAM and STS.

A call is signed with an access key. The key tells the caller:

- a temporary key STS issued for a role session (a function's execution role, the state
  machine's role, a role the CLI assumed): the session `arn:aws:sts::<account>:assumed-role/
  <role>/<session>`, evaluated with the role's policies;
- a user's key: the user, with its own and its groups' policies;
- any other key (`testing`, what the CLI, the tests and the deployer sign with): the operator,
  an administrator whose calls are not evaluated.

The local cloud gives each function, state machine and rule target its role's credentials the
way AWS does, by assuming the role as the service (`session_credentials`): the role's trust
policy must let that service assume it, or the call fails as on AWS. Policies are read from
moto at each call, so a policy changed at run time applies to the next call.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

from moto.iam.exceptions import NoSuchEntity, NotFoundException

from infra.local.authz.policy import Policy, Request, evaluate

OPERATOR_KEY = "testing"
"""The access key (and secret) of the operator: the CLI, the tests, the deployer."""
_PARTITION = "aws"


@dataclass(frozen=True)
class Principal:
    arn: str
    """The caller as AWS names it in an error message: an assumed-role session, a user, or a
    service (`events.amazonaws.com`)."""
    identity: str
    """What `aws:PrincipalArn` holds: the role's or user's ARN; a service's name."""
    kind: Literal["role", "user", "service"]
    account: str

    @property
    def label(self) -> str:
        """A short name for reports: the role or user name, or the service."""
        return self.identity.rsplit("/", 1)[-1] if self.kind != "service" else self.identity


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


class AssumeRoleDenied(Exception):
    """A service may not assume a role: its trust policy does not name the service."""


def _iam(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account][_PARTITION]


def _sts(account: str) -> Any:
    from moto.sts.models import sts_backends

    return sts_backends[account][_PARTITION]


def from_access_key(access_key: str, account: str) -> Principal | None:
    """The principal whose key this is; None for the operator (an unknown key)."""
    if not access_key or access_key == OPERATOR_KEY:
        return None
    key = _iam(account).access_keys.get(access_key)
    if key is None:
        return None
    if key.role_arn:
        session = _sts(account).get_assumed_role_from_access_key(access_key)
        name = session.session_name if session is not None else "session"
        role_name = key.role_arn.rsplit("/", 1)[-1]
        return Principal(
            f"arn:aws:sts::{account}:assumed-role/{role_name}/{name}",
            key.role_arn,
            "role",
            account,
        )
    if key.user_name:
        user = _iam(account).get_user(key.user_name)
        return Principal(user.arn, user.arn, "user", account)
    return None


def secret_for(access_key: str, account: str) -> str | None:
    """The secret of an access key, for checking a signature; None if the key is unknown."""
    if access_key == OPERATOR_KEY:
        return OPERATOR_KEY
    key = _iam(account).access_keys.get(access_key)
    if key is None or getattr(key, "status", "Active") != "Active":
        return None
    return str(key.secret_access_key)


def service(name: str, account: str) -> Principal:
    """A service principal (`events.amazonaws.com`), for calls a service makes on its own
    behalf, authorized by resource policies only."""
    return Principal(name, name, "service", account)


def identity_policies(principal: Principal) -> list[Policy]:
    """The principal's identity-based policies: inline and attached, and for a user also its
    groups'. A service has none."""
    iam = _iam(principal.account)
    if principal.kind == "role":
        try:
            role = iam.get_role_by_arn(principal.identity)
        except NotFoundException:
            return []
        return _holder_policies(role, f"role {role.name}")
    if principal.kind == "user":
        user_name = principal.identity.rsplit("/", 1)[-1]
        try:
            user = iam.get_user(user_name)
        except NoSuchEntity:
            return []
        found = _holder_policies(user, f"user {user.name}")
        for group in iam.get_groups_for_user(user_name):
            found += _holder_policies(group, f"group {group.name}")
        return found
    return []


def _holder_policies(holder: Any, owner: str) -> list[Policy]:
    found = [
        Policy(f"{owner} policy {name}", document_of(document))
        for name, document in holder.policies.items()
    ]
    for arn, managed in holder.managed_policies.items():
        version = next(
            (v for v in managed.versions if v.version_id == managed.default_version_id), None
        )
        if version is not None:
            found.append(Policy(f"{owner} managed policy {arn}", document_of(version.document)))
    return found


_PARSED: dict[str, dict[str, Any]] = {}
_PARSED_LOCK = threading.Lock()


def document_of(document: Any) -> dict[str, Any]:
    """A policy document as a dict (moto keeps them as text; parsing is cached)."""
    if isinstance(document, dict):
        return document
    text = document.decode() if isinstance(document, bytes) else str(document)
    with _PARSED_LOCK:
        found = _PARSED.get(text)
    if found is None:
        from urllib.parse import unquote

        try:
            found = json.loads(text)
        except ValueError:
            found = json.loads(unquote(text))
        with _PARSED_LOCK:
            if len(_PARSED) > 4096:
                _PARSED.clear()
            _PARSED[text] = found
    return found


_SESSIONS: dict[tuple[str, str], Credentials] = {}
_SESSIONS_LOCK = threading.Lock()


def session_credentials(
    role_arn: str, session_name: str, service_name: str, source_arn: str | None = None
) -> Credentials:
    """Credentials of a session of `role_arn` that `service_name` (`lambda.amazonaws.com`)
    assumed on behalf of `source_arn` (the function, state machine, rule or stream: the
    request's `aws:SourceArn`, with `aws:SourceAccount`), as the service gets them on AWS.
    Raises AssumeRoleDenied when the role's trust policy does not let the service assume it.
    One session per (role, session name), kept until `reset`."""
    account = _account_of(role_arn)
    with _SESSIONS_LOCK:
        found = _SESSIONS.get((role_arn, session_name))
        if found is not None:
            return found
        _check_trust(role_arn, service_name, account, source_arn)
        session = _sts(account).assume_role(
            region_name="us-east-1",
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy="",
            duration=43200,
            external_id="",
        )
        credentials = Credentials(
            session.access_key_id, session.secret_access_key, session.session_token
        )
        _SESSIONS[(role_arn, session_name)] = credentials
        return credentials


def _check_trust(role_arn: str, service_name: str, account: str, source_arn: str | None) -> None:
    from infra.local.authz.reference import context_keys

    try:
        role = _iam(account).get_role_by_arn(role_arn)
    except NotFoundException:
        raise AssumeRoleDenied(
            f"{service_name} cannot assume role {role_arn}: the role does not exist"
        ) from None
    trust = Policy(
        f"trust policy of role {role.name}", document_of(role.assume_role_policy_document)
    )
    context: dict[str, Any] = {
        "aws:SecureTransport": True,
        "aws:PrincipalIsAWSService": True,
        "aws:PrincipalServiceName": service_name,
        "aws:SourceAccount": account,
    }
    if source_arn is not None:
        context["aws:SourceArn"] = source_arn
    decision = evaluate(
        Request(
            service_name,
            "sts:AssumeRole",
            role_arn,
            context,
            known_keys=context_keys("sts:AssumeRole"),
        ),
        identity=[],
        resource=[trust],
        account=account,
    )
    if not decision.allowed:
        raise AssumeRoleDenied(
            f"{service_name} cannot assume role {role_arn}: its trust policy does not allow "
            f"it ({decision.reason})"
        )


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "123456789012"


def reset() -> None:
    """Forget every session (a new cloud's moto has none of their keys)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()
