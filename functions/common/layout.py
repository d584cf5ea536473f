"""The one home of every name the data bucket and the registry table are laid out by, for the
functions, the CDK grants, the CLI and the local cloud alike: S3 prefixes, keys and artifact
file names; the registry table's key formats; a SageMaker training job's folders, channels and
names; and what each writer puts where (`bucket_writes`, which the infra tests check against
the grants). No third-party imports: the CDK app reads these at synth.

The data bucket:

    raw/<dataset>/...                      drops (producers choose every character below)
    raw/<dataset>/feedback/<check>.jsonl   labelled feedback the monitor turns into a drop
    quarantine/files/<dataset>/<file>      a bad drop's copy          (ingest only)
    quarantine/reasons/<dataset>/<file>.reason.json  why               (ingest only)
    curated/<dataset>/<data version>/      data.parquet, manifest.json
    models/<model>/runs/<run id>/          model.onnx, signature.json, holdout.parquet,
                                           reference_profile.json, run.json, evaluation.json
    models/<model>/<version>/              a registered version: the run's files + metadata.json
    models/<model>/<version>/mlflow/       the version in MLflow's model format (MLmodel, ...)
    models/<model>/sagemaker/<job>/        a SageMaker training job's input and output
    reports/<model>/<version>/model_card.html, model_card.json (Model Card Toolkit schema)
    reports/drift/<model>/<check>/         result.json, report.html
    capture/dt=<day>/...                   served requests (Firehose); capture-errors/ beside
    feedback/dt=<day>/<request>-<row>.json labels posted to the serving API
    shadow/<model>/dt=<day>/<capture object>.jsonl  alias shadow's predictions of captured requests
    batch/in/<model>/<job>/...             a batch job's input files (and its _START marker)
    batch/out/<model>/<job>/...            its predictions, rejects, plan, item results, manifest
    lineage/dt=<day>/<job>/<run id>-<event type>.json  OpenLineage run events of every step
    audit/erasure/<erasure id>.json        erasure audit records
    migrations/<migration>/checkpoint.json `mlops migrate` progress (operator only)
    migrations/audit/<run id>.json         `mlops migrate` audit records (operator only)

Producers choose every character of a key under `raw/`, so nothing ingest writes may share a
namespace with what a drop maps to: a quarantined copy goes under `quarantine/files/`, its
reason under `quarantine/reasons/` (a drop named `x.csv.reason.json` is quarantined as a
file, beside no reason). Each mapping is one-to-one and the two prefixes never meet. The bucket
policy lets only the ingest function (and the erasure role) write under `quarantine/`, whatever
a producer's own policy grants.

The registry table (pk, sk), dataset side:
- dataset version: pk=`DATASET#<name>`, sk=`VERSION#<data_version>`.
- dataset contract: pk=`DATASET#<name>`, sk=`CONTRACT`.
- class set of a classification target: pk=`DATASET#<name>`, sk=`CLASSES`.

Model side:

- training run: pk=`RUNS#<model>`, sk=`RUN#<run_id>`; run ids sort by time.
- training set: pk=`RUNS#<model>`, sk=`TRAINSET#<training key>`.
- model version: pk=`MODEL#<model>`, sk=`VERSION#<version, 8 digits>`.
- version counter: pk=`MODEL#<model>`, sk=`COUNTER`.
- alias: pk=`MODEL#<model>`, sk=`ALIAS#<alias>`.
- alias history: pk=`MODEL#<model>`, sk=`HISTORY#<alias>#<revision, 8 digits>`.
- serving stats of a rollout: pk=`MODEL#<model>`,
  sk=`STATS#<rollout, 8 digits>#<alias>#<version, 8 digits>`.
- rollout decision: pk=`MODEL#<model>`, sk=`ROLLOUT#<rollout, 8 digits>`.
- capture object counted for a rollout: pk=`MODEL#<model>`, sk=`COUNTED#<object key>`
  (written with the counters it added, so an object is counted once; expires after 30 days).

Idempotency: the ingest function's records, pk=`IDEMPOTENCY#ingest`.

Monitor side:

- drift monitor state: pk=`MONITOR#<model>`, sk=`STATE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Artifact file names

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
HOLDOUT_FILE = "holdout.parquet"
REFERENCE_PROFILE_FILE = "reference_profile.json"
RUN_FILE = "run.json"
EVALUATION_FILE = "evaluation.json"
METADATA_FILE = "metadata.json"
MLFLOW_FOLDER = "mlflow"
"""A registered version's metadata (beside the run's files under `models/<model>/<version>/`)."""
METRICS_FILE = "metrics.json"
"""Local training's metrics (`mlops train-local`)."""
MODEL_CARD_FILE = "model_card.html"
MODEL_CARD_JSON_FILE = "model_card.json"
"""The model card as Model Card Toolkit JSON, beside the HTML card."""
DATA_FILE = "data.parquet"
"""A curated data version's rows."""
MANIFEST_FILE = "manifest.json"
"""A curated data version's manifest; also a batch job's summary."""
RESULT_FILE = "result.json"
"""A drift check's result."""
REPORT_FILE = "report.html"
"""A drift check's report."""

