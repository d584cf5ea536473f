"""Training on SageMaker (`[train] backend = "sagemaker"`): the same `Trainer` as the train
function, run as a SageMaker training job between two small steps of the pipeline.

- `prepare` (Lambda): resolves the training set exactly as the train function does
  (`training_versions`), then writes, under `models/<name>/sagemaker/<job>/input/`, the job
  spec (`spec/job.json`: run id, the versions and their manifests, the config, code version,
  execution) and the `train` channel's manifest file (the curated Parquet files to copy).
- the training job: SageMaker copies the channels to `/opt/ml/input/data/<channel>/`, writes
  `/opt/ml/input/config/hyperparameters.json` and runs the image's `train` program
  (`functions.train.sagemaker_entry`), which writes the run's artifacts and its record to
  `/opt/ml/model/`; SageMaker uploads that folder as `<output>/<job>/output/model.tar.gz`.
- `collect` (Lambda): unpacks model.tar.gz into `models/<name>/runs/<run_id>/` (the run
  record last), records the run in the registry and returns the `TrainingRun` that Evaluate
  reads, as the train function would have.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Any

from pydantic import BaseModel, ConfigDict

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.loading import MlopsConfig, deployed_model_config
from functions.common.contracts import (
    DatasetRef,
    PipelineState,
    TrainingJob,
    TrainingJobState,
    TrainingRun,
)
from functions.common.errors import ModelRegistryError
from functions.common.layout import (
    CURATED_PREFIX,
    JOB_PREFIX_ENV,
    MAX_JOB_NAME,
    RUN_FILE,
    SPEC_CHANNEL,
    SPEC_FILE,
    TRAIN_CHANNEL,
    SageMakerLayout,
    sagemaker_prefix,
)
from functions.common.observability import logger
from functions.common.settings import stage_settings
from functions.train.logic import (
    Trainer,
    deployed_code_dir,
    model_factory,
    new_run_id,
    record_trained,
    requested_version,
    training_versions,
)


class TrainingJobError(ModelRegistryError, RuntimeError):
    """The training job's output is not the run it was started for."""


class JobSpec(BaseModel):
    """Everything the training container needs besides the data (the `spec` channel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    job_name: str
    bucket: str
    trigger: DatasetRef
    versions: list[DatasetRef]
    manifests: dict[str, dict[str, Any]]
    """data version -> its manifest.json (schema, target, task, files)."""
    config: dict[str, Any]
    code_version: str
    execution: str | None = None


def train_manifest(bucket: str, spec: JobSpec) -> list[Any]:
    """A SageMaker ManifestFile: the common prefix, then each curated Parquet file's key
    relative to it. SageMaker copies each to `/opt/ml/input/data/train/<relative key>`."""
    files = [
        key.removeprefix(CURATED_PREFIX)
        for version in spec.versions
        for key in spec.manifests[version.data_version]["files"]
    ]
    return [{"prefix": f"s3://{bucket}/{CURATED_PREFIX}"}, *files]


def prepare(state: PipelineState) -> TrainingJob:
    """Set up the training job of the state's model for the pipeline state's dataset
    version."""
    config = deployed_model_config(state.model)
    settings = stage_settings()
    store, bucket = ObjectStore(), settings.data_bucket
    trigger, versions = training_versions(
        DatasetRegistry(settings.registry_table).list_versions(config.dataset.name),
        config.dataset.mode,
        requested_version(state),
    )
    run_id = new_run_id()
    job_name = f"{os.environ[JOB_PREFIX_ENV]}{run_id}"
    if len(job_name) > MAX_JOB_NAME:
        raise ValueError(f"training job name {job_name!r} is over {MAX_JOB_NAME} characters")
    spec = JobSpec(
        run_id=run_id,
        job_name=job_name,
        bucket=bucket,
        trigger=trigger,
        versions=versions,
        manifests={
            v.data_version: formats.read(
                formats.DATASET_MANIFEST, store.get_json(bucket, v.manifest_key)
            )
            for v in versions
        },
        config=config.model_dump(mode="json"),
        code_version=settings.code_version,
        execution=state.execution.id if state.execution else None,
    )
    inputs = f"{sagemaker_prefix(config.model_name)}{job_name}/input/"
    store.put_json(bucket, f"{inputs}{SPEC_CHANNEL}/{SPEC_FILE}", spec.model_dump(mode="json"))
    store.put_json(bucket, f"{inputs}train.manifest", train_manifest(bucket, spec))
    logger.info("Training job prepared", extra={"job_name": job_name, "run_id": run_id})
    return TrainingJob(
        job_name=job_name,
        run_id=run_id,
        model_name=config.model_name,
        train_manifest_uri=f"s3://{bucket}/{inputs}train.manifest",
        spec_uri=f"s3://{bucket}/{inputs}{SPEC_CHANNEL}/",
        output_uri=f"s3://{bucket}/{sagemaker_prefix(config.model_name)}",
        hyperparameters={"run_id": run_id, "spec": SPEC_FILE},
    )


@dataclass(frozen=True)
class ChannelTrainingData:
    """The training set as SageMaker copied it: manifests from the job spec, Parquet files
    under the `train` channel by their key relative to `curated/`."""

    channel: Path
    manifests: dict[str, dict[str, Any]]

    def manifest(self, version: DatasetRef) -> dict[str, Any]:
        return self.manifests[version.data_version]

    def parquet(self, key: str, workdir: Path) -> Path:
        path = self.channel / key.removeprefix(CURATED_PREFIX)
        if not path.is_file():
            raise FileNotFoundError(f"{key} is not in the {TRAIN_CHANNEL} channel ({path})")
        return path


@dataclass(frozen=True)
class DirectoryArtifacts:
    """Artifacts written to the model folder by file name; Collect puts them at their keys."""

    directory: Path

    def _path(self, key: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / PurePosixPath(key).name

    def put_bytes(self, key: str, data: bytes) -> None:
        self._path(key).write_bytes(data)

    def put_json(self, key: str, document: Any) -> None:
        self._path(key).write_text(json.dumps(document, default=str), encoding="utf-8")

    def upload_file(self, path: Path, key: str) -> None:
        self._path(key).write_bytes(path.read_bytes())


def train_in_layout(layout: SageMakerLayout) -> TrainingRun:
    """The training job's work: the run the spec describes, artifacts into the model folder."""
    hyperparameters = json.loads(layout.hyperparameters.read_text(encoding="utf-8"))
    spec_file = layout.channel(SPEC_CHANNEL) / hyperparameters.get("spec", SPEC_FILE)
    spec = JobSpec.model_validate_json(spec_file.read_text(encoding="utf-8"))
    if hyperparameters.get("run_id") != spec.run_id:
        raise ValueError(
            f"hyperparameter run_id {hyperparameters.get('run_id')!r} is not the spec's "
            f"{spec.run_id!r}"
        )
    config = MlopsConfig.model_validate(spec.config)
    trainer = Trainer(
        config,
        ChannelTrainingData(layout.channel(TRAIN_CHANNEL), spec.manifests),
        DirectoryArtifacts(layout.model_dir),
        spec.bucket,
        spec.code_version,
        factory=model_factory(config, deployed_code_dir(config)),
    )
    return trainer.run(spec.trigger, spec.versions, execution=spec.execution, run_id=spec.run_id)


