"""EventBridge adapter: the registry's domain events, put on the default event bus.

`ModelPromoted` (source `mlops.registry`) is published whenever the serving alias of a model
moves, by a promotion or a rollback: consumers (the predict function's cache, notifications,
a deployment hook) match on source and detail-type. Delivery is at least once: a retried
registration may publish the same move twice, so consumers key on (model, alias, revision).

`DriftDetected` (source `mlops.monitor`) is published by the drift check when the data drifted
or live performance dropped; with `retrain.via == "pipeline"` a rule starts the pipeline with
`detail.pipeline_input` (a retrain request).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from functions.common import aws
from functions.common.contracts import AliasChange
from functions.common.errors import EventPublishError

REGISTRY_SOURCE = "mlops.registry"
MODEL_PROMOTED = "ModelPromoted"
MONITOR_SOURCE = "mlops.monitor"
DRIFT_DETECTED = "DriftDetected"


def model_promoted_detail(
    change: AliasChange, *, metrics: Mapping[str, float], run_id: str | None = None
) -> dict[str, Any]:
    """The detail of a `ModelPromoted` event for one move of an alias."""
    return {
        "model": change.model_name,
        "alias": change.alias,
        "version": change.to_version,
        "previous_version": change.from_version,
        "kind": change.kind,
        "revision": change.revision,
        "metrics": dict(metrics),
        "run_id": run_id,
        "execution": change.execution,
        "reason": change.reason,
        "at": change.at,
    }


def publish_model_promoted(
    detail: Mapping[str, Any], source: str = REGISTRY_SOURCE, *, events: Any | None = None
) -> str:
    """Put one `ModelPromoted` event on the default bus; returns its event id.

    Raises:
        EventPublishError: the call failed, or EventBridge refused the entry.
    """
    return publish_event(MODEL_PROMOTED, detail, source, events=events)


def publish_event(
    detail_type: str, detail: Mapping[str, Any], source: str, *, events: Any | None = None
) -> str:
    """Put one event on the default bus; returns its event id.

    Raises:
        EventPublishError: the call failed, or EventBridge refused the entry.
    """
    client = events if events is not None else aws.client("events")
    entry = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(dict(detail), default=str),
    }
    try:
        response = client.put_events(Entries=[entry])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        raise EventPublishError(f"put_events {detail_type} failed: {code}: {exc}") from exc
    result = (response.get("Entries") or [{}])[0]
    if response.get("FailedEntryCount") or "EventId" not in result:
        raise EventPublishError(
            f"EventBridge refused the {detail_type} event: "
            f"{result.get('ErrorCode', 'no event id')}: {result.get('ErrorMessage', '')}".rstrip()
        )
    return str(result["EventId"])