# Drops and quarantine

RAW_PREFIX = "raw/"
"""Producers drop files under `raw/<dataset>/`."""
QUARANTINE_PREFIX = "quarantine/"
"""Written by ingest only (bucket policy)."""
QUARANTINED_FILES_PREFIX = f"{QUARANTINE_PREFIX}files/"
"""A bad drop's copy (that raw object version): `quarantine/files/<dataset>/<file>`."""
QUARANTINE_REASONS_PREFIX = f"{QUARANTINE_PREFIX}reasons/"
"""Why a drop was quarantined: `quarantine/reasons/<dataset>/<file>.reason.json`."""
REASON_SUFFIX = ".reason.json"
FEEDBACK_DROPS = "feedback/"
"""Under a dataset's drops: labelled feedback the monitor turns into a drop."""


def drops_prefix(dataset: str) -> str:
    """Where producers drop files of `dataset`: `raw/<dataset>/`."""
    return f"{RAW_PREFIX}{dataset}/"


def feedback_drops_prefix(dataset: str) -> str:
    """Where the monitor drops labelled feedback rows: `raw/<dataset>/feedback/`."""
    return f"{drops_prefix(dataset)}{FEEDBACK_DROPS}"


def feedback_drop_key(dataset: str, check_id: str) -> str:
    return f"{feedback_drops_prefix(dataset)}{check_id}.jsonl"


def _under_raw(raw_key: str) -> str:
    if not raw_key.startswith(RAW_PREFIX) or raw_key == RAW_PREFIX:
        raise ValueError(f"{raw_key!r} is not a drop: drops are keys under {RAW_PREFIX}")
    return raw_key.removeprefix(RAW_PREFIX)


def quarantine_key(raw_key: str) -> str:
    """The key of the quarantined copy of the drop at `raw_key` (`raw/<dataset>/<file>`)."""
    return QUARANTINED_FILES_PREFIX + _under_raw(raw_key)


def reason_key(raw_key: str) -> str:
    """The key of the reason record of the drop at `raw_key` (`raw/<dataset>/<file>`)."""
    return QUARANTINE_REASONS_PREFIX + _under_raw(raw_key) + REASON_SUFFIX


def raw_key_of_reason(key: str) -> str:
    """The drop a reason record at `key` is about: the inverse of `reason_key`."""
    if not key.startswith(QUARANTINE_REASONS_PREFIX) or not key.endswith(REASON_SUFFIX):
        raise ValueError(
            f"{key!r} is not a reason record ({QUARANTINE_REASONS_PREFIX}...{REASON_SUFFIX})"
        )
    return RAW_PREFIX + key.removeprefix(QUARANTINE_REASONS_PREFIX).removesuffix(REASON_SUFFIX)


