"""Typed contracts passed between stages and through the state machine."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Contract(BaseModel):
    """A stage-to-stage or stored contract. Each class builds its validator on first use
    (`defer_build`), not at import: a function's cold start pays only for the contracts it
    uses."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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


class Retirement(Contract):
    """Why a dataset version no longer takes part in training (`mlops data retire`)."""

    at: str
    by: str
    reason: str


class DatasetRef(Contract):
    """A committed dataset version: what the ingest stage returns and training consumes."""

    dataset: str
    data_version: str = Field(description="Content hash of the cleaned rows and schema")
    manifest_key: str
    curated_prefix: str
    rows: int
    source: SourceObject
    created_at: str
    retired: Retirement | None = Field(
        default=None, description="Set once the version is retired: left out of training"
    )
    already_ingested: bool = Field(
        default=False, description="True when this object version was ingested before"
    )
    ingested: Literal[True] = Field(
        default=True,
        description="Always true; `IngestSkipped` carries false (a Choice state tests it)",
    )
    models: list[str] = Field(
        default_factory=list,
        description="The models trained on this dataset (config order): the pipeline trains "
        "each; set by the ingest stage from the config, not stored with the version",
    )


class IngestSkipped(Contract):
    """What the ingest stage returns when an event names nothing to ingest (a folder marker,
    i.e. a key ending in "/"): no dataset version exists, so later stages must not run."""

    ingested: Literal[False] = False
    reason: str = Field(description="Machine code, e.g. `folder_marker`")
    message: str
    source: SourceObject


class RetrainRequest(Contract):
    """Pipeline input that retrains one model without a new drop (from a user, or drift
    monitoring): `{"retrain": {"model": "...", "data_version": "...", "reason": "..."}}`.
    Without `model`, the default model is retrained; without a data version, the training
    set is what the model's dataset's `mode` gives for its latest version."""

    model: str | None = None
    data_version: str | None = None
    reason: str = "manual retrain"


class TrainingRun(Contract):
    """One training run (the train stage's result, `$.training` in the state machine); its
    artifacts sit under `run_prefix` until the register stage copies them to a version."""

    run_id: str = Field(description="Time-sortable, e.g. 20261126T225300Z-1a2b3c")
    model_name: str
    task: str
    estimator: str
    params: dict[str, Any] = Field(description="Hyperparameters actually used (after search)")
    data_version: str = Field(description="The dataset version that triggered the run")
    data_versions: list[str] = Field(description="Every version in the training set")
    rows_train: int
    rows_test: int
    run_prefix: str = Field(description="models/<name>/runs/<run_id>/")
    onnx_key: str
    onnx_sha256: str
    holdout_key: str = Field(description="Parquet of the held-out rows (features + target)")
    signature_key: str
    reference_profile_key: str
    run_record_key: str
    started_at: str
    code_version: str


class TrainingSkipped(Contract):
    """The train stage's result (`$.training`) when a drop's training set is one already
    trained on (the same data versions, config and code): nothing is trained or evaluated."""

    skipped: Literal["unchanged"] = "unchanged"
    run_id: str = Field(description="The record of the skip, in the runs list")
    same_as: str = Field(description="The run that trained on this training set")
    data_version: str
    data_versions: list[str]
    training_key: str = Field(description="Hash of data versions, config and code version")


class Criterion(Contract):
    """One gate criterion and its outcome (MLflow `MetricThreshold` semantics)."""

    metric: str
    kind: Literal["threshold", "min_absolute_change", "min_relative_change", "max_difference"]
    candidate: float | None
    champion: float | None = None
    bound: float
    greater_is_better: bool
    passed: bool
    message: str


class EvaluationResult(Contract):
    """The evaluate stage's result (`$.evaluation`): candidate vs champion on held-out rows."""

    run_id: str
    metrics: dict[str, float]
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None
    criteria: list[Criterion]
    passed: bool
    failed: list[str] = Field(description="Messages of the failed criteria (for the alert)")
    evaluation_key: str


class ModelVersion(Contract):
    """A registered model version (the register stage's result, `$.model`)."""

    model_name: str
    version: int
    prefix: str = Field(description="models/<name>/<version>/")
    onnx_key: str
    onnx_sha256: str
    run_id: str
    data_version: str
    data_versions: list[str]
    metrics: dict[str, float]
    created_at: str
    model_card_key: str
    promoted: bool
    previous_version: int | None = None
    code_version: str | None = Field(
        default=None, description="Commit of the code that trained it (lineage)"
    )


class ExecutionInfo(Contract):
    """The Step Functions execution, recorded into the state by its first step."""

    id: str


