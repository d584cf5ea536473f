"""The two Lambda steps around a SageMaker training job (`[train] backend = "sagemaker"`):
`prepare` (pipeline state in, `$.training_job` out) and `collect` (the finished job in, the
`TrainingRun` out as `$.training`, as the train function returns it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.contracts import PipelineState, TrainingJobState
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.train.sagemaker import collect, prepare


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@event_parser(model=PipelineState)
def prepare_handler(state: PipelineState, context: LambdaContext) -> dict[str, Any]:
    return prepare(state).model_dump(mode="json")


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_parser(model=TrainingJobState)
def collect_handler(state: TrainingJobState, context: LambdaContext) -> dict[str, Any]:
    return collect(state).model_dump(mode="json")