# Curated data

CURATED_PREFIX = "curated/"


def curated_prefix(dataset: str) -> str:
    """Every curated version of `dataset`: `curated/<dataset>/`."""
    return f"{CURATED_PREFIX}{dataset}/"


def data_version_prefix(dataset: str, data_version: str) -> str:
    """One curated version: `curated/<dataset>/<data version>/`."""
    return f"{curated_prefix(dataset)}{data_version}/"


# Models

MODELS_PREFIX = "models/"


def model_prefix(model: str) -> str:
    return f"{MODELS_PREFIX}{model}/"


def runs_prefix(model: str) -> str:
    """Every training run's artifacts: `models/<model>/runs/`."""
    return f"{model_prefix(model)}runs/"


def run_prefix(model: str, run_id: str) -> str:
    return f"{runs_prefix(model)}{run_id}/"


def version_prefix(model: str, version: int) -> str:
    """A registered version's artifacts: `models/<model>/<version>/`."""
    return f"{model_prefix(model)}{version}/"


def mlflow_prefix(model: str, version: int) -> str:
    """A registered version in MLflow's model format: `models/<model>/<version>/mlflow/`
    (`functions.ml.mlflow_format` names its files)."""
    return f"{version_prefix(model, version)}{MLFLOW_FOLDER}/"


def sagemaker_prefix(model: str) -> str:
    """Where training jobs read their spec and write their output: `models/<model>/sagemaker/`."""
    return f"{model_prefix(model)}sagemaker/"


# Reports

REPORTS_PREFIX = "reports/"
DRIFT_REPORTS_PREFIX = f"{REPORTS_PREFIX}drift/"


def model_reports_prefix(model: str) -> str:
    """The model cards of `model`'s versions: `reports/<model>/`."""
    return f"{REPORTS_PREFIX}{model}/"


def model_card_key(model: str, version: int) -> str:
    return f"{model_reports_prefix(model)}{version}/{MODEL_CARD_FILE}"


def model_card_json_key(model: str, version: int) -> str:
    """The Model Card Toolkit document beside the HTML card."""
    return f"{model_reports_prefix(model)}{version}/{MODEL_CARD_JSON_FILE}"


def drift_reports_prefix(model: str) -> str:
    """Every drift check of `model`: `reports/drift/<model>/<check>/`."""
    return f"{DRIFT_REPORTS_PREFIX}{model}/"


def drift_check_prefix(model: str, check_id: str) -> str:
    return f"{drift_reports_prefix(model)}{check_id}/"


# Serving: capture and feedback

CAPTURE_PREFIX = "capture/"
"""Served requests, delivered by Firehose under `capture/dt=<day>/`."""
CAPTURE_ERRORS_PREFIX = "capture-errors/"
"""Records Firehose could not deliver under capture/ (kept apart so drift never reads them)."""
FEEDBACK_PREFIX = "feedback/"
"""Labels posted to the serving API: `feedback/dt=<day>/<request id>-<row>.json`."""
DAY_PARTITION = "dt="
"""Capture and feedback are partitioned by day: `dt=<yyyy-mm-dd>/`."""


def capture_day_prefix(day: str) -> str:
    return f"{CAPTURE_PREFIX}{DAY_PARTITION}{day}/"


SHADOW_PREFIX = "shadow/"
"""Alias `shadow`'s predictions of captured requests (the shadow scorer), outside `capture/` so
nothing that reads or is triggered by capture objects sees them."""


def shadow_prefix(model: str) -> str:
    return f"{SHADOW_PREFIX}{model}/"


def shadow_key(model: str, day: str, capture_key: str) -> str:
    """Where the shadow records of capture object `capture_key` go: one object per capture
    object, named after it, so a repeated delivery rewrites the same key."""
    name = capture_key.rsplit("/", 1)[-1]
    return f"{shadow_prefix(model)}{DAY_PARTITION}{day}/{name}.jsonl"


