"""The stack's dead-letter queues, read and redriven with AWS APIs only (the same on AWS and on
the local cloud); `infra.cli.dlq` is the command.

Two kinds of message:

- an EventBridge rule's dead letter (`drops`, `batch-starts`, `monitoring-events`): the body
  is the event the rule could not deliver, the message attributes say to what and why
  (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`, `EXHAUSTED_RETRY_CONDITION`,
  `RETRY_ATTEMPTS`). It is redriven to that target as the rule would have delivered it: the
  target's `Input`, `InputPath` or `InputTransformer` (read with `ListTargetsByRule`) applied
  to the event; a state machine gets `StartExecution`, named as the local cloud's rule names
  it (after the S3 object version, else after the event id), so a redrive repeated finds the
  execution it started; a function gets an asynchronous `Invoke`.
- Lambda's on-failure record of an asynchronous invocation (`failed-drift-checks`): the
  function (`requestContext.functionArn`), why (`condition`, `approximateInvokeCount`, the
  `responsePayload` error) and the event (`requestPayload`), which is redriven by invoking the
  function asynchronously again.

Putting the event back on the bus would be wrong: every matching rule would fire again, and
`aws.s3` events cannot be put. Reading peeks: a message received is made visible again at
once. A redriven message is deleted only after its re-delivery succeeded.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from infra.cli.target import Target
from infra.local.event_input import target_input
from infra.local.eventbridge import execution_name, s3_object_identity

PEEK_SECONDS = 30
"""How long a peeked message stays hidden if restoring its visibility fails."""
REDRIVE_SECONDS = 300
"""How long messages being redriven stay hidden from another reader."""
_BATCH = 10


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    """The short name the CLI and the runbook use."""
    output: str
    """The stack output holding its URL."""
    kind: Literal["rule", "on-failure"]
    holds: str


QUEUES: tuple[DeadLetterQueue, ...] = (
    DeadLetterQueue(
        "drops",
        "DropsDeadLetterQueueUrl",
        "rule",
        "drops under raw/ the rule could not deliver to the pipeline",
    ),
    DeadLetterQueue(
        "batch-starts",
        "BatchStartsDeadLetterQueueUrl",
        "rule",
        "batch _START markers the rule could not deliver to the batch state machine",
    ),
    DeadLetterQueue(
        "monitoring-events",
        "MonitoringEventsDeadLetterQueueUrl",
        "rule",
        "scheduled drift checks, DriftDetected retrains and scheduled retrains the monitoring "
        "rules could not deliver",
    ),
    DeadLetterQueue(
        "failed-drift-checks",
        "FailedDriftChecksQueueUrl",
        "on-failure",
        "drift check runs that failed every attempt (Lambda's on-failure records)",
    ),
)
QUEUE_NAMES = tuple(queue.name for queue in QUEUES)


class DeadLetterError(Exception):
    """A message cannot be read or redriven; one sentence for the user."""


def queue_named(name: str) -> DeadLetterQueue:
    """The queue of a short name. Raises KeyError naming the valid ones."""
    for queue in QUEUES:
        if queue.name == name:
            return queue
    raise KeyError(f"no dead-letter queue {name!r}: one of {', '.join(QUEUE_NAMES)}")


@dataclass
class DeadLetter:
    """One message of a dead-letter queue, read."""

    queue: str
    message_id: str
    receipt_handle: str = field(repr=False)
    sent_at: str | None
    receive_count: int | None
    what: str
    """The failed event in a few words: the S3 object, the schedule, the event's type."""
    event: Any
    """The event to redeliver: the rule's event, or the on-failure record's request payload."""
    target_arn: str | None
    """What the event failed to reach: the rule's target, or the function."""
    rule_arn: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_attempts: str | None = None
    exhausted_retry_condition: str | None = None
    condition: str | None = None
    """The on-failure record's `requestContext.condition` (`RetriesExhausted`, ...)."""
    invoke_count: int | None = None
    unreadable: str | None = None
    """Why the message could not be read (then it cannot be redriven)."""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "receipt_handle"}


def read_message(queue: DeadLetterQueue, message: Mapping[str, Any]) -> DeadLetter:
    """A received SQS message (attributes and message attributes requested) as a DeadLetter."""
    attributes = message.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    count = attributes.get("ApproximateReceiveCount")
    letter = DeadLetter(
        queue=queue.name,
        message_id=str(message["MessageId"]),
        receipt_handle=str(message["ReceiptHandle"]),
        sent_at=_iso(int(sent)) if sent else None,
        receive_count=int(count) if count else None,
        what="-",
        event=None,
        target_arn=None,
    )
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        letter.unreadable = "the body is not JSON"
        return letter
    if queue.kind == "on-failure":
        _read_on_failure(letter, body)
    else:
        _read_rule_letter(letter, body, message.get("MessageAttributes") or {})
    return letter


