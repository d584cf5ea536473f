"""EventBridge deliveries to Lambda, Step Functions and SNS targets, which moto cannot make.

Wraps `moto.events.models.Rule.send_to_targets`. moto calls it synchronously inside PutObject
(S3 events) and PutEvents, and swallows S3-path errors; here those targets are queued to a
worker pool and delivered asynchronously, failures are logged (rule, target, event) and sent
to the target's dead-letter queue if it has one: the event as the body, and the message
attributes EventBridge documents (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE` such as
`NO_PERMISSIONS`, `NO_RESOURCE`, `THROTTLING` or `SDK_CLIENT_ERROR`, `ERROR_MESSAGE`,
`EXHAUSTED_RETRY_CONDITION`, `RETRY_ATTEMPTS`). EventBridge's calls to its targets pass the
injected faults (`infra.local.faults`: `sfn.StartExecution`, `lambda.Invoke`) as any call
does, so a test can make a delivery fail. A function target is invoked as Lambda's
asynchronous invocation: its errors are retried and end in its on-failure destination
(`invoke_asynchronously`), never in the rule's dead-letter queue. Other targets (SQS,
CloudWatch Logs, event buses) keep moto's behaviour. Schedule rules never fire on their own:
`fire_schedule` delivers one scheduled event.

moto's S3 events carry a constant `id`, `request-id` and `sequencer`: Step Functions executions
started by an S3 event are named after bucket + key + version id (or ETag), so a repeated
delivery of one object version finds the existing execution instead of starting another.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from infra.local.event_input import target_input
from infra.local.lambda_async import invoke_asynchronously

log = logging.getLogger("infra.local.eventbridge")

SCHEDULED_EVENT = "Scheduled Event"
_LOCAL_TARGET_SERVICES = ("lambda", "states", "sns")


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery to one target (kept for tests and the CLI)."""

    rule: str
    target_id: str
    target_arn: str
    outcome: str
    """started | duplicate | invoked | published | failed"""
    detail: str = ""
    """Why it failed; for an invoked function that failed every attempt, what became of it."""
    execution_arn: str | None = None
    at: float = field(default_factory=time.time)


class Dispatcher:
    """Worker pool for deliveries, with a count of the ones not finished yet."""

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._idle = threading.Condition()
        self._pending = 0
        self.deliveries: list[Delivery] = []

    def submit(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        self._run(self._deliver, _RuleView.of(rule), dict(target), event)

    def invoke_later(self, function: Any, payload: Any) -> None:
        """Lambda's asynchronous invocation (`Invoke` with `InvocationType` `Event`): accepted
        now, run by the pool as `invoke_asynchronously` (retries, on-failure destination)."""
        self._run(self._invoke, function, payload)

    def _run(self, job: Any, *args: Any) -> None:
        with self._idle:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="eventbridge")
            self._pending += 1
            pool = self._pool
        pool.submit(job, *args)

    def _done(self, delivery: Delivery | None) -> None:
        with self._idle:
            if delivery is not None:
                self.deliveries.append(delivery)
            self._pending -= 1
            self._idle.notify_all()

    def _invoke(self, function: Any, payload: Any) -> None:
        try:
            invoke_asynchronously(function, payload)
        except Exception:
            log.exception("asynchronous invocation of %s failed", function.function_name)
        finally:
            self._done(None)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued delivery is done; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def reset(self) -> None:
        with self._idle:
            self.deliveries = []

    def _deliver(self, rule: _RuleView, target: dict[str, Any], event: dict[str, Any]) -> None:
        try:
            delivery = _deliver(rule, target, event)
        except Exception as exc:
            delivery = Delivery(rule.name, target["Id"], target["Arn"], "failed", repr(exc))
            log.error(
                "EventBridge rule %s could not deliver to target %s (%s): %r; event: %s",
                rule.name,
                target["Id"],
                target["Arn"],
                exc,
                json.dumps(event, default=str),
            )
            _dead_letter(rule, target, event, exc)
        self._done(delivery)


@dataclass(frozen=True)
class _RuleView:
    """What a delivery needs from a moto Rule, copied so the worker never reads a live rule."""

    name: str
    arn: str
    account_id: str
    region_name: str

    @classmethod
    def of(cls, rule: Any) -> _RuleView:
        return cls(rule.name, rule.arn, rule.account_id, rule.region_name)


DISPATCHER = Dispatcher()