def feedback_key(request_id: str, row: int, day: str) -> str:
    return f"{FEEDBACK_PREFIX}{DAY_PARTITION}{day}/{request_id}-{row}.json"


# Batch scoring

BATCH_PREFIX = "batch/"
BATCH_IN_PREFIX = f"{BATCH_PREFIX}in/"
"""Batch inference inputs, one folder per model and job: `batch/in/<model>/<job>/` (a
`_START` marker starts the job, scored by that model). Releases before issue 19 had no model
folder (`batch/in/<job>/`): `mlops migrate` moves those jobs under the default model."""
BATCH_OUT_PREFIX = f"{BATCH_PREFIX}out/"
"""Batch inference outputs per model and job (`batch/out/<model>/<job>/`): predictions
(Parquet), rejects, item results, manifest."""
BATCH_START_MARKER = "_START"
"""The object under `batch/in/<model>/<job>/` whose creation starts the job."""
JOB_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
"""A job's name: 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit."""


def batch_inputs_prefix(model: str) -> str:
    """Every batch job of `model`: `batch/in/<model>/`."""
    return f"{BATCH_IN_PREFIX}{model}/"


def batch_outputs_prefix(model: str) -> str:
    """Every batch job's outputs of `model`: `batch/out/<model>/`."""
    return f"{BATCH_OUT_PREFIX}{model}/"


def job_inputs(model: str, job: str) -> str:
    return f"{batch_inputs_prefix(model)}{job}/"


def job_outputs(model: str, job: str) -> str:
    return f"{batch_outputs_prefix(model)}{job}/"


def job_of_start_marker(key: str) -> tuple[str, str]:
    """(model, job) of a `batch/in/<model>/<job>/_START` marker's key.

    Raises:
        ValueError: the key is not one (a marker of the layout before model folders,
            `batch/in/<job>/_START`, included: its message says where jobs go now).
    """
    parts = key.removeprefix(BATCH_IN_PREFIX).split("/")
    if not key.startswith(BATCH_IN_PREFIX) or parts[-1] != BATCH_START_MARKER:
        raise ValueError(f"{key!r} is not a {BATCH_START_MARKER} marker under {BATCH_IN_PREFIX}")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError(
            f"{key!r} is not under {BATCH_IN_PREFIX}<model>/<job>/: a job's files and its "
            f"{BATCH_START_MARKER} marker go in a folder of the model that scores them"
        )
    return parts[0], parts[1]


def plan_key(model: str, job: str) -> str:
    return f"{job_outputs(model, job)}_plan/plan.json"


def items_key(model: str, job: str) -> str:
    return f"{job_outputs(model, job)}_plan/items.json"


def item_results_prefix(model: str, job: str) -> str:
    return f"{job_outputs(model, job)}_items/"


def item_result_key(model: str, job: str, item: int) -> str:
    return f"{item_results_prefix(model, job)}{item:06d}.json"


def scored_key(model: str, job: str, stem: str, start: int, end: int) -> str:
    """The scored rows `start`..`end` of input file `stem`."""
    return f"{job_outputs(model, job)}{stem}-{start}-{end}.parquet"


def rejected_key(model: str, job: str, stem: str, start: int, end: int) -> str:
    """The rejected rows among rows `start`..`end` of input file `stem`."""
    return f"{job_outputs(model, job)}rejects/{stem}-{start}-{end}.jsonl"


def manifest_key(model: str, job: str) -> str:
    return f"{job_outputs(model, job)}{MANIFEST_FILE}"


# Erasure

ERASURE_AUDIT_PREFIX = "audit/erasure/"
"""One record per `mlops erase`: what was erased, by whom, why (the subject only hashed)."""


def erasure_audit_key(erasure_id: str) -> str:
    return f"{ERASURE_AUDIT_PREFIX}{erasure_id}.json"


