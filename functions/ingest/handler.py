"""Ingest stage: S3 "Object Created" (via EventBridge and the Step Functions task) in, the
dataset version (`DatasetRef`) or `IngestSkipped` out; bad drops fail the execution with
`DataValidationError` / `UnknownDatasetError` after being quarantined."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.observability import logger, metrics
from functions.ingest.events import ObjectCreatedEvent
from functions.ingest.logic import idempotency_config, ingest_object


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_parser(model=ObjectCreatedEvent)
def lambda_handler(event: ObjectCreatedEvent, context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    result = ingest_object(event.source_object())
    return result.model_dump(mode="json")
