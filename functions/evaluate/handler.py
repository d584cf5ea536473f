"""Evaluate stage: the pipeline state with `training` in; an `EvaluationResult` out: the
candidate and the champion (alias `production`) scored on the same held-out rows, and the
gate's decision with every criterion."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.contracts import PipelineState
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.evaluate.logic import evaluate


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_parser(model=PipelineState)
def lambda_handler(state: PipelineState, context: LambdaContext) -> dict[str, Any]:
    return evaluate(state).model_dump(mode="json")