class PipelineState(BaseModel):
    """The state the pipeline's training-side tasks receive: one iteration of the Map over
    the models to train. `model` names the model (None: the default model); `trigger` is what
    started the execution, `{"dataset": <the ingested version>}` for a drop or
    `{"retrain": <the request>}`, read here as `dataset` and `retrain`. Train adds
    `training`, evaluate `evaluation`, register `registered`; other fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    model: str | None = None
    execution: ExecutionInfo | None = None
    dataset: DatasetRef | None = None
    retrain: RetrainRequest | None = None
    training: TrainingRun | None = None
    evaluation: EvaluationResult | None = None

    @model_validator(mode="before")
    @classmethod
    def _trigger_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("trigger"), dict):
            trigger = data["trigger"]
            return {
                **{key: trigger[key] for key in ("dataset", "retrain") if key in trigger},
                **{key: value for key, value in data.items() if key != "trigger"},
            }
        return data

    def trained_model(self) -> str:
        """The model of the state's training run; a ValueError when the state is for another
        model (a stage invoked for `model` works on that model's run only)."""
        if self.training is None:
            raise ValueError("the pipeline state has no `training` run")
        name = self.training.model_name
        if self.model is not None and self.model != name:
            raise ValueError(
                f"the state is for model {self.model!r} but its training run "
                f"{self.training.run_id} is of model {name!r}"
            )
        return name


def model_outcome(output: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """A model's outcome in a pipeline execution's output (`$.models.outcomes`: its `status`,
    `training`, `evaluation`, `registered` or `error`); without `model`, the execution's only
    one. A KeyError naming the models the execution trained when there is no such outcome."""
    outcomes = output.get("models", {}).get("outcomes", [])
    found = [o for o in outcomes if model is None or o.get("model") == model]
    if len(found) != 1:
        trained = [o.get("model") for o in outcomes]
        wanted = f"model {model!r}" if model else "one model"
        raise KeyError(f"no outcome of {wanted} in the execution (it trained {trained})")
    return dict(found[0])


class AliasState(Contract):
    """Where a model's alias (e.g. "production") points now, and why it was last moved."""

    model_name: str
    alias: str
    version: int
    previous_version: int | None = Field(description="What the alias pointed to before")
    updated_at: str
    execution: str | None = Field(description="Who moved it: a pipeline execution or the CLI")
    reason: str
    revision: int = Field(description="Counts the alias's changes; history is kept per revision")


class AliasChange(Contract):
    """One change of an alias (a promotion, a rollback, or a drop that removes the alias), as
    recorded in its history."""

    model_name: str
    alias: str
    kind: Literal["promote", "rollback", "drop"]
    from_version: int | None
    to_version: int | None = Field(description="None when the alias was dropped")
    at: str
    reason: str
    execution: str | None = None
    revision: int


LATENCY_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000)
"""Upper bounds of the serving-latency histogram's buckets; one more bucket holds the rest."""


class ServingStats(Contract):
    """What one version served under one alias during one rollout (summed over containers)."""

    alias: str
    version: int
    requests: int = 0
    errors: int = Field(default=0, description="Model failures (5xx); client errors not counted")
    latency_ms_sum: float = 0.0
    latency_histogram: list[int] = Field(
        default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1),
        description="Counts per `LATENCY_BUCKETS_MS` bucket, then beyond the last bound",
    )
    latency_count: int = Field(
        default=0, description="Successful requests with a scoring time (the latency test's n)"
    )
    log_latency_sum: float = Field(default=0.0, description="Sum of ln(latency_ms) over them")
    log_latency_sq_sum: float = Field(default=0.0, description="Sum of ln(latency_ms) squared")
    labeled: int = Field(
        default=0, description="Requests whose true label came back (the accuracy test's n)"
    )
    misses: int = Field(default=0, description="A classifier's labeled predictions that missed")
    log_abs_error_sum: float = Field(
        default=0.0, description="A regressor's sum of ln|prediction - label|"
    )
    log_abs_error_sq_sum: float = Field(default=0.0, description="Its sum of squares")

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None


class SequentialTestRecord(Contract):
    """One metric's sequential test (Wald's SPRT, `functions.ml.sequential`) at a rollout's
    decision: the log-likelihood ratio, its boundaries and the sample sizes."""

    metric: Literal["error_rate", "latency", "accuracy"]
    outcome: Literal["rollback", "promote", "continue"]
    statistic: float = Field(description="Log-likelihood ratio of 'worse by effect' vs 'equal'")
    upper: float = Field(description="Rollback at or above: ln((1 - beta) / alpha)")
    lower: float = Field(description="Promote at or below: ln(beta / (1 - alpha))")
    difference: float = Field(
        description="Candidate minus production (error or miss rate, mean ln ms or ln|error|)"
    )
    variance: float
    effect: float
    alpha: float
    beta: float
    candidate_n: int
    production_n: int


class RolloutDecision(Contract):
    """The end of a rollout: alias `candidate` promoted to production, or dropped. Recorded
    once per rollout (`rollout` is the candidate alias's revision)."""

    model_name: str
    rollout: int
    outcome: Literal["promote", "drop"]
    candidate_version: int
    production_version: int | None
    reason: str
    candidate: ServingStats
    production: ServingStats | None = None
    decided_at: str
    tests: list[SequentialTestRecord] = Field(
        default_factory=list,
        description="Each metric's sequential test as read at the decision (none before "
        "rollouts were decided by a sequential test)",
    )
    expired: bool = Field(
        default=False, description="Decided at `candidate_max_minutes`, the tests undecided"
    )


class TrainingJobResult(Contract):
    """What the SageMaker task keeps of the job's DescribeTrainingJob output."""

    name: str
    status: str
    model_artifacts: str = Field(description="s3:// URI of the job's model.tar.gz")


class TrainingJob(Contract):
    """A SageMaker training job set up for one run (`$.training_job`, `[train] backend =
    "sagemaker"`): the Prepare step fills it, the SageMaker task adds `result`, the Collect
    step turns it into the `TrainingRun`."""

    job_name: str = Field(description="<job prefix><run_id>, at most 63 characters")
    run_id: str
    model_name: str
    train_manifest_uri: str = Field(description="ManifestFile of the `train` channel")
    spec_uri: str = Field(description="S3 prefix of the `spec` channel (job.json)")
    output_uri: str = Field(description="Where the job writes: the model's sagemaker/ prefix")
    hyperparameters: dict[str, str]
    result: TrainingJobResult | None = None


class TrainingJobState(BaseModel):
    """The state the Collect step receives: the execution and the finished job."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    execution: ExecutionInfo | None = None
    training_job: TrainingJob