def _read_rule_letter(letter: DeadLetter, event: Any, attributes: Mapping[str, Any]) -> None:
    def value(name: str) -> str | None:
        found = attributes.get(name) or {}
        text = found.get("StringValue")
        return None if text is None else str(text)

    letter.event = event
    letter.rule_arn = value("RULE_ARN")
    letter.target_arn = value("TARGET_ARN")
    letter.error_code = value("ERROR_CODE")
    letter.error_message = value("ERROR_MESSAGE")
    letter.retry_attempts = value("RETRY_ATTEMPTS")
    letter.exhausted_retry_condition = value("EXHAUSTED_RETRY_CONDITION")
    letter.what = describe_event(event)
    if not letter.rule_arn or not letter.target_arn:
        letter.unreadable = "no RULE_ARN or TARGET_ARN message attribute"
    elif not isinstance(event, dict):
        letter.unreadable = "the body is not an event"


def _read_on_failure(letter: DeadLetter, record: Any) -> None:
    context = (record.get("requestContext") if isinstance(record, dict) else None) or {}
    if not isinstance(record, dict) or "requestPayload" not in record or not context:
        letter.unreadable = "not a Lambda on-failure record"
        return
    letter.event = record["requestPayload"]
    letter.target_arn = context.get("functionArn")
    letter.condition = context.get("condition")
    count = context.get("approximateInvokeCount")
    letter.invoke_count = int(count) if count is not None else None
    response = record.get("responsePayload")
    if isinstance(response, dict):
        letter.error_code = response.get("errorType")
        letter.error_message = response.get("errorMessage")
    elif response is not None:
        letter.error_message = str(response)[:500]
    letter.error_code = letter.error_code or (record.get("responseContext") or {}).get(
        "functionError"
    )
    letter.what = describe_event(letter.event)
    if not letter.target_arn:
        letter.unreadable = "the record names no function (requestContext.functionArn)"


def describe_event(event: Any) -> str:
    """An event in a few words: the S3 object, the scheduled run, or source and type."""
    if not isinstance(event, dict):
        return "-"
    identity = s3_object_identity(event)
    if identity is not None:
        return identity
    kind = event.get("detail-type")
    if kind:
        when = f" at {event['time']}" if event.get("time") else ""
        return f"{kind} from {event.get('source', '?')}{when}"
    return json.dumps(event, default=str)[:120]


