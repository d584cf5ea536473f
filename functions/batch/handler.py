"""The batch state machine's three functions (all in the training image: pyarrow for Parquet,
onnxruntime for scoring): `plan_handler` (the job's files -> map items), `score_handler` (one
map item -> predictions and rejects) and `finalize_handler` (item results -> manifest). Plan
and finalize emit the job's OpenLineage run events (`functions.batch.lineage`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from functions.adapters.lineage import deployed_emitter, never_failing
from functions.batch.contracts import BatchItem, BatchPlan, BatchRequest
from functions.batch.finalize import finalize
from functions.batch.item import score_item
from functions.batch.lineage import BatchJobFailed, outputs, planned_run, unplanned_run
from functions.batch.plan import plan
from functions.batch.stage import stage_adapters
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics


class FinalizeRequest(BaseModel):
    """The batch state at the end: the plan, the map's error when it failed, the execution."""

    model_config = ConfigDict(extra="ignore")

    plan: BatchPlan
    error: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def plan_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = BatchRequest.from_event(event)
    try:
        planned = plan(request)
    except Exception as error:
        with never_failing("started"):
            model = request.model or stage_adapters().config.default_model
            run = unplanned_run(deployed_emitter(), request, model)
            run.start()
            run.fail(error)
        raise
    with never_failing("started"):
        planned_run(deployed_emitter(), planned).start()
    return planned.model_dump(mode="json")


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def score_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return score_item(BatchItem.model_validate(event)).model_dump(mode="json")


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def finalize_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FinalizeRequest.model_validate(event)
    execution = (request.execution or {}).get("id")
    try:
        manifest = finalize(request.plan, request.error, execution)
    except Exception as error:
        with never_failing("finished"):
            planned_run(deployed_emitter(), request.plan, execution).fail(error)
        raise
    with never_failing("finished"):
        run = planned_run(deployed_emitter(), request.plan, execution)
        if manifest.status == "failed":
            run.fail(BatchJobFailed(manifest.status_reason))
        else:
            run.complete(outputs=outputs(manifest))
    return manifest.model_dump(mode="json")
