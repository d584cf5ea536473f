"""A pipeline step's Lambda handler, built once for every stage whose handler only parses its
event into a contract, runs the stage's work on it and returns the result as JSON.

The handler, outermost first: answers the health check (`functions.common.health`), injects
the Lambda context into the logger (state cleared per invocation), flushes the metrics (unless
the step records none), parses the event into the step's model (a malformed event fails the
invocation before any work), then returns `work(parsed).model_dump(mode="json")`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics

Event = TypeVar("Event", bound=BaseModel)

StepHandler = Callable[[Any, LambdaContext], dict[str, Any]]


def step_handler(
    model: type[Event], work: Callable[[Event], BaseModel], *, records_metrics: bool = True
) -> StepHandler:
    """The Lambda handler of a step: `model` parses the event, `work` does the step.
    `records_metrics=False` for a step that emits no metric (no flush)."""

    @event_parser(model=model)
    def parsed(event: Event, context: LambdaContext) -> dict[str, Any]:
        return work(event).model_dump(mode="json")

    handler: StepHandler = metrics.log_metrics(parsed) if records_metrics else parsed
    return answers_health_check(logger.inject_lambda_context(clear_state=True)(handler))
