"""Canary function: invoked by EventBridge for each object Firehose writes under `capture/`
(S3 Object Created). Counts the object's requests into the rollouts' counters once, judges
every running rollout with the sequential test, and concludes the decided ones. Returns a
summary (key, counted models, skipped lines, decisions)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.canary.logic import CanaryService, handle_object
from functions.common.config.loading import deployed_config
from functions.common.health import answers_health_check
from functions.common.observability import logger, metrics
from functions.common.settings import stage_settings


class BadEventError(ValueError):
    """The invocation is not an S3 Object Created event of the data bucket."""


def object_key(event: Any, bucket: str) -> str:
    """The key of the object an S3 Object Created event names (of `bucket`)."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        raise BadEventError("the event has no `detail`: not an S3 Object Created event")
    named = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key")
    if named != bucket or not isinstance(key, str) or not key:
        raise BadEventError(f"the event names no object of bucket {bucket!r}: {detail!r:.200}")
    return key


@answers_health_check
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = stage_settings()
    key = object_key(event, settings.data_bucket)
    logger.append_keys(key=key)
    service = CanaryService.create(deployed_config(), settings.data_bucket, settings.registry_table)
    return handle_object(service, key)
