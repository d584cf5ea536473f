"""Train stage: the pipeline state (a dataset version from Ingest, or a retrain request) in;
a `TrainingRun` out, its artifacts under `models/<name>/runs/<run_id>/`, or `TrainingSkipped`
when a drop's training set was trained on before (the state machine then ends, `skipped`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.contracts import PipelineState
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.train.logic import train


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict[str, Any]:
    return train(state).model_dump(mode="json")
