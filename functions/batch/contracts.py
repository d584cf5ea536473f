"""What the batch state machine passes between its steps (and what the CLI reads back).

start  {"job": ..., "model"?: name, "model_version"?: N}  or the S3 event of
       `batch/in/<model>/<job>/_START`
Plan   -> BatchPlan at $.plan; the map items (BatchItem, a JSON array) at `plan.items_key`
Score  one BatchItem in -> BatchItemResult out (also written to
       `batch/out/<model>/<job>/_items/`)
Finalize -> BatchManifest at $.manifest and `batch/out/<model>/<job>/manifest.json`
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.common.config.base import NAME_PATTERN
from functions.common.layout import JOB_PATTERN, job_of_start_marker


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BatchRequest(_Contract):
    """A job to plan: its model and name (the folder `batch/in/<model>/<job>/`) and,
    optionally, the version. Without `model`: the default model."""

    job: str
    model: str | None = Field(default=None, pattern=NAME_PATTERN)
    model_version: int | None = Field(default=None, ge=1)

    @field_validator("job")
    @classmethod
    def _job_name(cls, value: str) -> str:
        if not re.match(JOB_PATTERN, value):
            raise ValueError(
                f"job name {value!r:.90} must be 1-80 letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit)"
            )
        return value

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> BatchRequest:
        """A direct request, or the EventBridge S3 event of a `batch/in/<model>/<job>/_START`
        marker."""
        detail = event.get("detail")
        if isinstance(detail, dict) and "object" in detail:
            model, job = job_of_start_marker(str(detail["object"].get("key", "")))
            return cls(job=job, model=model)
        return cls.model_validate(event)


class UnreadableFile(_Contract):
    key: str
    reason: str


class BatchItem(_Contract):
    """One map item: a row range of one input file of `model`'s job."""

    model: str
    job: str
    item: int
    key: str
    format: str
    start: int
    end: int
    """Rows `start` (inclusive) to `end` (exclusive), numbered from 0 in the file."""
    byte_start: int | None = None
    byte_end: int | None = None
    size: int
    header: list[str] | None = None
    output_stem: str
    model_version: int


class BatchPlan(_Contract):
    job: str
    model_name: str
    model_version: int
    items_key: str
    items: int
    files: int
    rows: int
    unreadable: list[UnreadableFile] = Field(default_factory=list)
    planned_at: str
    plan_seconds: float


class Reject(_Contract):
    """One rejected row (a line of `batch/out/<model>/<job>/rejects/...jsonl`): the first problem in
    feature order, and every problem in `problems`."""

    input_key: str
    row: int
    field: str | None
    error: str
    reason: str
    problems: list[dict[str, Any]] = Field(default_factory=list)


class BatchItemResult(_Contract):
    job: str
    item: int
    key: str
    start: int
    end: int
    rows: int
    scored: int
    rejected: int
    rejects_by_error: dict[str, int] = Field(default_factory=dict)
    unseen_categories: dict[str, int] = Field(default_factory=dict)
    output_key: str
    rejects_key: str | None = None
    model_version: int
    seconds: float
    score_seconds: float


class FileSummary(_Contract):
    key: str
    rows: int
    scored: int
    rejected: int
    not_scored: int
    items: int
    failed_items: int
    outputs: list[str]
    rejects: list[str]


class BatchManifest(_Contract):
    """`batch/out/<model>/<job>/manifest.json`. `rows = scored + rejected + not_scored` (rows of
    items that failed after their retries), per file and in total."""

    job: str
    status: Literal["succeeded", "partial", "failed"]
    """succeeded: every row scored. partial: some rows rejected (at most `[batch]
    max_rejected_share` of them), items failed within `tolerated_failure_percentage`, or files
    unreadable. failed: no row scored, more rows rejected than `max_rejected_share`, or more
    items failed than tolerated."""
    status_reason: str
    """Why, in a sentence: `6 of 13,000 rows rejected (share 0.0462% <= max_rejected_share
    10%)`, `no row was scored: 58 of 58 rows rejected (missing_feature 58)`."""
    model_name: str
    model_version: int
    execution: str | None = None
    files: int
    rows: int
    scored: int
    rejected: int
    not_scored: int
    items: int
    failed_items: list[BatchItem] = Field(default_factory=list)
    rejects_by_error: dict[str, int] = Field(default_factory=dict)
    unseen_categories: dict[str, int] = Field(default_factory=dict)
    unreadable: list[UnreadableFile] = Field(default_factory=list)
    per_file: list[FileSummary]
    error: dict[str, Any] | None = None
    planned_at: str
    finished_at: str
    timings: dict[str, float]
    """plan_seconds, score_seconds (sum over items), wall_seconds (plan to finalize),
    rows_per_second (scored + rejected over wall seconds)."""
