"""Register stage: the pipeline state (`$.training`, `$.evaluation`) in, the registered and
promoted model version (`ModelVersion`) out. A promotion that lost a race to another one fails
the execution with `StalePromotionError` (the version stays registered, not promoted)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.register.logic import RegisterRequest, register_model


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_parser(model=RegisterRequest)
def lambda_handler(event: RegisterRequest, context: LambdaContext) -> dict[str, Any]:
    return register_model(event).model_dump(mode="json")
