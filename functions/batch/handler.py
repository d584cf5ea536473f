"""The batch state machine's three functions (all in the training image: pyarrow for Parquet,
onnxruntime for scoring): `plan_handler` (the job's files -> map items), `score_handler` (one
map item -> predictions and rejects) and `finalize_handler` (item results -> manifest)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from functions.batch.contracts import BatchItem, BatchPlan, BatchRequest
from functions.batch.finalize import finalize
from functions.batch.item import score_item
from functions.batch.plan import plan
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
    return plan(BatchRequest.from_event(event)).model_dump(mode="json")


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
    return finalize(request.plan, request.error, execution).model_dump(mode="json")
