"""Train orchestration: resolve the training set from the dataset registry (`[dataset] mode`),
load the curated Parquet, split, fit, export ONNX, check parity, profile, and write the run's
artifacts and its record. The run record is written last: a run that failed midway leaves
only unreferenced files under its own prefix."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Protocol

import pandas as pd
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.dataset import DatasetMode, FeatureType, Task
from functions.common.config.loading import MlopsConfig, deployed_model_config
from functions.common.contracts import DatasetRef, PipelineState, TrainingRun, TrainingSkipped
from functions.common.errors import DataVersionNotFoundError, DataVersionRetiredError
from functions.common.layout import (
    HOLDOUT_FILE,
    MODEL_FILE,
    REFERENCE_PROFILE_FILE,
    RUN_FILE,
    SIGNATURE_FILE,
    run_prefix,
)
from functions.common.observability import logger, metrics
from functions.common.settings import stage_settings
from functions.ml.features import target_array
from functions.ml.importance import permutation_importances
from functions.ml.ingestion import producer_names
from functions.ml.model_code import LoadedFactory, load_factory, shipped_code_dir
from functions.ml.onnx_model import (
    OnnxModel,
    ParityReport,
    Signature,
    check_parity,
    export_onnx,
)
from functions.ml.reference_profile import reference_profile, sensitive_view
from functions.ml.training import FitResult, Split, fit_model, split_dataset

LIBRARIES = (
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pandas",
    "pyarrow",
    "lightgbm",
    "xgboost",
    "onnxmltools",
)
MODEL_CODE_ENV = "MLOPS_MODEL_CODE"
"""The shipped `[train] code` folder, where an image puts it elsewhere than
`$LAMBDA_TASK_ROOT/model_code` (the SageMaker image sets it)."""


__all__ = ["DataVersionNotFoundError", "DataVersionRetiredError"]


@dataclass
class Stopwatch:
    durations: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, started: float) -> float:
        now = time.perf_counter()
        self.durations[name] = round(now - started, 4)
        return now


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def training_versions(
    versions: list[DatasetRef], mode: DatasetMode, data_version: str | None
) -> tuple[DatasetRef, list[DatasetRef]]:
    """The version that triggered the run and the versions the training set is made of:
    `append` takes every version up to and including the trigger, `replace` only the
    trigger. Without a data version, the trigger is the newest version. Retired versions
    (`mlops data retire`) are left out; a retired trigger is refused."""
    if data_version is None:
        active = [v for v in versions if v.retired is None]
        if not active:
            raise DataVersionNotFoundError(
                "no dataset version is registered yet (or all are retired): drop a file first"
            )
        trigger = active[-1]
    else:
        found = [v for v in versions if v.data_version == data_version]
        if not found:
            known = ", ".join(v.data_version for v in versions[-5:])
            raise DataVersionNotFoundError(
                f"dataset version {data_version!r} is not registered (latest: {known})"
            )
        trigger = found[0]
        if trigger.retired is not None:
            raise DataVersionRetiredError(
                f"dataset version {data_version!r} was retired by {trigger.retired.by} at "
                f"{trigger.retired.at} ({trigger.retired.reason}); it is not trained on"
            )
    if mode is DatasetMode.REPLACE:
        return trigger, [trigger]
    cutoff = (trigger.created_at, trigger.data_version)
    return trigger, [
        v for v in versions if v.retired is None and (v.created_at, v.data_version) <= cutoff
    ]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "xgboost":
                try:
                    versions[name] = metadata.version("xgboost-cpu")
                    continue
                except metadata.PackageNotFoundError:
                    pass
            versions[name] = "not installed"
    return versions


def deployed_code_dir(config: MlopsConfig) -> Path | None:
    """Where a deployed training function finds the `[train] code` folder its image ships:
    `$MLOPS_MODEL_CODE`, else `$LAMBDA_TASK_ROOT/model_code`; None when no folder is
    configured."""
    if config.train.code is None:
        return None
    explicit = os.environ.get(MODEL_CODE_ENV)
    return Path(explicit) if explicit else shipped_code_dir(os.environ.get("LAMBDA_TASK_ROOT"))


def model_factory(config: MlopsConfig, code_dir: Path | None) -> LoadedFactory | None:
    """The model's factory loaded from `code_dir`, None for an allow-listed estimator."""
    if config.model.factory is None:
        return None
    return load_factory(config.model.factory, code_dir)


def estimator_label(config: MlopsConfig) -> str:
    """What built the model, for the run: the estimator's name or `factory <spec>`."""
    factory = config.model.factory
    return f"factory {factory}" if factory else config.estimator


