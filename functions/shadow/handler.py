"""Shadow scorer: S3 "Object Created" under `capture/` (EventBridge) in; each configured model
of the object's records whose `[serving] shadow` is on and whose alias `shadow` is set gets
its shadow records under `shadow/<model>/` (`functions.shadow.logic`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.shadow.logic import scorer


class NotAnObjectCreatedEventError(ValueError):
    """The event is not S3's EventBridge "Object Created" notification."""


def object_key(event: Any) -> str:
    """The key of the object an EventBridge S3 "Object Created" event names."""
    try:
        key = event["detail"]["object"]["key"]
    except (KeyError, TypeError):
        raise NotAnObjectCreatedEventError(
            "expected an S3 Object Created event from EventBridge (detail.object.key)"
        ) from None
    if not isinstance(key, str) or not key:
        raise NotAnObjectCreatedEventError("detail.object.key must be a non-empty string")
    return key


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return scorer().score_object(object_key(event))
