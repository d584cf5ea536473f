"""Ingest stage: S3 "Object Created" (via EventBridge and the Step Functions task) in, the
dataset version (`DatasetRef`) or `IngestSkipped` out; bad drops fail the execution with
`DataValidationError` / `UnknownDatasetError` after being quarantined. A `CrashedDrop` (the
pipeline's catch, after this function died on a drop) quarantines that drop unread. An
ingestion emits its OpenLineage events (`ingest.<dataset>`: the raw object in, the curated
version out)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.adapters.lineage import traced
from functions.common.config.loading import deployed_config
from functions.common.contracts import SourceObject
from functions.common.health import answers_health_check
from functions.common.lineage import RunSpec
from functions.common.lineage_steps import ingest_begin, ingest_end
from functions.common.observability import logger, metrics
from functions.ingest.events import CRASHED_KEY, CrashedDrop, ObjectCreatedEvent
from functions.ingest.logic import dataset_of, idempotency_config, ingest_object, quarantine_crashed


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and CRASHED_KEY in event:
        return quarantine_crashed(CrashedDrop.model_validate(event[CRASHED_KEY]))
    return _ingest(event, context)


@event_parser(model=ObjectCreatedEvent)
def _ingest(event: ObjectCreatedEvent, context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    execution = event.execution.id if event.execution else None

    def begin(source: SourceObject) -> RunSpec:
        dataset = dataset_of(deployed_config().datasets, source.key)
        return ingest_begin(source, dataset.name if dataset else None, execution)

    result = traced(ingest_object, begin, lambda _, result, read: ingest_end(result, read))(
        event.source_object()
    )
    return result.model_dump(mode="json")
