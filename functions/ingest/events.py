"""The events the ingest function receives: S3's EventBridge "Object Created" notification,
passed through unchanged by the Step Functions task, and, from the pipeline's catch, the same
event with the failure that killed the ingest function on it (`CrashedDrop`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import (
    S3EventNotificationEventBridgeDetailModel,
    S3EventNotificationEventBridgeModel,
    S3EventNotificationObjectModel,
)
from pydantic import BaseModel, ConfigDict, model_validator

from functions.common.contracts import ExecutionInfo, SourceObject


class ObjectDetail(S3EventNotificationObjectModel):
    @model_validator(mode="before")
    @classmethod
    def _accept_etag_spelling(cls, data: Any) -> Any:
        # AWS spells it `etag`; moto (the local cloud) sends `eTag`. Either way it identifies
        # the object's content when the bucket is unversioned.
        if isinstance(data, dict) and "etag" not in data and "eTag" in data:
            return {**data, "etag": data["eTag"]}
        return data


class ObjectCreatedDetail(S3EventNotificationEventBridgeDetailModel):
    object: ObjectDetail  # type: ignore[assignment]


class ObjectCreatedEvent(S3EventNotificationEventBridgeModel):
    detail: ObjectCreatedDetail  # type: ignore[assignment]
    execution: ExecutionInfo | None = None
    """The pipeline execution the drop started (the state's `execution`), when given."""

    def source_object(self) -> SourceObject:
        obj = self.detail.object
        # Unversioned buckets report the version as absent or as the literal "null".
        version_id = obj.version_id if obj.version_id not in (None, "", "null") else None
        return SourceObject(
            bucket=self.detail.bucket.name,
            key=obj.key,
            version_id=version_id,
            etag=obj.etag.strip('"') or None,
            size=int(obj.size) if obj.size is not None else None,
        )


CRASHED_KEY = "crashed"
"""The top-level key of a `CrashedDrop` event (an S3 event has no such key)."""


class CrashedDrop(BaseModel):
    """The pipeline caught `error` (`Runtime.OutOfMemory`, `Sandbox.Timedout`) from the ingest
    function on the drop of `event`; `cause` is what Lambda reported, as Step Functions passes
    it (a JSON document with `errorMessage`)."""

    model_config = ConfigDict(extra="forbid")

    event: ObjectCreatedEvent
    error: str
    cause: str = ""