RUN_FILES = ("onnx_key", "signature_key", "holdout_key", "reference_profile_key")


def collect(state: TrainingJobState) -> TrainingRun:
    """Put the finished job's artifacts where the train function would have, and record the
    run; the run record (run.json, then the registry) is written last."""
    job, settings = state.training_job, stage_settings()
    if job.result is None:
        raise TrainingJobError(f"training job {job.job_name} has no result")
    bucket, key = _split_s3_uri(job.result.model_artifacts)
    expected = f"{sagemaker_prefix(job.model_name)}{job.job_name}/"
    if bucket != settings.data_bucket or not key.startswith(expected):
        raise TrainingJobError(
            f"training job {job.job_name} wrote {job.result.model_artifacts}, not under "
            f"s3://{settings.data_bucket}/{expected}"
        )
    store = ObjectStore()
    with TemporaryDirectory(prefix="collect-") as tmp:
        archive = store.download(bucket, key, Path(tmp) / "model.tar.gz")
        unpacked = Path(tmp) / "model"
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(unpacked, filter="data")
        record = formats.read(
            formats.RUN_RECORD, json.loads((unpacked / RUN_FILE).read_text(encoding="utf-8"))
        )
        if record.get("run_id") != job.run_id:
            raise TrainingJobError(
                f"training job {job.job_name} produced run {record.get('run_id')!r}, "
                f"not {job.run_id!r}"
            )
        onnx = (unpacked / PurePosixPath(record["onnx_key"]).name).read_bytes()
        if hashlib.sha256(onnx).hexdigest() != record["onnx_sha256"]:
            raise TrainingJobError(f"model.onnx of job {job.job_name} does not match its run")
        for name in RUN_FILES:
            target = record[name]
            store.upload_file(unpacked / PurePosixPath(target).name, bucket, target)
    record["training_job"] = {
        "backend": "sagemaker",
        "name": job.job_name,
        "status": job.result.status,
        "model_artifacts": job.result.model_artifacts,
    }
    store.put_json(bucket, record["run_record_key"], formats.stamp(formats.RUN_RECORD, record))
    ModelRegistry(settings.registry_table).put_run(record)
    record_trained(record)
    return TrainingRun.model_validate({name: record[name] for name in TrainingRun.model_fields})


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise TrainingJobError(f"not an S3 object URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key
