"""The data sections: the dataset and its contract (`[dataset]`), the ingest function
(`[ingest]`) and the data bucket's retention and encryption (`[data_lake]`)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from functions.common.config.base import COLUMN_PATTERN, NAME_PATTERN, Section


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class DatasetMode(StrEnum):
    APPEND = "append"
    REPLACE = "replace"


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class DatasetConfig(Section):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    """Dataset name; also the prefix under `raw/` that starts the pipeline."""
    target: Annotated[str, Field(pattern=COLUMN_PATTERN)]
    task: Task
    mode: DatasetMode = DatasetMode.APPEND
    features: dict[str, FeatureType] | None = None
    """Column name -> type. When absent, the contract is inferred from the first good drop
    and then frozen in the registry."""
    min_rows: Annotated[int, Field(ge=2)] = 20
    max_null_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """A feature column with a larger share of missing values fails validation."""
    max_invalid_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    """A larger share of values that cannot be coerced to the column's type means the column
    has the wrong type (the file is quarantined); below it, such values become missing."""
    min_class_rows: Annotated[int, Field(ge=1)] = 2
    """Classification: every class of the target needs at least this many rows."""
    normalize_labels: bool = False
    """Classification: the class set is frozen at the first good version; a later label that
    differs from a known class only in case or whitespace (`"Yes "`, `YES` for `yes`) is
    rewritten to that class when true, and quarantines the file (`unknown_class`) when false."""
    missing_markers: list[str] = Field(
        default_factory=lambda: ["", "na", "n/a", "nan", "null", "none", "?", "-", "#n/a"]
    )
    """Cell values (compared case-insensitively, trimmed) that mean missing."""
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    chunk_rows: Annotated[int, Field(ge=1_000)] = 200_000
    """Rows read per chunk while ingesting; bounds the ingest function's memory. A wide file
    is read in fewer (a chunk holds at most 4M cells and about 64 MiB: `functions.ml.readers`)."""
    sensitive: dict[str, Literal["hash", "drop"]] = Field(default_factory=dict)
    """Feature column -> `hash` | `drop`: prediction capture, the reference profile and the
    drift check hold a `hash` column only as hashes (`functions.common.sensitive`) and a `drop`
    column not at all. Predictions still use the real values; training uses the curated data."""
    hash_salt: Annotated[str, Field(max_length=128)] = ""
    """Keys the hash of `hash` columns (HMAC-SHA256); empty: plain SHA-256. Not a secret (it
    is in this file and the functions' environment); changing it makes the hashed columns of
    every served model unseen categories to the drift check until retrained."""

    fairness_attributes: list[str] = Field(default_factory=list)
    """Columns whose groups the model card compares (fairlearn's demographic parity and
    equalized odds) and `[gate.fairness]` bounds. A column that is not a model feature (not
    in `features`, nor in `sensitive`) is audit-only: ingest keeps it in the curated data (a
    categorical column of a declared contract) and the held-out rows, training never uses it."""

    @property
    def audit_columns(self) -> list[str]:
        """The fairness attributes that are not model features (see `fairness_attributes`)."""
        features = self.features or {}
        return [
            name
            for name in self.fairness_attributes
            if name not in features and name not in self.sensitive
        ]

    @field_validator("fairness_attributes")
    @classmethod
    def _fairness_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.match(COLUMN_PATTERN, name)]
        if bad:
            raise ValueError(f"dataset.fairness_attributes must be lower_snake_case: {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"dataset.fairness_attributes lists a column twice: {value}")
        return value

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: dict[str, FeatureType] | None) -> dict[str, FeatureType] | None:
        if value is not None:
            bad = [name for name in value if not re.match(COLUMN_PATTERN, name)]
            if bad:
                raise ValueError(
                    f"feature names must be lower_snake_case (as ingestion normalises them): {bad}"
                )
        return value

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DatasetConfig:
        if self.features and self.target in self.features:
            raise ValueError(f"target {self.target!r} must not also be listed in features")
        if self.target in self.fairness_attributes:
            raise ValueError(
                f"dataset.fairness_attributes names the target {self.target!r}; list the "
                "columns whose groups are compared"
            )
        return self

    @model_validator(mode="after")
    def _sensitive_are_features(self) -> DatasetConfig:
        names = list(self.sensitive)
        bad = [name for name in names if not re.match(COLUMN_PATTERN, name)]
        if bad:
            raise ValueError(f"dataset.sensitive names must be lower_snake_case: {bad}")
        if self.target in names:
            raise ValueError(
                f"dataset.sensitive names the target {self.target!r}; only features can be "
                "hashed or dropped"
            )
        unknown = [
            name for name in names if self.features is not None and name not in self.features
        ]
        if unknown:
            raise ValueError(
                f"dataset.sensitive names column(s) not in dataset.features: {unknown}"
            )
        return self


class IngestConfig(Section):
    memory_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    timeout_seconds: Annotated[int, Field(ge=30, le=900)] = 900
    ephemeral_storage_mb: Annotated[int, Field(ge=512, le=10240)] = 4096
    """The raw object and its curated copy are staged in /tmp, never held in memory."""
    reserved_concurrency: Annotated[int, Field(ge=1, le=100)] = 10
    """Reserved concurrency of the ingest function: at most this many drops are ingested at
    once, so a storm of drops cannot take the account's concurrency from serving. Invocations
    beyond it are throttled, and the pipeline retries them."""
    max_line_bytes: Annotated[int, Field(ge=1024, le=256 << 20)] = 1 << 20
    """A line of a text drop (CSV, JSON Lines) longer than this quarantines the file
    (`line_too_long`): the reader never holds more of one line."""
    max_record_bytes: Annotated[int, Field(ge=1024, le=256 << 20)] = 4 << 20
    """A record larger than this quarantines the file (`record_too_large`): a CSV row (which
    may span lines inside quotes) must fit the reader's block of this size, and a Parquet row
    group's rows must average under it."""
    max_columns: Annotated[int, Field(ge=1, le=100_000)] = 2_000
    """A file with more columns (JSON Lines: distinct keys) is quarantined
    (`too_many_columns`)."""
    max_gzip_ratio: Annotated[int, Field(ge=0, le=100_000)] = 100
    """A gzip drop that decompresses to more than this many times its size (and past 64 MiB)
    is quarantined (`gzip_bomb`) as soon as it does; 0: no limit."""

    @model_validator(mode="after")
    def _limits_fit(self) -> IngestConfig:
        if self.max_line_bytes > self.max_record_bytes:
            raise ValueError(
                f"ingest.max_line_bytes ({self.max_line_bytes}) must not exceed "
                f"ingest.max_record_bytes ({self.max_record_bytes}): a line is part of a record"
            )
        # The CSV reader holds a few blocks of max_record_bytes, then converts them.
        if self.max_record_bytes * 16 > self.memory_mb << 20:
            raise ValueError(
                f"ingest.max_record_bytes ({self.max_record_bytes}) must be at most 1/16 of "
                f"ingest.memory_mb ({self.memory_mb} MB): reading holds several records' "
                "worth of bytes at once"
            )
        return self


class DataLakeConfig(Section):
    quarantine_retention_days: Annotated[int, Field(ge=1)] = 365
    access_log_retention_days: Annotated[int, Field(ge=1)] = 365
    noncurrent_version_retention_days: Annotated[int, Field(ge=1)] = 90
    """Noncurrent versions of derived data (curated, models, reports) expire after this;
    raw/ is exempt: raw data is removed only by an explicit erasure."""
    capture_retention_days: Annotated[int, Field(ge=1)] = 90
    """Captured predictions (capture/, capture-errors/) expire after this many days."""
    feedback_retention_days: Annotated[int, Field(ge=1)] = 365
    """Feedback labels (feedback/) expire after this many days."""
    kms_key: bool = False
    """One customer-managed KMS key (rotated yearly) for the data bucket, the registry table,
    the capture stream and the functions' logs; false: AWS-owned / S3-managed keys."""
