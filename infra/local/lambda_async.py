"""Lambda's asynchronous invocation on the local cloud (an `Invoke` with
`InvocationType=Event`, and every EventBridge delivery to a function): a failed attempt is
retried as the function's EventInvokeConfig says, and when every attempt failed the on-failure
record goes to its destination queue, sent with the function's role. The pool that runs these
invocations is `infra.local.eventbridge.DISPATCHER`."""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from typing import Any

# One logger for every asynchronous delivery, EventBridge's and Lambda's (`mlops local up -v`).
log = logging.getLogger("infra.local.eventbridge")


DEFAULT_ASYNC_RETRIES = 2


def invoke_asynchronously(function: Any, payload: Any) -> str | None:
    """Invoke `function` as Lambda's asynchronous invocation does (EventBridge hands the event
    over and Lambda runs it): an error (an exception, a failed init, a timeout) is retried
    MaximumRetryAttempts times (2 unless its EventInvokeConfig says otherwise), at once rather
    than after Lambda's one and two minutes; when every attempt failed, the on-failure record
    goes to the configured destination queue, sent with the function's role. Returns None when
    an attempt succeeded, else what became of the failure."""
    config = _event_invoke_config(function)
    attempts = 1 + int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
    body = json.dumps(payload)
    result = ""
    for attempt in range(1, attempts + 1):
        result, errored, _ = function._invoke_lambda(body)
        if not errored:
            return None
        log.warning(
            "function %s failed, attempt %d of %d: %s",
            function.function_name,
            attempt,
            attempts,
            result[:500],
        )
    destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination"
    )
    failed = f"function failed on all {attempts} attempts: {result[:500]}"
    if not destination:
        log.error("%s; no on-failure destination, the event is lost", failed)
        return failed
    record = on_failure_record(function, payload, result, attempts)
    return f"{failed}; {_send_on_failure(function, str(destination), record)}"


def _event_invoke_config(function: Any) -> dict[str, Any]:
    configs = getattr(function, "event_invoke_config", None) or []
    return dict(configs[0].config) if configs else {}


def on_failure_record(function: Any, payload: Any, result: str, attempts: int) -> dict[str, Any]:
    """The record Lambda sends to an asynchronous invocation's on-failure destination when
    its retries are exhausted."""
    try:
        response: Any = json.loads(result)
    except ValueError:
        response = result
    return {
        "version": "1.0",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": ":".join(function.function_arn.split(":")[:7]) + ":$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": response,
    }


def _send_on_failure(function: Any, destination: str, record: dict[str, Any]) -> str:
    """Send the record to an SQS destination with the function's role; a denial or another
    kind of destination loses it (logged), as on Lambda."""
    from moto.sqs.models import sqs_backends

    from infra.local.authz.needs import Needed
    from infra.local.lambda_environment import role_denial

    service, region, account, name = destination.split(":", 5)[2:]
    if service != "sqs":
        log.error("on-failure destination %s is not a queue: the record is lost", destination)
        return f"not sent: {destination} is not a queue"
    needs = [Needed("sqs:SendMessage", destination)]
    denial = role_denial(function, needs, "lambda.OnFailureDestination")
    if denial is not None:
        log.error("the on-failure record is lost: %s", denial.message)
        return f"not sent: {denial.message}"
    sqs_backends[account][region].send_message(name, json.dumps(record))
    log.warning("the on-failure record was sent to %s", destination)
    return f"record sent to {destination}"