# Lineage (OpenLineage run events of the stages, batch jobs and drift checks)

LINEAGE_PREFIX = "lineage/"
"""Every OpenLineage run event, one JSON object each, by day and job."""

LINEAGE_WRITERS = frozenset(
    {"ingest", "train", "train-collect", "evaluate", "register", "monitor"}
    | {"batch-plan", "batch-finalize"}
)
"""The functions that emit run events (and may write under `lineage/`, nothing else there)."""


def lineage_event_key(day: str, job: str, run_id: str, event_type: str) -> str:
    """`lineage/dt=<YYYY-MM-DD>/<job>/<run id>-<event type>.json` (the event's UTC day)."""
    return f"{LINEAGE_PREFIX}{DAY_PARTITION}{day}/{job}/{run_id}-{event_type}.json"


# Migrations (`mlops migrate`, with the operator's credentials; no function reads them)

MIGRATIONS_PREFIX = "migrations/"
"""`mlops migrate`'s checkpoints and audit records."""


def migration_checkpoint_key(migration: str) -> str:
    """How far the last run of `migration` got: `migrations/<migration>/checkpoint.json`."""
    return f"{MIGRATIONS_PREFIX}{migration}/checkpoint.json"


def migration_audit_key(run_id: str) -> str:
    """What one `mlops migrate --apply` run changed: `migrations/audit/<run id>.json`."""
    return f"{MIGRATIONS_PREFIX}audit/{run_id}.json"


ERASED_PREFIXES = (
    RAW_PREFIX,
    QUARANTINE_PREFIX,
    CURATED_PREFIX,
    CAPTURE_PREFIX,
    FEEDBACK_PREFIX,
    SHADOW_PREFIX,
)
"""Where personal data may be: what an erasure rewrites."""


# Registry table keys

VERSION_PREFIX = "VERSION#"
"""Sort keys of versions: a dataset's data versions and a model's versions."""
CONTRACT_SORT_KEY = "CONTRACT"
CLASSES_SORT_KEY = "CLASSES"
RUN_PREFIX = "RUN#"
TRAINSET_PREFIX = "TRAINSET#"
COUNTER_SORT_KEY = "COUNTER"
ALIAS_PREFIX = "ALIAS#"
HISTORY_PREFIX = "HISTORY#"
STATS_PREFIX = "STATS#"
ROLLOUT_PREFIX = "ROLLOUT#"
COUNTED_PREFIX = "COUNTED#"
STATE_SORT_KEY = "STATE"


TTL_ATTRIBUTE = "expiration"
"""The registry table's time-to-live attribute (epoch seconds)."""

INGEST_IDEMPOTENCY_KEY = "IDEMPOTENCY#ingest"
"""The partition of the ingest function's idempotency records."""


def dataset_key(dataset: str) -> str:
    return f"DATASET#{dataset}"


def runs_key(model: str) -> str:
    return f"RUNS#{model}"


def model_key(model: str) -> str:
    return f"MODEL#{model}"


def monitor_key(model: str) -> str:
    return f"MONITOR#{model}"


def data_version_sort_key(data_version: str) -> str:
    return f"{VERSION_PREFIX}{data_version}"


def run_sort_key(run_id: str) -> str:
    return f"{RUN_PREFIX}{run_id}"


def training_set_sort_key(training_key: str) -> str:
    return f"{TRAINSET_PREFIX}{training_key}"


def version_sort_key(version: int) -> str:
    return f"{VERSION_PREFIX}{version:08d}"


def alias_sort_key(alias: str) -> str:
    return f"{ALIAS_PREFIX}{alias}"


def history_prefix(alias: str) -> str:
    """Every history item of `alias`."""
    return f"{HISTORY_PREFIX}{alias}#"


def history_sort_key(alias: str, revision: int) -> str:
    return f"{history_prefix(alias)}{revision:08d}"


