"""Typed contracts passed between stages and through the state machine."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceObject(Contract):
    """One raw object version in the data bucket; ingestion is idempotent on this triple."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None

    @property
    def identity(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.version_id or self.etag or ''}"


class DatasetRef(Contract):
    """A committed dataset version: what the ingest stage returns and training consumes."""

    dataset: str
    data_version: str = Field(description="Content hash of the cleaned rows and schema")
    manifest_key: str
    curated_prefix: str
    rows: int
    source: SourceObject
    created_at: str
    already_ingested: bool = Field(
        default=False, description="True when this object version was ingested before"
    )
    ingested: Literal[True] = Field(
        default=True,
        description="Always true; `IngestSkipped` carries false (a Choice state tests it)",
    )


class IngestSkipped(Contract):
    """What the ingest stage returns when an event names nothing to ingest (a folder marker,
    i.e. a key ending in "/"): no dataset version exists, so later stages must not run."""

    ingested: Literal[False] = False
    reason: str = Field(description="Machine code, e.g. `folder_marker`")
    message: str
    source: SourceObject
