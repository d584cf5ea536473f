"""Register stage: a training run that passed the gate becomes model version N and, if the
production alias is still where the evaluation saw it, the production model.

Order of writes, so a failure leaves no half version visible in the registry: the number is
allocated (a failed registration burns it, never reuses it), the run's artifacts are copied to
`models/<name>/<N>/` and the copied ONNX checksum is verified, the version in MLflow's model
format is written under `models/<name>/<N>/mlflow/` (`functions.ml.mlflow_format`, from the
verified bytes), `metadata.json` and the model card (HTML, and JSON in the Model Card
Toolkit's schema beside it) are written, then the version item, then the alias (one
transaction with its history), then the run record, then the `ModelPromoted` event.

The promotion expects the champion the evaluation compared against
(`evaluation.champion_version`): if another promotion won meanwhile, the version stays
registered but not promoted and the execution fails with `StalePromotionError`.

A retried invocation for the same run (after a timeout, or a failed event) finds the version
already registered for that run and resumes from the promotion instead of registering twice.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.events import publish_model_promoted
from functions.adapters.registry.aliases import PRODUCTION
from functions.adapters.registry.items import now
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.loading import deployed_model_config
from functions.common.contracts import (
    AliasChange,
    EvaluationResult,
    ModelVersion,
    PipelineState,
    TrainingRun,
)
from functions.common.errors import (
    ArtifactIntegrityError,
    ModelRegistryError,
    ObjectNotFoundError,
    RunNotFoundError,
    StalePromotionError,
)
from functions.common.events import model_promoted_detail
from functions.common.layout import (
    EVALUATION_FILE,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_PROFILE_FILE,
    RUN_FILE,
    SIGNATURE_FILE,
    mlflow_prefix,
    model_card_json_key,
    model_card_key,
    version_prefix,
)
from functions.common.observability import logger, metrics
from functions.common.settings import StageSettings, stage_settings
from functions.ml.mlflow_format import mlflow_files, version_uuid
from functions.ml.model_card.document import model_card_document
from functions.ml.model_card.render import render_model_card

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
_CHUNK = 1024 * 1024


class RegisterRequest(PipelineState):
    """The pipeline state as the register task receives it: training and evaluation are
    required; `execution.id` (when the state has it) is recorded with the promotion."""

    training: TrainingRun
    evaluation: EvaluationResult


def register_model(request: RegisterRequest) -> ModelVersion:
    """Register the run of `request` as a new model version and promote it to production.

    Returns:
        The registered version, `promoted: true`, with `previous_version` the version that
        production pointed to before (None for the first one).

    Raises:
        ModelRegistryError: the evaluation is of another run, or did not pass the gate.
        ArtifactIntegrityError: the copied ONNX bytes do not match `training.onnx_sha256`;
            nothing was registered.
        StalePromotionError: production moved since the evaluation; the version is registered
            but not promoted.
        StorageError, RegistryError, EventPublishError: an AWS call failed (safe to retry).
    """
    settings = stage_settings()
    registration = Registration(
        settings=settings,
        store=ObjectStore(),
        registry=ModelRegistry(settings.registry_table),
        publish=publish_model_promoted,
    )
    return registration.run(request)


@dataclass(kw_only=True)
class Registration:
    """The steps of one registration, with its adapters passed in."""

    settings: StageSettings
    store: ObjectStore
    registry: ModelRegistry
    publish: Callable[[Mapping[str, Any]], str]

    @property
    def bucket(self) -> str:
        return self.settings.data_bucket

    def run(self, request: RegisterRequest) -> ModelVersion:
        training, evaluation = request.training, request.evaluation
        model = request.trained_model()
        logger.append_keys(model=model, run_id=training.run_id)
        metrics.add_dimension(name="model", value=model)
        metrics.add_metric(name="RegistrationsRequested", unit=MetricUnit.Count, value=1)
        _check(training, evaluation)
        version = self._registered_for(training) or self._register(training, evaluation)
        execution = request.execution.id if request.execution else None
        return self._promote(version, evaluation, execution)

    def _registered_for(self, training: TrainingRun) -> ModelVersion | None:
        for version in self.registry.list_versions(training.model_name):
            if version.run_id == training.run_id:
                logger.info(
                    "Run already registered; resuming at the promotion",
                    extra={"version": version.version},
                )
                return version
        return None

    def _register(self, training: TrainingRun, evaluation: EvaluationResult) -> ModelVersion:
        model = training.model_name
        run = formats.read(
            formats.RUN_RECORD, self.store.get_json(self.bucket, training.run_record_key)
        )
        signature = formats.content(
            formats.SIGNATURE, self.store.get_json(self.bucket, training.signature_key)
        )
        evaluation_doc = formats.read(
            formats.EVALUATION, self.store.get_json(self.bucket, evaluation.evaluation_key)
        )
        number = self.registry.allocate_version(model)
        prefix = version_prefix(model, number)
        logger.append_keys(version=number)
        sources = {
            MODEL_FILE: training.onnx_key,
            SIGNATURE_FILE: training.signature_key,
            REFERENCE_PROFILE_FILE: training.reference_profile_key,
            EVALUATION_FILE: evaluation.evaluation_key,
            RUN_FILE: training.run_record_key,
        }
        for name, key in sources.items():
            self.store.copy(self.bucket, key, prefix + name)
        onnx_bytes = self._verify_onnx(prefix + MODEL_FILE, training.onnx_sha256)
        onnx_size = len(onnx_bytes)
        created_at = now()
        self._write_mlflow(model, number, onnx_bytes, signature, training, created_at)
        card_key = model_card_key(model, number)
        version = ModelVersion(
            model_name=model,
            version=number,
            prefix=prefix,
            onnx_key=prefix + MODEL_FILE,
            onnx_sha256=training.onnx_sha256,
            run_id=training.run_id,
            data_version=training.data_version,
            data_versions=training.data_versions,
            metrics=evaluation.metrics,
            created_at=created_at,
            model_card_key=card_key,
            promoted=False,
            code_version=training.code_version,
        )
        metadata = _metadata(version, training, evaluation, signature, onnx_size)
        metadata["code_version"] = self.settings.code_version
        self.store.put_json(
            self.bucket, prefix + METADATA_FILE, formats.stamp(formats.VERSION_METADATA, metadata)
        )
        importances = (
            self._importance(training.reference_profile_key),
            self._importance(
                version_prefix(model, evaluation.champion_version) + REFERENCE_PROFILE_FILE
            )
            if evaluation.champion_version is not None
            else None,
        )
        self._write_card(version, run, evaluation, evaluation_doc, signature, importances)
        self.registry.put_version(version)
        self._record_run(version, run, status="registered", promoted=False)
        metrics.add_metric(name="ModelVersionsRegistered", unit=MetricUnit.Count, value=1)
        logger.info("Model version registered", extra={"version": number, "prefix": prefix})
        return version

    def _verify_onnx(self, key: str, expected: str) -> bytes:
        """Hash the copied model; returns its bytes, once they match the run's sha256."""
        digest = hashlib.sha256()
        chunks = []
        with TemporaryDirectory(prefix="register-") as workdir:
            local = self.store.download(self.bucket, key, Path(workdir) / MODEL_FILE)
            with local.open("rb") as file:
                while chunk := file.read(_CHUNK):
                    digest.update(chunk)
                    chunks.append(chunk)
        if digest.hexdigest() != expected:
            raise ArtifactIntegrityError(
                f"s3://{self.bucket}/{key} has sha256 {digest.hexdigest()}, but training "
                f"recorded {expected}: the model was not registered"
            )
        return b"".join(chunks)

    def _write_mlflow(
        self,
        model: str,
        number: int,
        onnx_bytes: bytes,
        signature: Mapping[str, Any],
        training: TrainingRun,
        created_at: str,
    ) -> None:
        """The version in MLflow's model format, its input example from the run's reference
        profile."""
        profile = formats.content(
            formats.REFERENCE_PROFILE,
            self.store.get_json(self.bucket, training.reference_profile_key),
        )
        files = mlflow_files(
            onnx_bytes,
            signature,
            profile=profile,
            python_version=platform.python_version(),
            created_at=datetime.fromisoformat(created_at),
            model_uuid=version_uuid(model, number, training.onnx_sha256),
        )
        prefix = mlflow_prefix(model, number)
        for name, body in files.items():
            self.store.put_bytes(self.bucket, prefix + name, body, content_type=_content_type(name))

    def _write_card(
        self,
        version: ModelVersion,
        run: Mapping[str, Any],
        evaluation: EvaluationResult,
        evaluation_doc: Mapping[str, Any],
        signature: Mapping[str, Any],
        importances: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None],
    ) -> None:
        """The HTML card and, beside it, the Model Card Toolkit JSON (no `format_version`:
        that schema admits no other top-level property; its `schema_version` is its version)."""
        result = evaluation_doc.get("result") or evaluation.model_dump(mode="json")
        insight = evaluation_doc.get("insight")
        shared: dict[str, Any] = {
            "model_name": version.model_name,
            "version": version.version,
            "run": run,
            "evaluation": result,
            "signature": signature,
            "created_at": version.created_at,
            "importance": importances[0],
            "insight": insight,
        }
        html = render_model_card(
            **shared,
            candidate_eval=evaluation_doc.get("candidate") or {},
            champion_eval=evaluation_doc.get("champion"),
            champion_importance=importances[1],
            sensitive=deployed_model_config(version.model_name).dataset.sensitive,
        )
        self.store.put_bytes(
            self.bucket, version.model_card_key, html.encode(), content_type=HTML_CONTENT_TYPE
        )
        document = model_card_document(
            **shared, path=f"s3://{self.bucket}/{version.prefix}", card_key=version.model_card_key
        )
        key = model_card_json_key(version.model_name, version.version)
        self.store.put_json(self.bucket, key, document)

    def _importance(self, profile_key: str) -> Mapping[str, Any] | None:
        """The permutation importances of a reference profile; None when the profile has none
        (trained before importances were recorded) or is missing (a champion registered by
        hand)."""
        try:
            document = self.store.get_json(self.bucket, profile_key)
        except ObjectNotFoundError:
            logger.warning(
                "No reference profile; the card shows no importances for it",
                extra={"key": profile_key},
            )
            return None
        importance = formats.read(formats.REFERENCE_PROFILE, document).get("importance")
        return importance if isinstance(importance, Mapping) else None

    def _promote(
        self, version: ModelVersion, evaluation: EvaluationResult, execution: str | None
    ) -> ModelVersion:
        model, number = version.model_name, version.version
        change = self._current_change(version)
        if change is None:
            try:
                change = self.registry.promote(
                    model,
                    number,
                    expected_current=evaluation.champion_version,
                    reason=_reason(version.run_id, evaluation),
                    execution=execution,
                )
            except StalePromotionError as stale:
                self._record_run(
                    version, status="registered", promoted=False, promotion_error=str(stale)
                )
                metrics.add_metric(name="PromotionsRefused", unit=MetricUnit.Count, value=1)
                logger.error("Promotion refused: production moved", extra={"error": str(stale)})
                raise
            self._record_run(version, status="registered", promoted=True, promoted_at=change.at)
            metrics.add_metric(name="ModelsPromoted", unit=MetricUnit.Count, value=1)
        self.publish(model_promoted_detail(change, metrics=version.metrics, run_id=version.run_id))
        logger.info(
            "Promoted to production",
            extra={"version": number, "previous_version": change.from_version},
        )
        return version.model_copy(
            update={"promoted": True, "previous_version": change.from_version}
        )

    def _current_change(self, version: ModelVersion) -> AliasChange | None:
        """The promotion that made `version` production, if it is production already (a
        retried invocation)."""
        state = self.registry.get_alias(version.model_name, PRODUCTION)
        if state is None or state.version != version.version:
            return None
        changes = self.registry.history(version.model_name, PRODUCTION)
        return next((c for c in reversed(changes) if c.revision == state.revision), None)

    def _record_run(
        self, version: ModelVersion, run: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        """Update the run record; when the train stage left none, write it (from run.json)."""
        fields = {"version": version.version, **fields}
        try:
            self.registry.update_run(version.model_name, version.run_id, **fields)
        except RunNotFoundError:
            logger.warning("Run record missing from the registry; writing it")
            self.registry.put_run(
                {
                    **(run or {}),
                    "run_id": version.run_id,
                    "model_name": version.model_name,
                    **fields,
                    "updated_at": now(),
                }
            )


def _content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith((".yaml", "MLmodel")):
        return "application/yaml"
    if name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _check(training: TrainingRun, evaluation: EvaluationResult) -> None:
    if evaluation.run_id != training.run_id:
        raise ModelRegistryError(
            f"the evaluation is of run {evaluation.run_id}, not of run {training.run_id}"
        )
    if not evaluation.passed:
        failed = "; ".join(evaluation.failed) or "see the criteria"
        raise ModelRegistryError(
            f"run {training.run_id} did not pass the gate ({failed}); it is not registered"
        )


def _reason(run_id: str, evaluation: EvaluationResult) -> str:
    against = (
        f"champion version {evaluation.champion_version}"
        if evaluation.champion_version is not None
        else "no champion"
    )
    return f"run {run_id} passed the gate ({len(evaluation.criteria)} criteria) against {against}"


def _metadata(
    version: ModelVersion,
    training: TrainingRun,
    evaluation: EvaluationResult,
    signature: Mapping[str, Any],
    onnx_size: int,
) -> dict[str, Any]:
    prefix = version.prefix
    return {
        "model_name": version.model_name,
        "version": version.version,
        "created_at": version.created_at,
        "run_id": training.run_id,
        "task": training.task,
        "estimator": training.estimator,
        "params": training.params,
        "onnx_key": version.onnx_key,
        "onnx_sha256": version.onnx_sha256,
        "onnx_bytes": onnx_size,
        "data_version": training.data_version,
        "data_versions": training.data_versions,
        "rows_train": training.rows_train,
        "rows_test": training.rows_test,
        "metrics": evaluation.metrics,
        "champion_version": evaluation.champion_version,
        "champion_metrics": evaluation.champion_metrics,
        "gate": {
            "passed": evaluation.passed,
            "criteria": [c.model_dump(mode="json") for c in evaluation.criteria],
        },
        "signature": dict(signature),
        "classes": signature.get("classes"),
        "files": {
            name: prefix + name
            for name in (
                MODEL_FILE,
                SIGNATURE_FILE,
                REFERENCE_PROFILE_FILE,
                EVALUATION_FILE,
                RUN_FILE,
            )
        },
        "model_card_key": version.model_card_key,
        "training_code_version": training.code_version,
    }