def stats_prefix(rollout: int) -> str:
    """The serving stats of every alias and version during `rollout`."""
    return f"{STATS_PREFIX}{rollout:08d}#"


def stats_sort_key(rollout: int, alias: str, version: int) -> str:
    return f"{stats_prefix(rollout)}{alias}#{version:08d}"


def rollout_sort_key(rollout: int) -> str:
    return f"{ROLLOUT_PREFIX}{rollout:08d}"


def counted_sort_key(object_key: str) -> str:
    """The marker of a capture object whose requests were added to a rollout's counters."""
    return f"{COUNTED_PREFIX}{object_key}"


# SageMaker training jobs (a job's S3 prefix is `sagemaker_prefix`)

SAGEMAKER_ROOT_ENV = "MLOPS_SAGEMAKER_ROOT"
"""Where the SageMaker layout is (`/opt/ml` in a training job); the local cloud and the tests
point it at a temporary folder."""
SAGEMAKER_ROOT = "/opt/ml"
JOB_PREFIX_ENV = "SAGEMAKER_JOB_PREFIX"
"""Every training job's name starts with this (the state machine may only touch those)."""
TRAIN_CHANNEL = "train"
SPEC_CHANNEL = "spec"
SPEC_FILE = "job.json"
MAX_JOB_NAME = 63
"""SageMaker's limit on a training job name."""


@dataclass(frozen=True)
class SageMakerLayout:
    """The folders SageMaker gives a training container, under `root` (`/opt/ml`)."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> SageMakerLayout:
        return cls(Path(root or os.environ.get(SAGEMAKER_ROOT_ENV) or SAGEMAKER_ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.root / "input" / "config" / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.root / "input" / "config" / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        """SageMaker reports this file's text as the job's FailureReason."""
        return self.root / "output" / "failure"


# What each writer writes


def bucket_writes(model: str, dataset: str) -> dict[str, tuple[str, ...]]:
    """{writer: the prefixes it writes under} for `model` trained on `dataset`. Writers are the
    stage functions (by their function name) and the non-function writers: `capture` (the
    Firehose delivery), `erasure` (the erasure role) and `sagemaker-job` (a training job).
    The infra tests check each prefix against the writer's role in the synthesized template,
    so a write added here without its grant, or a grant narrowed below a write, fails them."""
    writes = {
        "ingest": (
            curated_prefix(dataset),
            QUARANTINED_FILES_PREFIX,
            QUARANTINE_REASONS_PREFIX,
        ),
        "train": (runs_prefix(model),),
        "train-prepare": (sagemaker_prefix(model),),
        "sagemaker-job": (sagemaker_prefix(model),),
        "train-collect": (runs_prefix(model),),
        "evaluate": (runs_prefix(model),),
        "register": (model_prefix(model), model_reports_prefix(model)),
        "predict": (FEEDBACK_PREFIX,),
        "capture": (CAPTURE_PREFIX, CAPTURE_ERRORS_PREFIX),
        "monitor": (drift_reports_prefix(model), feedback_drops_prefix(dataset)),
        "batch-plan": (batch_outputs_prefix(model),),
        "batch-score": (batch_outputs_prefix(model),),
        "batch-finalize": (batch_outputs_prefix(model),),
        "shadow": (shadow_prefix(model),),
        "erasure": (*ERASED_PREFIXES, ERASURE_AUDIT_PREFIX),
    }
    return {
        writer: (*prefixes, LINEAGE_PREFIX) if writer in LINEAGE_WRITERS else prefixes
        for writer, prefixes in writes.items()
    }


SAGEMAKER_WRITERS = frozenset({"train-prepare", "sagemaker-job", "train-collect"})
"""Writers only with `[train] backend = "sagemaker"` (`train` only without)."""
SHADOW_WRITERS = frozenset({"shadow"})
"""Writers only when a model has `[serving] shadow = true`."""
