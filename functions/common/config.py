"""The one pipeline config (`mlops.toml`), shared by the CDK app, the CLI and the functions.

Infra reads the TOML file; the deployed functions receive the validated model as compact JSON
in the `MLOPS_CONFIG_JSON` environment variable (Lambda caps all variables at 4 KB, so synth
checks the size). Every error names the file, the key and the problem.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV = "MLOPS_CONFIG"
CONFIG_JSON_ENV = "MLOPS_CONFIG_JSON"
DEFAULT_CONFIG_FILE = "mlops.toml"

_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
_COLUMN = r"^[a-z_][a-z0-9_]*$"
_ECR_IMAGE = r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+([:@][\w.:-]+)?$"


class ConfigError(ValueError):
    """The config is missing, unreadable or invalid; the message names file, key and problem."""


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class DatasetMode(StrEnum):
    APPEND = "append"
    REPLACE = "replace"


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(_Section):
    name: Annotated[str, Field(pattern=_NAME)] = "mlops"
    """Prefix of every stack (`<name>-<stage>`) and resource name."""


STAGE_SECTIONS = ("model", "gate", "drift", "serving", "ingest", "train", "data_lake", "batch")
"""Sections a stage may override (`[stages.<stage>.<section>]`)."""


class StageConfig(_Section):
    """Per-stage settings (`[stages.<stage>]`) and overrides of any of `STAGE_SECTIONS` for
    that stage only, e.g. `[stages.prod.serving] provisioned_concurrency = 2`: the stage's
    stack and its functions get the base config with these keys replaced."""

    removal_policy: Literal["retain", "destroy"] = "retain"
    log_retention_days: Annotated[int, Field(ge=1, le=3653)] = 90
    model: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    ingest: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    data_lake: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None

    def overrides(self) -> dict[str, dict[str, Any]]:
        return {
            name: value for name in STAGE_SECTIONS if (value := getattr(self, name)) is not None
        }


class DatasetConfig(_Section):
    name: Annotated[str, Field(pattern=_NAME)]
    """Dataset name; also the prefix under `raw/` that starts the pipeline."""
    target: Annotated[str, Field(pattern=_COLUMN)]
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

    @field_validator("features")
    @classmethod
    def _feature_names(cls, value: dict[str, FeatureType] | None) -> dict[str, FeatureType] | None:
        if value is not None:
            bad = [name for name in value if not re.match(_COLUMN, name)]
            if bad:
                raise ValueError(
                    f"feature names must be lower_snake_case (as ingestion normalises them): {bad}"
                )
        return value

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DatasetConfig:
        if self.features and self.target in self.features:
            raise ValueError(f"target {self.target!r} must not also be listed in features")
        return self

    @model_validator(mode="after")
    def _sensitive_are_features(self) -> DatasetConfig:
        names = list(self.sensitive)
        bad = [name for name in names if not re.match(_COLUMN, name)]
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


ESTIMATORS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: ("logistic_regression", "random_forest", "hist_gradient_boosting"),
    Task.REGRESSION: ("linear_regression", "ridge", "random_forest", "hist_gradient_boosting"),
}
"""The estimator allow-list per task (`[model] estimator`)."""


class ModelConfig(_Section):
    name: Annotated[str, Field(pattern=_NAME)] | None = None
    """Registered model name (`models/<name>/<version>/`); defaults to the dataset name."""
    estimator: str | None = None
    """One of `ESTIMATORS[task]`; defaults to logistic_regression / linear_regression."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters passed to the estimator (scikit-learn names)."""
    grid: dict[str, list[Any]] | None = None
    """Optional small grid search: parameter -> candidate values, scored by cross-validation
    on the training split; the best combination is refitted on the whole training split."""
    cv_folds: Annotated[int, Field(ge=2, le=10)] = 3
    test_size: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2
    seed: int = 42
    reference_sample_rows: Annotated[int, Field(ge=0, le=100_000)] = 1_000
    """Rows of training data kept (at random) in the reference profile for exact drift tests."""
    parity_tolerance: Annotated[float, Field(gt=0.0, le=1e-2)] = 1e-4
    """Max |probability difference| (or relative prediction difference for regression)
    between scikit-learn and ONNX on the test split; a larger one fails the run."""

    @field_validator("grid")
    @classmethod
    def _grid_small(cls, value: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if value is not None:
            combinations = 1
            for name, options in value.items():
                if not options:
                    raise ValueError(f"grid parameter {name!r} has no values")
                combinations *= len(options)
            if combinations > 50:
                raise ValueError(f"grid has {combinations} combinations; keep it to 50 or fewer")
        return value


class MetricThreshold(_Section):
    """MLflow's `MetricThreshold` semantics for one metric."""

    threshold: float | None = None
    """Absolute bound: the candidate's value must be >= it (<= when lower is better)."""
    min_absolute_change: Annotated[float, Field(ge=0.0)] | None = None
    """The candidate must beat the champion by at least this (absolute; 0 = not worse)."""
    min_relative_change: Annotated[float, Field(ge=0.0)] | None = None
    """The candidate must beat the champion by at least this fraction of its value."""
    greater_is_better: bool | None = None
    """Defaults from the metric (True for scores, False for losses/errors)."""


class GateConfig(_Section):
    metrics: dict[str, MetricThreshold] = Field(default_factory=dict)
    """Metric name -> criteria. Empty: the task's primary metric (roc_auc for binary,
    f1_macro for multiclass, rmse for regression) must not be worse than the champion's."""


# Graviton (arm64) SageMaker instance families: a digit, then "g" (m7g, c6gn, r6gd, x2gd).
_GRAVITON_FAMILY = r"^[a-z]+\d+g[a-z]*$"


class SageMakerTrainingConfig(_Section):
    """The SageMaker training job (`[train] backend = "sagemaker"`)."""

    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")] = "ml.m5.xlarge"
    instance_count: Annotated[int, Field(ge=1, le=1)] = 1
    """scikit-learn fits on one machine; more instances would only train copies."""
    volume_gb: Annotated[int, Field(ge=1, le=16_384)] = 30
    """The instance's storage volume: the training set is copied onto it."""
    max_runtime_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    """SageMaker stops the job after this long (the task then fails)."""
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    """The training image is built for this; Graviton (`ml.*g.*`) instances need arm64."""
    image: Annotated[str, Field(pattern=_ECR_IMAGE)] | None = None
    """An ECR image URI to train with instead of the one built from this repo; it must run
    `functions.train.sagemaker_entry` as its `train` program."""

    @property
    def graviton(self) -> bool:
        return re.match(_GRAVITON_FAMILY, self.instance_type.split(".")[1]) is not None

    @model_validator(mode="after")
    def _architecture_fits_instance(self) -> SageMakerTrainingConfig:
        needed = "arm64" if self.graviton else "x86_64"
        if self.architecture != needed:
            raise ValueError(
                f"train.sagemaker.architecture {self.architecture!r} does not run on "
                f"{self.instance_type} ({'Graviton' if self.graviton else 'x86_64'}): "
                f"use architecture = {needed!r}"
            )
        return self


class TrainConfig(_Section):
    backend: Literal["lambda", "sagemaker"] = "lambda"
    """Where the Train step runs: the train Lambda function, or a SageMaker training job
    running the same training code (`[train.sagemaker]`)."""
    memory_mb: Annotated[int, Field(ge=512, le=10240)] = 3008
    timeout_seconds: Annotated[int, Field(ge=30, le=900)] = 900
    ephemeral_storage_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    reserved_concurrency: Annotated[int, Field(ge=1, le=100)] = 5
    """Reserved concurrency of each training-side pipeline function (train, or prepare and
    collect with SageMaker; evaluate; register): at most this many run at once, and the
    account's other functions keep the rest. Invocations beyond it are throttled, and the
    pipeline retries them."""
    sagemaker: SageMakerTrainingConfig = SageMakerTrainingConfig()


_SCHEDULE = r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$"
Limits = tuple[Annotated[float, Field(ge=0.0)], Annotated[float, Field(ge=0.0)]]


class DriftConfig(_Section):
    """The scheduled drift check (`functions/monitor`) and the retraining it may start.
    Thresholds are (minor, major) effect sizes; see `functions.ml.drift.report.DriftThresholds`."""

    schedule: Annotated[str, Field(pattern=_SCHEDULE)] = "rate(1 day)"
    """EventBridge schedule expression of the drift check."""
    window_hours: Annotated[int, Field(ge=1, le=24 * 31)] | None = None
    """Capture compared per check: the last `window_hours`; unset = everything captured since
    the previous check (at most `max_window_hours` back)."""
    max_window_hours: Annotated[int, Field(ge=1, le=24 * 93)] = 24 * 7
    auto_retrain: bool = False
    """Dataset drift or a live performance drop emits `DriftDetected` with a retrain request,
    and a rule starts the pipeline with it (the gate still decides)."""
    cooldown_hours: Annotated[float, Field(ge=0.0, le=24 * 31)] = 24.0
    """No retraining is started by drift within this long of the previous one."""
    retrain_with_feedback: bool = True
    """Labelled feedback (joined to captured features by request id) becomes training rows:
    written as a drop under `raw/<dataset>/feedback/`, validated and versioned like any drop."""
    retrain_schedule: Annotated[str, Field(pattern=_SCHEDULE)] | None = None
    """Also retrain on this fixed cadence (EventBridge schedule), drift or not."""
    performance_tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    """A live metric worse than the serving model's evaluation metric by more than this
    (absolute; relative to the value for rmse/mae) is a performance drop."""
    min_feedback_rows: Annotated[int, Field(ge=1)] = 50
    """Fewer labelled rows in a window: live performance is `insufficient_data`."""
    feedback_lookback_hours: Annotated[int, Field(ge=0, le=24 * 93)] = 24 * 7
    """Feedback received in the window is joined to capture up to this long before it."""
    min_rows: Annotated[int, Field(ge=10)] = 100
    large_window: Annotated[int, Field(ge=100)] = 1_000
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    psi: Limits = (0.1, 0.25)
    wasserstein: Limits = (0.1, 0.25)
    js: Limits = (0.1, 0.2)
    null_share: Limits = (0.05, 0.2)
    out_of_range: Limits = (0.05, 0.2)
    share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.3
    """Dataset drift: at least this share of the features drifted (minor or worse) ..."""
    critical_features: list[str] = Field(default_factory=list)
    """... or any of these features drifted `major` (unset: the features carrying the top half
    of the served model's permutation importance) ..."""
    data_quality_fail: Literal["minor", "major", "never"] = "major"
    """... or a data-quality break (null share, out of range, unseen categories) of at least
    this severity, whatever the share; `never`: breaks are reported, never fail the check."""
    memory_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    timeout_seconds: Annotated[int, Field(ge=30, le=900)] = 900

    @model_validator(mode="before")
    @classmethod
    def _sensitive_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sensitive" in data:
            raise ValueError(
                "drift.sensitive moved to [dataset] sensitive (capture stores those columns "
                "hashed or not at all)"
            )
        return data

    @model_validator(mode="after")
    def _limits_ordered(self) -> DriftConfig:
        for name in ("psi", "wasserstein", "js", "null_share", "out_of_range"):
            minor, major = getattr(self, name)
            if minor > major:
                raise ValueError(f"drift.{name}: minor {minor} must not exceed major {major}")
        if self.min_rows > self.large_window:
            raise ValueError(
                f"drift.min_rows {self.min_rows} must not exceed large_window {self.large_window}"
            )
        return self


LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


class ServingConfig(_Section):
    auth: Literal["none", "iam", "api_key"] = "iam"
    """API Gateway authorization: SigV4 (IAM) by default, or API keys with a usage plan."""
    capture_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Share of prediction requests captured (features, predictions, version) for drift."""
    alias_ttl_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    """A warm predict function re-checks alias `production` at most this often."""
    max_batch_rows: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    max_body_bytes: Annotated[int, Field(ge=1_024, le=LAMBDA_SYNC_PAYLOAD_BYTES // 2)] = 1_048_576
    """Requests larger than this are refused with 413; at most half of Lambda's 6 MB
    synchronous payload, so the response (predictions and probabilities) fits too."""
    unseen_categories: Literal["accept", "reject"] = "accept"
    """A category not seen in training: accepted (encoded as none of the known ones, and
    counted) or refused with 422."""
    throttle_rate_limit: Annotated[float, Field(gt=0)] = 100.0
    throttle_burst_limit: Annotated[int, Field(ge=1)] = 200
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    timeout_seconds: Annotated[int, Field(ge=1, le=29)] = 10
    snapstart: bool = False
    """SnapStart on published versions (behind alias `live`); the model alias is re-resolved
    after every restore."""
    provisioned_concurrency: Annotated[int, Field(ge=0)] = 0
    candidate_share: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    """Share of requests served by alias `candidate` (when set) before it is promoted."""
    latency_alarm_ms: Annotated[int, Field(ge=10, le=29_000)] = 1_000
    """An alarm notifies the alerts topic when the API's p99 latency stays above this."""
    candidate_min_requests: Annotated[int, Field(ge=1)] = 1_000
    candidate_max_minutes: Annotated[int, Field(ge=1)] = 60


class IngestConfig(_Section):
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


class DataLakeConfig(_Section):
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


class BatchConfig(_Section):
    """Batch inference (`functions/batch`): a Distributed Map scores every row of the files
    under `batch/in/<job>/`, one map item per file or per `rows_per_item` rows of a large one."""

    max_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Map items scored at once (the Distributed Map's MaxConcurrency; AWS allows 10,000)."""
    rows_per_item: Annotated[int, Field(ge=1_000, le=10_000_000)] = 200_000
    """Rows per map item: a larger file is split into row ranges of this size. One item must
    be read, validated, scored and written within `timeout_seconds` and `memory_mb`."""
    tolerated_failure_percentage: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    """Share of map items (in %) that may fail (after retries) before the whole job fails; 0:
    any failed item fails the job. Rows of a failed item are counted as `not_scored`."""
    max_rejected_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Share of the job's rows (0-1) that may be rejected (bad values, unreadable records) for
    the job to end `partial`; above it the job is `failed`, as is a job that scored no row."""
    memory_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    timeout_seconds: Annotated[int, Field(ge=30, le=900)] = 300
    """Of the batch-score function. Up to 120 s the map's child workflows are EXPRESS
    (capped at 5 minutes by AWS, retries included); above, STANDARD."""
    model_version: Annotated[int, Field(ge=1)] | None = None
    """Score with this registered version; None: the version alias `production` points at
    when the job is planned (one job is scored by one version, even across a promotion)."""


class MlopsConfig(_Section):
    project: ProjectConfig = ProjectConfig()
    stages: dict[str, StageConfig] = Field(default_factory=lambda: {"dev": StageConfig()})
    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()
    serving: ServingConfig = ServingConfig()
    ingest: IngestConfig = IngestConfig()
    train: TrainConfig = TrainConfig()
    data_lake: DataLakeConfig = DataLakeConfig()
    batch: BatchConfig = BatchConfig()

    @model_validator(mode="after")
    def _estimator_fits_task(self) -> MlopsConfig:
        allowed = ESTIMATORS[self.dataset.task]
        if self.model.estimator is not None and self.model.estimator not in allowed:
            raise ValueError(
                f"model.estimator {self.model.estimator!r} is not available for "
                f"{self.dataset.task.value}; choose one of: {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _drift_columns_are_features(self) -> MlopsConfig:
        critical = self.drift.critical_features
        features = self.dataset.features
        unknown = [name for name in critical if features is not None and name not in features]
        if unknown:
            raise ValueError(
                f"drift.critical_features names column(s) not in dataset.features: {unknown}"
            )
        dropped = [name for name in critical if self.dataset.sensitive.get(name) == "drop"]
        if dropped:
            raise ValueError(
                f"drift.critical_features names column(s) dataset.sensitive drops: {dropped}"
            )
        return self

    @model_validator(mode="after")
    def _capture_kept_for_the_drift_check(self) -> MlopsConfig:
        hours = self.drift.max_window_hours + self.drift.feedback_lookback_hours
        if self.data_lake.capture_retention_days * 24 < hours:
            raise ValueError(
                f"data_lake.capture_retention_days {self.data_lake.capture_retention_days} "
                f"expires capture the drift check still reads (drift.max_window_hours + "
                f"feedback_lookback_hours = {hours} hours)"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.model.name or self.dataset.name

    @property
    def estimator(self) -> str:
        return self.model.estimator or ESTIMATORS[self.dataset.task][0]

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, value: dict[str, StageConfig]) -> dict[str, StageConfig]:
        bad = [name for name in value if not re.match(r"^[a-z][a-z0-9]{0,15}$", name)]
        if bad:
            raise ValueError(f"stage names must be short lowercase words: {bad}")
        return value

    def stage(self, name: str) -> StageConfig:
        try:
            return self.stages[name]
        except KeyError:
            known = ", ".join(sorted(self.stages)) or "none"
            raise ConfigError(
                f"stage {name!r} is not configured under [stages] (known: {known})"
            ) from None

    def for_stage(self, name: str) -> MlopsConfig:
        """The config a stage deploys with: its `[stages.<name>.<section>]` overrides merged
        over the base sections (nested tables merge key by key), validated again; errors name
        `stages.<name>.<section>.<key>`. The result keeps every stage's own settings but no
        overrides, so it is what the stage's functions receive."""
        stage = self.stage(name)
        base = self.model_dump(mode="json", exclude_unset=False)
        for section, values in stage.overrides().items():
            base[section] = _merged(base.get(section) or {}, values)
        base["stages"] = {
            key: {"removal_policy": s.removal_policy, "log_retention_days": s.log_retention_days}
            for key, s in self.stages.items()
        }
        try:
            return MlopsConfig.model_validate(base)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, f"[stages.{name}]", prefix=f"stages.{name}")) from None

    def stack_name(self, stage: str) -> str:
        return f"{self.project.name}-{stage}"

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def _describe(error: ValidationError, source: str, prefix: str = "") -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        key = (
            ".".join(
                [prefix, *(str(part) for part in item["loc"])]
                if prefix
                else [str(part) for part in item["loc"]]
            )
            or "(top level)"
        )
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file in use: `path`, else `$MLOPS_CONFIG`, else `./mlops.toml`."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_config(path: str | os.PathLike[str] | None = None) -> MlopsConfig:
    """Read and validate the TOML config; raise ConfigError naming file, key and problem."""
    import tomllib  # here: deployed functions read JSON, their cold start skips the parser

    file = config_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: config file not found (set {CONFIG_ENV} or create it)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(file))


def parse_config(raw: dict[str, Any], source: str = "config") -> MlopsConfig:
    """Validate the config and every stage's merged config (a bad override fails here too)."""
    try:
        config = MlopsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    for name in config.stages:
        try:
            config.for_stage(name)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f"[stages.{name}]", source, 1)) from None
    return config


@lru_cache(maxsize=1)
def deployed_config() -> MlopsConfig:
    """The config inside a deployed function (from `MLOPS_CONFIG_JSON`), or the file locally."""
    text = os.environ.get(CONFIG_JSON_ENV)
    if text is None:
        return load_config()
    try:
        return MlopsConfig.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"${CONFIG_JSON_ENV}")) from None
