"""EventBridge adapter: the domain events of `functions.common.events`, put on the default
event bus."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from functions.adapters import aws
from functions.adapters.errors import translated
from functions.common.errors import EventPublishError
from functions.common.events import MODEL_PROMOTED, REGISTRY_SOURCE


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
    with translated(EventPublishError, f"put_events {detail_type}"):
        response = client.put_events(Entries=[entry])
    result = (response.get("Entries") or [{}])[0]
    if response.get("FailedEntryCount") or "EventId" not in result:
        raise EventPublishError(
            f"EventBridge refused the {detail_type} event: "
            f"{result.get('ErrorCode', 'no event id')}: {result.get('ErrorMessage', '')}".rstrip()
        )
    return str(result["EventId"])
