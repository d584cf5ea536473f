"""Drift check function: one check of one model, invoked by the drift checks state machine
(one Map iteration per model, `{"model": name}`, on the schedule from `[drift] schedule` or a
model's own `[models.<name>.drift] schedule`) or by `mlops drift run` (`{"source":
"mlops.cli", "model": name, "window_hours": n}`). Without `model`: the default model. Returns
the check's summary (model, verdict, drifted features, report keys, retrain decision). Each
check emits its OpenLineage run events (`functions.monitor.lineage`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.adapters.lineage import traced
from functions.common.config.loading import MlopsConfig, deployed_config
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.common.settings import stage_settings
from functions.monitor.lineage import check_begin, check_end
from functions.monitor.logic import MonitorService, run_check, summary

MAX_WINDOW_HOURS = 24 * 93


class BadRequestError(ValueError):
    """The invocation payload is not a schedule event or a valid manual request."""


def window_hours(event: Any) -> int | None:
    if not isinstance(event, dict):
        raise BadRequestError("the event must be a JSON object")
    value = event.get("window_hours")
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_WINDOW_HOURS:
        raise BadRequestError(
            f"window_hours must be an integer from 1 to {MAX_WINDOW_HOURS}, got {value!r}"
        )
    return value


def model_of(event: Any, config: MlopsConfig) -> str:
    """The model an invocation checks: `model`, else the default model."""
    if not isinstance(event, dict):
        raise BadRequestError("the event must be a JSON object")
    value = event.get("model")
    if value is None:
        return config.default_model
    if not isinstance(value, str) or value not in config.models:
        raise BadRequestError(
            f"model {value!r:.80} is not configured (models: {', '.join(config.model_names)})"
        )
    return value


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    hours = window_hours(event)
    config = deployed_config()
    model = model_of(event, config)
    logger.append_keys(model=model)
    settings = stage_settings()
    service = MonitorService.create(config, settings.data_bucket, settings.registry_table, model)

    def check(svc: MonitorService) -> dict[str, Any]:
        return run_check(svc, window_hours=hours)

    traced_check = traced(
        check,
        lambda _: check_begin(model),
        lambda _, result, read: check_end(model, result, read),
    )
    return summary(traced_check(service))