def _deliver(rule: _RuleView, target: dict[str, Any], event: dict[str, Any]) -> Delivery:
    arn = target["Arn"]
    payload = target_input(target, event, rule.arn)
    service, region, account = arn.split(":")[2], arn.split(":")[3], arn.split(":")[4]
    if service == "states":
        _authorize_with_role(rule, target, "states:StartExecution")
        name = execution_name(rule.name, event)
        _target_call(
            "sfn.StartExecution",
            json.dumps({"stateMachineArn": arn, "name": name, "input": json.dumps(payload)}),
        )
        return _start_execution(rule, target, name, payload, account, region)
    if service == "sns":
        from moto.sns.models import sns_backends

        _authorize_as_service(rule, "sns:Publish", arn, "sns.Publish")
        message = payload if isinstance(payload, str) else json.dumps(payload)
        sns_backends[account][region].publish(message, arn=arn)
        return Delivery(rule.name, target["Id"], arn, "published")
    from moto.awslambda.models import lambda_backends

    _authorize_as_service(rule, "lambda:InvokeFunction", arn, "lambda.Invoke")
    _target_call("lambda.Invoke", f"POST /2015-03-31/functions/{arn}/invocations\n{payload}")
    function = lambda_backends[account][region].get_function(arn)
    failure = invoke_asynchronously(function, payload)
    return Delivery(rule.name, target["Id"], arn, "invoked", failure or "")


class TargetCallError(Exception):
    """A call EventBridge made to a target failed with an AWS error (an injected fault)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _target_call(operation: str, description: str) -> None:
    """EventBridge's call to a target passes the AWS call boundary's faults as any other call
    does (`infra.local.faults`, operations named as botocore names them): a matching fault
    fails it. Raises TargetCallError."""
    from infra.local import faults

    fault = faults.FAULTS.claim(operation, description)
    if fault is not None and fault.take():
        raise TargetCallError(str(fault.code), fault.message)


EVENTS_SERVICE = "events.amazonaws.com"


def _authorize_with_role(rule: _RuleView, target: dict[str, Any], action: str) -> None:
    """A target EventBridge reaches with the target's role (a state machine): the role's
    session, which EventBridge assumed, must be allowed `action` on the target. Raises
    AccessDenied."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER, AccessDenied, Denial
    from infra.local.authz.needs import Needed

    if not ENFORCER.enabled:
        return
    role = target.get("RoleArn")
    caller = principals.service(EVENTS_SERVICE, rule.account_id)
    if not role:
        raise AccessDenied(
            Denial(caller, action, target["Arn"], "the target has no RoleArn", action)
        )
    try:
        session = principals.session_credentials(
            str(role), rule.name, EVENTS_SERVICE, source_arn=rule.arn
        )
    except principals.AssumeRoleDenied as exc:
        raise AccessDenied(Denial(caller, "sts:AssumeRole", str(role), str(exc), action)) from None
    found = principals.from_access_key(session.access_key_id, rule.account_id)
    if found is not None:
        ENFORCER.check(found, [Needed(action, target["Arn"])], action)


def _authorize_as_service(rule: _RuleView, action: str, resource: str, operation: str) -> None:
    """A target EventBridge reaches as itself (a function, a topic, a dead-letter queue): the
    resource's policy must allow `events.amazonaws.com` from this rule. Raises AccessDenied."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed

    if not ENFORCER.enabled:
        return
    caller = principals.service(EVENTS_SERVICE, rule.account_id)
    ENFORCER.check(caller, [Needed(action, resource)], operation, source_arn=rule.arn)


def _start_execution(
    rule: _RuleView,
    target: dict[str, Any],
    name: str,
    payload: Any,
    account: str,
    region: str,
) -> Delivery:
    from moto.stepfunctions.responses import get_backend

    arn = target["Arn"]
    backend = get_backend(account, region)
    try:
        execution = backend.start_execution(arn, name=name, execution_input=json.dumps(payload))
    except Exception as exc:
        if type(exc).__name__ != "ExecutionAlreadyExists":
            raise
        log.info("rule %s: execution %s exists already, duplicate event ignored", rule.name, name)
        return Delivery(rule.name, target["Id"], arn, "duplicate", str(exc))
    log.info("rule %s started execution %s", rule.name, execution.execution_arn)
    return Delivery(rule.name, target["Id"], arn, "started", execution_arn=execution.execution_arn)


def execution_name(rule_name: str, event: dict[str, Any], *, stable: bool = False) -> str:
    """Stable for an S3 object version (bucket + key + version id or ETag), unique otherwise;
    with `stable`, one name for an event with an `id` (EventBridge's, one per event), so a
    redrive repeated finds the execution it started (`mlops dlq redrive`)."""
    identity = s3_object_identity(event)
    if identity is None:
        if stable and event.get("id"):
            digest = hashlib.sha256(str(event["id"]).encode()).hexdigest()[:24]
            return f"{_slug(rule_name)[:40]}-{digest}"
        return f"{_slug(rule_name)[:40]}-{uuid.uuid4().hex[:24]}"
    key = event["detail"]["object"]["key"]
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return f"s3-{_slug(key)[-40:].lstrip('-_')}-{digest}"


def s3_object_identity(event: dict[str, Any]) -> str | None:
    detail = event.get("detail")
    if event.get("source") != "aws.s3" or not isinstance(detail, dict):
        return None
    bucket = (detail.get("bucket") or {}).get("name")
    obj = detail.get("object") or {}
    if not bucket or "key" not in obj:
        return None
    version = obj.get("version-id") or obj.get("eTag") or ""
    return f"s3://{bucket}/{obj['key']}#{version}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "event"


def _dead_letter(
    rule: _RuleView, target: dict[str, Any], event: dict[str, Any], exc: Exception
) -> None:
    queue_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not queue_arn:
        return
    from moto.sqs.models import sqs_backends

    from infra.local.authz.enforcer import AccessDenied

    _, _, _, region, account, queue_name = queue_arn.split(":", 5)
    attributes = {
        "RULE_ARN": rule.arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": dead_letter_code(exc),
        "ERROR_MESSAGE": str(exc)[:256],
        # Deliveries are not retried here (see docs/local-cloud.md): one attempt, no retry.
        "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
        "RETRY_ATTEMPTS": "0",
    }
    try:
        _authorize_as_service(rule, "sqs:SendMessage", queue_arn, "sqs.SendMessage")
    except AccessDenied as denied:
        log.error("the failed event is lost: its dead-letter queue refused it: %s", denied)
        return
    try:
        sqs_backends[account][region].send_message(
            queue_name,
            json.dumps(event),
            message_attributes={
                key: {"DataType": "String", "StringValue": value}
                for key, value in attributes.items()
            },
        )
    except Exception:
        log.exception("could not send the failed event to dead-letter queue %s", queue_arn)


_NO_RESOURCE = ("DoesNotExist", "NotFound", "UnknownResource")
_THROTTLING = ("Throttl", "TooManyRequests", "SlowDown", "RequestLimitExceeded")


def dead_letter_code(exc: Exception) -> str:
    """The `ERROR_CODE` EventBridge gives a failed delivery: `NO_PERMISSIONS` (denied),
    `NO_RESOURCE` (the target is gone), `THROTTLING`, else `SDK_CLIENT_ERROR` (the target's
    service refused the call)."""
    from infra.local.authz.enforcer import AccessDenied

    if isinstance(exc, AccessDenied):
        return "NO_PERMISSIONS"
    name = exc.code if isinstance(exc, TargetCallError) else type(exc).__name__
    text = f"{name} {exc}"
    if any(word in name for word in _NO_RESOURCE) or "not found" in text.lower():
        return "NO_RESOURCE"
    if any(word in name for word in _THROTTLING):
        return "THROTTLING"
    return "SDK_CLIENT_ERROR"


def normalize_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it: ISO `time` (moto keeps a float) and, for moto's
    S3 events, an `id` derived from the object version instead of moto's constant one."""
    event = copy.deepcopy(event)
    if isinstance(event.get("time"), int | float):
        moment = datetime.datetime.fromtimestamp(float(event["time"]), tz=datetime.UTC)
        event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    identity = s3_object_identity(event)
    if identity is not None:
        event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, identity))
    return event