def training_key(
    versions: list[DatasetRef],
    config: MlopsConfig,
    code_version: str,
    model_code: str | None = None,
) -> str:
    """What a training set is, as a hash: its data versions (as a set), the whole config, the
    code version and the model code's hash (`model_code`, with a factory). The same key means
    the same model would be trained again."""
    payload = {
        "data_versions": sorted(v.data_version for v in versions),
        "config": config.model_dump(mode="json"),
        "code_version": code_version,
    }
    if model_code is not None:
        payload["model_code"] = model_code
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def train(state: PipelineState) -> TrainingRun | TrainingSkipped:
    """Train one candidate of the state's model (`model`, with its view of the config) for
    the pipeline state's dataset version.

    A run started by a drop (not a retrain request) whose training set was trained on before,
    by a run that reached the gate's verdict, is skipped: a `TrainingSkipped` is returned and
    recorded as a run with status `skipped` (`skipped: unchanged`, `same_as` that run). A
    training that fails is recorded as a run with status `failed` and its error, then raises."""
    config = deployed_model_config(state.model)
    settings = stage_settings()
    models = ModelRegistry(settings.registry_table)
    started = now()
    try:
        return _train(state, config, settings, models)
    except Exception as exc:
        _record_failed(models, config.model_name, state, started, exc)
        raise


def _record_failed(
    models: ModelRegistry, model: str, state: PipelineState, started: str, error: Exception
) -> None:
    """Record a run with status `failed` and the error's first line, so `mlops runs list` and
    `mlops models list` show a training that failed before it produced a run; a registry that
    refuses the record leaves the training's own error to be raised."""
    message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    try:
        models.put_run(
            {
                "run_id": new_run_id(),
                "model_name": model,
                "status": "failed",
                "error": message[:1_000],
                "data_version": requested_version(state),
                "execution": state.execution.id if state.execution else None,
                "started_at": started,
                "finished_at": now(),
            }
        )
    except Exception:  # noqa: BLE001 - the training's error is the one to raise
        logger.exception("The failed run could not be recorded")


def _train(
    state: PipelineState, config: MlopsConfig, settings: Any, models: ModelRegistry
) -> TrainingRun | TrainingSkipped:
    datasets = DatasetRegistry(settings.registry_table)
    trigger, versions = training_versions(
        datasets.list_versions(config.dataset.name), config.dataset.mode, requested_version(state)
    )
    factory = model_factory(config, deployed_code_dir(config))
    key = training_key(
        versions, config, settings.code_version, factory.code_sha256 if factory else None
    )
    if state.dataset is not None and (same := models.judged_run_for(config.model_name, key)):
        return _skip_unchanged(models, config.model_name, state, trigger, versions, key, same)
    store = ObjectStore()
    bucket = settings.data_bucket
    run = Trainer(
        config,
        S3TrainingData(store, bucket),
        S3Artifacts(store, bucket),
        bucket,
        settings.code_version,
        factory=factory,
    )
    result = run.run(trigger, versions, execution=state.execution.id if state.execution else None)
    models.put_run({**run.record, "training_key": key})
    models.record_training_set(config.model_name, key, result.run_id)
    record_trained(run.record)
    return result


def _skip_unchanged(
    models: ModelRegistry,
    model: str,
    state: PipelineState,
    trigger: DatasetRef,
    versions: list[DatasetRef],
    key: str,
    same: dict[str, Any],
) -> TrainingSkipped:
    skipped = TrainingSkipped(
        run_id=new_run_id(),
        same_as=str(same["run_id"]),
        data_version=trigger.data_version,
        data_versions=[v.data_version for v in versions],
        training_key=key,
    )
    models.put_run(
        {
            **skipped.model_dump(mode="json"),
            "model_name": model,
            "status": "skipped",
            "execution": state.execution.id if state.execution else None,
            "started_at": now(),
            "finished_at": now(),
        }
    )
    metrics.add_metric(name="TrainingSkipped", unit=MetricUnit.Count, value=1)
    logger.info(
        "Training set unchanged: skipped",
        extra={"same_as": skipped.same_as, "training_key": key},
    )
    return skipped


def requested_version(state: PipelineState) -> str | None:
    """The dataset version a run is for: the one Ingest just made, a retrain request's, or
    None (the newest)."""
    if state.dataset is not None:
        return state.dataset.data_version
    return state.retrain.data_version if state.retrain is not None else None


def record_trained(record: dict[str, Any]) -> None:
    metrics.add_metric(name="ModelsTrained", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="TrainSeconds", unit=MetricUnit.Seconds, value=record["durations"]["total"]
    )
    logger.info("Model trained", extra={"durations": record["durations"]})


class TrainingData(Protocol):
    """Where a run reads the training set from: a version's manifest, and its Parquet files."""

    def manifest(self, version: DatasetRef) -> dict[str, Any]: ...

    def parquet(self, key: str, workdir: Path) -> Path: ...


