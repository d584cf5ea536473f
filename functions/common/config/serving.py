"""The sections of a deployed model: the API (`[serving]`), batch scoring (`[batch]`) and the
drift check with the retraining it may start (`[drift]`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from functions.common.config.base import Section
from functions.common.config.serving_view import cache_problem, model_cache_bytes

_SCHEDULE = r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$"
Limits = tuple[Annotated[float, Field(ge=0.0)], Annotated[float, Field(ge=0.0)]]


class DriftConfig(Section):
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
    estimate_tolerance: Annotated[float, Field(ge=0.0, le=1.0)] | None = 0.05
    """Classifiers: the label-free estimated accuracy or macro F1 (from the calibrated
    probabilities of the captured predictions) below the serving model's held-out value by
    more than this (absolute) is an estimated performance drop, which counts as drift (an
    alarm, `DriftDetected`, retraining when `auto_retrain`); unset: estimated, never an alarm."""
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


class ServingConfig(Section):
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
    """A rollout whose sequential test has not decided by `candidate_max_minutes` is promoted
    only if the candidate served at least this many requests, else dropped."""
    candidate_max_minutes: Annotated[int, Field(ge=1)] = 60
    """How long a rollout may run undecided (checked at every capture object)."""
    canary_alpha: Annotated[float, Field(gt=0.0, le=0.2)] = 0.05
    """Largest false-rollback rate of a rollout's sequential test (an equal candidate
    dropped), shared by its error-rate and latency tests (alpha / 2 each; alpha / 3 with
    `canary_accuracy`)."""
    canary_power: Annotated[float, Field(ge=0.5, lt=1.0)] = 0.8
    """Chance of rolling back a candidate worse by the minimum effect (per metric)."""
    canary_min_effect_error_rate: Annotated[float, Field(gt=0.0, le=0.5)] = 0.01
    """Smallest error-rate increase worth a rollback, absolute (0.01: one percentage point)."""
    canary_min_effect_latency: Annotated[float, Field(gt=0.0, le=10.0)] = 0.2
    """Smallest slowdown worth a rollback, as a ratio of geometric-mean scoring latency
    minus one (0.2: 20 % slower)."""
    canary_accuracy: bool = False
    """Also test accuracy on the labels that come back through the feedback route while the
    rollout runs (then alpha / 3 per test, and a promotion waits for enough labels: 30 per
    arm, or the rollout's time limit)."""
    canary_min_effect_accuracy: Annotated[float, Field(gt=0.0, le=0.5)] = 0.02
    """A classifier's smallest accuracy drop worth a rollback, absolute (0.02: two points)."""
    canary_min_effect_abs_error: Annotated[float, Field(gt=0.0, le=10.0)] = 0.2
    """A regressor's smallest growth of its typical (geometric-mean) absolute error worth a
    rollback, minus one (0.2: 20 % larger)."""
    shadow: bool = False
    """Alias `shadow`'s version (when set: `mlops models shadow start`) scores the captured
    requests off the request path; its predictions go under `shadow/<model>/`."""
    model_cache_mb: Annotated[int, Field(ge=1, le=10240)] | None = None
    """Models kept loaded per container, by the size of their ONNX files (production, a
    candidate in rollout and versions asked for by number); unset: 1/64 of `memory_mb` (an
    onnxruntime session takes many times its file in memory: see docs/benchmarks.md).
    Past it, the least recently used are unloaded (loaded again, checksum checked, on their
    next request). The model a request needs is always loaded, even alone over the cap."""

    @model_validator(mode="after")
    def _cache_fits_memory(self) -> ServingConfig:
        problem = cache_problem(self.model_cache_mb, self.memory_mb)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def model_cache_bytes(self) -> int:
        return model_cache_bytes(self.model_cache_mb, self.memory_mb)


class BatchConfig(Section):
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