def _iso(milliseconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds")


def age_seconds(sent_at: str | None, now: datetime.datetime | None = None) -> float | None:
    if sent_at is None:
        return None
    now = now or datetime.datetime.now(tz=datetime.UTC)
    return max(0.0, (now - datetime.datetime.fromisoformat(sent_at)).total_seconds())


# Reading the queues


def queue_url(target: Target, queue: DeadLetterQueue) -> str:
    return target.output(queue.output)


def counts(target: Target, url: str) -> dict[str, int]:
    """Messages visible (waiting) and in flight (received, not yet deleted)."""
    found = target.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(found.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(found.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def _receive(
    target: Target, queue: DeadLetterQueue, url: str, limit: int | None, hidden_for: int
) -> list[DeadLetter]:
    """Up to `limit` messages (None: all that are visible), hidden for `hidden_for` seconds."""
    sqs = target.client("sqs")
    found: dict[str, DeadLetter] = {}
    while limit is None or len(found) < limit:
        wanted = _BATCH if limit is None else min(_BATCH, limit - len(found))
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=wanted,
            VisibilityTimeout=hidden_for,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in found]
        if not new:
            break
        for message in new:
            found[message["MessageId"]] = read_message(queue, message)
    return sorted(found.values(), key=lambda letter: letter.sent_at or "")


def _restore(target: Target, url: str, letters: Iterable[DeadLetter]) -> None:
    """Make received messages visible again at once."""
    sqs = target.client("sqs")
    pending = list(letters)
    for start in range(0, len(pending), _BATCH):
        chunk = pending[start : start + _BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for i, letter in enumerate(chunk)
            ],
        )


def peek(target: Target, queue: DeadLetterQueue, limit: int | None = None) -> list[DeadLetter]:
    """The queue's messages, oldest first, left in the queue and visible again."""
    url = queue_url(target, queue)
    letters = _receive(target, queue, url, limit, PEEK_SECONDS)
    _restore(target, url, letters)
    return letters


def summary(target: Target, queue: DeadLetterQueue, sample: int = 100) -> dict[str, Any]:
    """The queue's counts and the age of its oldest message (from peeking at up to `sample`
    messages: `oldest_of` says how many were seen)."""
    url = queue_url(target, queue)
    found = counts(target, url)
    letters = peek(target, queue, sample) if found["visible"] else []
    sent = min((letter.sent_at for letter in letters if letter.sent_at), default=None)
    age = age_seconds(sent)
    return {
        "queue": queue.name,
        "holds": queue.holds,
        "url": url,
        **found,
        "oldest_sent_at": sent,
        "oldest_age_seconds": None if age is None else round(age),
        "oldest_of": len(letters),
    }


# Redriving


@dataclass(frozen=True)
class Redelivery:
    """What redriving one message does: the call, its target and the payload it sends."""

    action: Literal["StartExecution", "Invoke"]
    target_arn: str
    payload: Any
    execution_name: str | None = None

    def describe(self) -> str:
        if self.action == "StartExecution":
            return f"StartExecution {self.target_arn} as {self.execution_name}"
        return f"Invoke {self.target_arn} asynchronously"


def plan(target: Target, letter: DeadLetter) -> Redelivery:
    """The re-delivery of one message. Raises DeadLetterError when it cannot be planned."""
    if letter.unreadable:
        raise DeadLetterError(f"cannot read it: {letter.unreadable}")
    assert letter.target_arn is not None
    if letter.rule_arn is None:  # Lambda's on-failure record
        return Redelivery("Invoke", letter.target_arn, letter.event)
    rule_target = _rule_target(target, letter.rule_arn, letter.target_arn)
    payload = target_input(rule_target, letter.event, letter.rule_arn)
    service = letter.target_arn.split(":")[2] if letter.target_arn.count(":") >= 5 else ""
    if service == "states":
        name = execution_name(_rule_name(letter.rule_arn)[1], letter.event, stable=True)
        return Redelivery("StartExecution", letter.target_arn, payload, name)
    if service == "lambda":
        return Redelivery("Invoke", letter.target_arn, payload)
    raise DeadLetterError(f"cannot redrive to {letter.target_arn}: not a state machine or function")


def _rule_name(rule_arn: str) -> tuple[str, str]:
    """(event bus, rule name) of a rule ARN: `rule/<name>` on the default bus, else
    `rule/<bus>/<name>`."""
    path = rule_arn.split(":", 5)[-1].removeprefix("rule/")
    bus, _, name = path.rpartition("/")
    return bus or "default", name


def _rule_target(target: Target, rule_arn: str, target_arn: str) -> dict[str, Any]:
    bus, name = _rule_name(rule_arn)
    events = target.client("events")
    try:
        targets = [
            found
            for page in events.get_paginator("list_targets_by_rule").paginate(
                Rule=name, EventBusName=bus
            )
            for found in page.get("Targets", [])
        ]
    except ClientError as exc:
        raise DeadLetterError(f"cannot read rule {name}'s targets: {_error(exc)}") from None
    for found in targets:
        if found.get("Arn") == target_arn:
            return dict(found)
    raise DeadLetterError(f"rule {name} no longer targets {target_arn}")


def deliver(target: Target, redelivery: Redelivery) -> str:
    """Make the call; returns what happened. Raises DeadLetterError when it is refused."""
    try:
        if redelivery.action == "StartExecution":
            return _start(target, redelivery)
        response = target.client("lambda").invoke(
            FunctionName=redelivery.target_arn,
            InvocationType="Event",
            Payload=json.dumps(redelivery.payload).encode(),
        )
    except ClientError as exc:
        raise DeadLetterError(f"{redelivery.action} refused: {_error(exc)}") from None
    except BotoCoreError as exc:
        raise DeadLetterError(f"{redelivery.action} failed: {exc}") from None
    if response.get("StatusCode") != 202:
        raise DeadLetterError(f"Invoke answered {response.get('StatusCode')}, not 202")
    return f"invoked {redelivery.target_arn} asynchronously"


def _start(target: Target, redelivery: Redelivery) -> str:
    sfn = target.client("stepfunctions")
    try:
        started = sfn.start_execution(
            stateMachineArn=redelivery.target_arn,
            name=redelivery.execution_name,
            input=json.dumps(redelivery.payload),
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        # Started by an earlier redrive (or delivery) of the same event: delivered.
        return f"execution {redelivery.execution_name} exists already"
    return f"started {started['executionArn']}"


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', exc)}"


@dataclass
class Outcome:
    letter: DeadLetter
    redelivery: Redelivery | None
    result: str
    ok: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.letter.message_id,
            "what": self.letter.what,
            "action": None if self.redelivery is None else self.redelivery.describe(),
            "ok": self.ok,
            "result": self.result,
        }


def redrive(
    target: Target,
    queue: DeadLetterQueue,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Redeliver up to `limit` messages (None: all), oldest first; each is deleted once its
    re-delivery succeeded, and the others (and every one on a dry run) made visible again."""
    url = queue_url(target, queue)
    letters = _receive(target, queue, url, limit, REDRIVE_SECONDS)
    outcomes: list[Outcome] = []
    try:
        for letter in letters:
            outcome = _redrive_one(target, url, letter, dry_run)
            outcomes.append(outcome)
            report(outcome)
    finally:
        deleted = {o.letter.message_id for o in outcomes if o.ok and not dry_run}
        _restore(target, url, [x for x in letters if x.message_id not in deleted])
    return outcomes


def _redrive_one(target: Target, url: str, letter: DeadLetter, dry_run: bool) -> Outcome:
    try:
        redelivery = plan(target, letter)
    except DeadLetterError as exc:
        return Outcome(letter, None, str(exc), ok=False)
    if dry_run:
        return Outcome(letter, redelivery, "would redeliver", ok=True)
    try:
        result = deliver(target, redelivery)
    except DeadLetterError as exc:
        return Outcome(letter, redelivery, str(exc), ok=False)
    except ClientError as exc:
        return Outcome(letter, redelivery, _error(exc), ok=False)
    target.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=letter.receipt_handle)
    return Outcome(letter, redelivery, result, ok=True)