class Artifacts(Protocol):
    """Where a run writes its artifacts, by their final S3 key."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_json(self, key: str, document: Any) -> None: ...

    def upload_file(self, path: Path, key: str) -> None: ...


@dataclass(frozen=True)
class S3TrainingData:
    """The curated Parquet and manifests in the data bucket (the Lambda backend)."""

    store: ObjectStore
    bucket: str

    def manifest(self, version: DatasetRef) -> dict[str, Any]:
        return formats.read(
            formats.DATASET_MANIFEST, self.store.get_json(self.bucket, version.manifest_key)
        )

    def parquet(self, key: str, workdir: Path) -> Path:
        local = workdir / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"
        return self.store.download(self.bucket, key, local)


@dataclass(frozen=True)
class S3Artifacts:
    """Artifacts written straight to their keys in the data bucket (the Lambda backend)."""

    store: ObjectStore
    bucket: str

    def put_bytes(self, key: str, data: bytes) -> None:
        self.store.put_bytes(self.bucket, key, data)

    def put_json(self, key: str, document: Any) -> None:
        self.store.put_json(self.bucket, key, document)

    def upload_file(self, path: Path, key: str) -> None:
        self.store.upload_file(path, self.bucket, key)


def feature_schema(
    columns: dict[str, str], target: str, audit: Sequence[str] = ()
) -> dict[str, FeatureType]:
    """The model features' types from a manifest's `schema` (every curated column -> its
    type): every column but the target and the `audit` ones (audit-only fairness attributes,
    kept in the held-out rows but never fitted on)."""
    return {
        name: FeatureType(kind)
        for name, kind in columns.items()
        if name != target and name not in audit
    }


@dataclass(frozen=True)
class Candidate:
    """A trained candidate before anything is stored: the split it was fitted and checked
    on, the fit, its ONNX export and signature, the parity check and the reference profile."""

    split: Split
    fitted: FitResult
    onnx_bytes: bytes
    signature: Signature
    parity: ParityReport
    reference_profile: dict[str, Any]


def fit_manifests(
    frame: pd.DataFrame,
    manifests: Sequence[Mapping[str, Any]],
    *,
    config: MlopsConfig,
    stopwatch: Stopwatch,
    factory: LoadedFactory | None = None,
) -> tuple[Task, Candidate]:
    """`fit_candidate` on the curated rows `manifests` describe: the first names the target,
    the task and the columns' types; every one's producer names go into the signature."""
    manifest = manifests[0]
    target, task = manifest["target"], Task(manifest["task"])
    schema = feature_schema(manifest["schema"], target, config.dataset.audit_columns)
    candidate = fit_candidate(
        frame,
        target=target,
        task=task,
        schema=schema,
        config=config,
        stopwatch=stopwatch,
        aliases=producer_names(manifests, schema),
        factory=factory,
    )
    return task, candidate


def fit_candidate(
    frame: pd.DataFrame,
    *,
    target: str,
    task: Task,
    schema: dict[str, FeatureType],
    config: MlopsConfig,
    stopwatch: Stopwatch,
    aliases: Mapping[str, Sequence[str]] | None = None,
    factory: LoadedFactory | None = None,
) -> Candidate:
    """Split, fit, export to ONNX, check parity, measure permutation importances on the
    held-out rows and profile: the storage-free core of a run,
    shared by the train stage and `mlops train-local`. Laps go into `stopwatch`; `aliases`
    (feature -> the producer's names for it) go into the signature; `factory` (the config's
    `[model] factory`, loaded) builds the model instead of the estimator."""
    lap = time.perf_counter()
    model_config = config.model
    split = split_dataset(
        frame, target=target, task=task, test_size=model_config.test_size, seed=model_config.seed
    )
    fitted = fit_model(
        split.train,
        target=target,
        task=task,
        schema=schema,
        model=model_config,
        estimator=config.estimator,
        factory=factory,
    )
    lap = stopwatch.lap("fit", lap)
    onnx_bytes, signature = export_onnx(
        fitted.pipeline,
        schema=schema,
        target=target,
        task=task,
        train=split.train,
        aliases=aliases,
    )
    lap = stopwatch.lap("export", lap)
    model = OnnxModel(onnx_bytes, signature)
    parity = check_parity(
        fitted.pipeline, model, split.test, tolerance=model_config.parity_tolerance
    )
    lap = stopwatch.lap("parity", lap)
    predictions = model.predict(split.test)
    importance = permutation_importances(
        fitted.pipeline, split.test, target=target, task=task, schema=schema, seed=model_config.seed
    )
    lap = stopwatch.lap("importance", lap)
    dataset = config.dataset
    monitored, monitored_schema = sensitive_view(
        split.train, schema, dataset.sensitive, dataset.hash_salt
    )
    profile = reference_profile(
        monitored,
        schema=monitored_schema,
        target=target,
        predictions=predictions,
        task=task,
        sample_rows=model_config.reference_sample_rows,
        seed=model_config.seed,
        importance=importance,
        held_out_labels=target_array(split.test, target, task),
    )
    stopwatch.lap("profile", lap)
    return Candidate(split, fitted, onnx_bytes, signature, parity, profile)


class Trainer:
    """One training run; `record` is the run record once `run` returned."""

    def __init__(
        self,
        config: MlopsConfig,
        data: TrainingData,
        artifacts: Artifacts,
        bucket: str,
        code_version: str,
        factory: LoadedFactory | None = None,
    ):
        self.config = config
        self.factory = factory
        self.data = data
        self.artifacts = artifacts
        self.bucket = bucket
        self.code_version = code_version
        self.stopwatch = Stopwatch()
        self.record: dict[str, Any] = {}

    def run(
        self,
        trigger: DatasetRef,
        versions: list[DatasetRef],
        *,
        execution: str | None,
        run_id: str | None = None,
    ) -> TrainingRun:
        started_at, started = now(), time.perf_counter()
        run_id = run_id or new_run_id()
        logger.append_keys(run_id=run_id)
        with TemporaryDirectory(prefix="train-") as tmp:
            frame, manifests = self._load(trigger, versions, Path(tmp))
            self.stopwatch.lap("load", started)
            task, candidate = fit_manifests(
                frame,
                manifests,
                config=self.config,
                stopwatch=self.stopwatch,
                factory=self.factory,
            )
            split, fitted, onnx_bytes = candidate.split, candidate.fitted, candidate.onnx_bytes
            lap = time.perf_counter()
            prefix = run_prefix(self.config.model_name, run_id)
            holdout = Path(tmp) / HOLDOUT_FILE
            split.test.to_parquet(holdout, index=False)
            keys = {
                "onnx": prefix + MODEL_FILE,
                "signature": prefix + SIGNATURE_FILE,
                "holdout": prefix + HOLDOUT_FILE,
                "reference_profile": prefix + REFERENCE_PROFILE_FILE,
                "run_record": prefix + RUN_FILE,
            }
            self.artifacts.put_bytes(keys["onnx"], onnx_bytes)
            self.artifacts.put_json(
                keys["signature"], formats.stamp(formats.SIGNATURE, candidate.signature.to_dict())
            )
            self.artifacts.upload_file(holdout, keys["holdout"])
            self.artifacts.put_json(keys["reference_profile"], candidate.reference_profile)
            self.stopwatch.lap("write", lap)
        self.stopwatch.durations["total"] = round(time.perf_counter() - started, 4)
        result = TrainingRun(
            run_id=run_id,
            model_name=self.config.model_name,
            task=task.value,
            estimator=estimator_label(self.config),
            params=fitted.params,
            data_version=trigger.data_version,
            data_versions=[v.data_version for v in versions],
            rows_train=len(split.train),
            rows_test=len(split.test),
            run_prefix=prefix,
            onnx_key=keys["onnx"],
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            holdout_key=keys["holdout"],
            signature_key=keys["signature"],
            reference_profile_key=keys["reference_profile"],
            run_record_key=keys["run_record"],
            started_at=started_at,
            code_version=self.code_version,
        )
        self.record = {
            **result.model_dump(mode="json"),
            "status": "trained",
            "execution": execution,
            "finished_at": now(),
            "search": fitted.search,
            "split": split.describe(),
            "parity": candidate.parity.to_dict(),
            "durations": self.stopwatch.durations,
            "library_versions": library_versions(),
            "model_code": self.factory.describe() if self.factory else None,
            "artifacts": {name: f"s3://{self.bucket}/{key}" for name, key in keys.items()},
        }
        self.artifacts.put_json(keys["run_record"], formats.stamp(formats.RUN_RECORD, self.record))
        return result

    def _load(
        self, trigger: DatasetRef, versions: list[DatasetRef], workdir: Path
    ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """The training set: every version's curated Parquet, rows deduplicated across
        versions (append mode), and the manifests read: the trigger version's first (its
        schema), then the other versions'."""
        manifest = self.data.manifest(trigger)
        manifests = [manifest]
        frames = []
        for version in versions:
            if version.data_version == trigger.data_version:
                version_manifest = manifest
            else:
                version_manifest = self.data.manifest(version)
                manifests.append(version_manifest)
            for key in version_manifest["files"]:
                frames.append(pd.read_parquet(self.data.parquet(key, workdir)))
        columns = list(dict.fromkeys([*manifest["schema"], manifest["target"]]))
        frame = pd.concat([f[columns] for f in frames], ignore_index=True)
        if len(versions) > 1:
            frame = frame.drop_duplicates(ignore_index=True)
        return frame, manifests