def scheduled_event(rule: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": SCHEDULED_EVENT,
        "source": "aws.events",
        "account": rule.account_id,
        "time": datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


def _is_schedule_for(rule: Any, event: dict[str, Any]) -> bool:
    return (
        event.get("source") == "aws.events"
        and event.get("detail-type") == SCHEDULED_EVENT
        and rule.arn in (event.get("resources") or [])
    )


def _route(original: Any, rule: Any, event: Any, transform_input: bool) -> None:
    if rule.state != "ENABLED":
        return
    if rule.scheduled_expression:
        # A schedule rule has no pattern, so moto would match it to every event.
        if not _is_schedule_for(rule, event):
            return
    elif not rule.event_pattern.matches_event(event):
        return
    local = [t for t in rule.targets if t["Arn"].split(":")[2] in _LOCAL_TARGET_SERVICES]
    others = [t for t in rule.targets if t not in local]
    if others:
        view = copy.copy(rule)
        view.targets = others
        try:
            original(view, event, transform_input)
        except NotImplementedError:
            log.error(
                "EventBridge rule %s has targets moto cannot deliver to: %s",
                rule.name,
                ", ".join(t["Arn"] for t in others),
            )
    if local:
        normalized = normalize_event(dict(event))
        for target in local:
            DISPATCHER.submit(rule, target, normalized)


def find_rule(name: str) -> Any:
    """The moto Rule named `name` (or with that ARN), on any event bus, account or region."""
    from moto.events.models import events_backends

    for account_backends in events_backends.values():
        for backend in account_backends.values():
            for bus in backend.event_buses.values():
                for rule in bus.rules.values():
                    if name in (rule.name, rule.arn):
                        return rule
    raise KeyError(f"no EventBridge rule named {name!r}")


def fire_schedule(rule_name: str) -> dict[str, Any]:
    """Deliver one scheduled event for the schedule rule `rule_name` now; returns the event."""
    rule = find_rule(rule_name)
    if not rule.scheduled_expression:
        raise ValueError(f"rule {rule_name!r} has no schedule expression")
    event = scheduled_event(rule)
    rule.send_to_targets(event)
    return event


def install() -> None:
    """Wrap moto's Rule.send_to_targets (idempotent)."""
    from moto.events.models import Rule

    if getattr(Rule.send_to_targets, "_mlops_local", False):
        return
    original = Rule.send_to_targets

    def send_to_targets(self: Any, event: Any, transform_input: bool = True) -> None:
        _route(original, self, event, transform_input)

    send_to_targets._mlops_local = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
