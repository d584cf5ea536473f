"""Evaluate orchestration: load the run's held-out rows and candidate ONNX model (checked
against the sha256 recorded at training), load the champion behind alias `production`
(checked against its registered sha256), score both through onnxruntime, measure both models'
insight on the same rows (`functions.ml.insight`: slices, fairness, calibration, thresholds),
apply the gate (with `[gate.fairness]`) and write `evaluation.json` beside the run's
artifacts."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.dataset import FeatureType, Task
from functions.common.config.loading import MlopsConfig, deployed_model_config
from functions.common.contracts import (
    Criterion,
    EvaluationResult,
    ModelVersion,
    PipelineState,
    TrainingRun,
)
from functions.common.errors import ArtifactIntegrityError
from functions.common.layout import EVALUATION_FILE, SIGNATURE_FILE
from functions.common.observability import logger, metrics
from functions.common.settings import stage_settings
from functions.ml.features import target_array
from functions.ml.gate import apply_gate, fairness_criteria
from functions.ml.insight import InsightSettings, Privacy, model_insight, scores_of
from functions.ml.metrics import Evaluation, evaluate_predictions
from functions.ml.onnx_model import OnnxModel, Signature


class MissingTrainingRunError(ValueError):
    """The evaluate stage was invoked without a training run in the pipeline state."""


def evaluate(state: PipelineState) -> EvaluationResult:
    if state.training is None:
        raise MissingTrainingRunError("the pipeline state has no `training` to evaluate")
    settings = stage_settings()
    training = state.training
    config = deployed_model_config(state.trained_model())
    registry = ModelRegistry(settings.registry_table)
    scorer = Scorer(ObjectStore(), settings.data_bucket)
    logger.append_keys(run_id=training.run_id)

    holdout = scorer.holdout(training)
    candidate_model = scorer.model(training.onnx_key, training.signature_key, training.onnx_sha256)
    champion_version = _champion(registry, training.model_name)
    champion_model = None
    if champion_version is not None:
        champion_model = scorer.model(
            champion_version.onnx_key,
            champion_version.prefix + SIGNATURE_FILE,
            champion_version.onnx_sha256,
        )
    judged = judge(candidate_model, champion_model, holdout, config)
    candidate, champion = judged.candidate, judged.champion
    passed, criteria = judged.passed, judged.criteria
    result = EvaluationResult(
        run_id=training.run_id,
        metrics=candidate.metrics,
        champion_version=champion_version.version if champion_version else None,
        champion_metrics=champion.metrics if champion else None,
        criteria=criteria,
        passed=passed,
        failed=[c.message for c in criteria if not c.passed],
        evaluation_key=training.run_prefix + EVALUATION_FILE,
    )
    scorer.store.put_json(
        settings.data_bucket,
        result.evaluation_key,
        formats.stamp(
            formats.EVALUATION,
            {
                "result": result.model_dump(mode="json"),
                "candidate": candidate.to_dict(),
                "champion": champion.to_dict() if champion else None,
                "insight": judged.insight,
            },
        ),
    )
    registry.update_run(
        training.model_name,
        training.run_id,
        status="evaluated" if passed else "rejected",
        metrics=candidate.metrics,
        champion_version=result.champion_version,
        champion_metrics=result.champion_metrics,
        gate_passed=passed,
        gate_failed=result.failed,
    )
    metrics.add_metric(
        name="CandidatesPassed" if passed else "CandidatesRejected",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info(
        "Candidate evaluated",
        extra={"passed": passed, "metrics": candidate.metrics, "failed": result.failed},
    )
    return result


def _champion(registry: ModelRegistry, model_name: str) -> ModelVersion | None:
    alias = registry.get_alias(model_name)
    if alias is None:
        return None
    return registry.get_version(model_name, alias.version)


class Scorer:
    """Loads held-out rows and ONNX models from the data bucket and scores them."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def holdout(self, training: TrainingRun) -> pd.DataFrame:
        with TemporaryDirectory(prefix="evaluate-") as tmp:
            local = self.store.download(self.bucket, training.holdout_key, Path(tmp) / "h.parquet")
            return pd.read_parquet(local)

    def model(self, onnx_key: str, signature_key: str, sha256: str) -> OnnxModel:
        """The ONNX model at `onnx_key`, refused if its bytes do not match `sha256`."""
        onnx_bytes = self.store.get_bytes(self.bucket, onnx_key)
        actual = hashlib.sha256(onnx_bytes).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"s3://{self.bucket}/{onnx_key} has sha256 {actual}, expected {sha256}: "
                "the model file changed after it was recorded; refusing to score it"
            )
        signature = Signature.from_dict(
            formats.read(formats.SIGNATURE, self.store.get_json(self.bucket, signature_key))
        )
        return OnnxModel(onnx_bytes, signature)

    def score(self, model: OnnxModel, holdout: pd.DataFrame) -> Evaluation:
        return score(model, holdout)


@dataclass(frozen=True)
class Judged:
    """The candidate and the champion scored on the same held-out rows, their insight
    (`{"candidate": ..., "champion": ... or None}`) and the gate's decision."""

    candidate: Evaluation
    champion: Evaluation | None
    insight: dict[str, Any]
    passed: bool
    criteria: list[Criterion]


def judge(
    candidate_model: OnnxModel,
    champion_model: OnnxModel | None,
    holdout: pd.DataFrame,
    config: MlopsConfig,
) -> Judged:
    """Score both models on `holdout`, measure their insight (the champion's on the
    candidate's slices, to compare them) and apply the gate, `[gate.fairness]` included."""
    candidate, candidate_insight = scored(
        candidate_model, holdout, config, calibration_method=config.model.calibrate
    )
    champion = champion_insight = None
    if champion_model is not None:
        champion, champion_insight = scored(
            champion_model, holdout, config, schema=candidate_model.signature.schema
        )
    signature = candidate_model.signature
    passed, criteria = apply_gate(
        candidate=candidate.metrics,
        champion=champion.metrics if champion else None,
        gate=config.gate,
        task=Task(signature.task),
        n_classes=len(signature.classes or []),
    )
    fairness = fairness_criteria(candidate_insight["fairness"], config.gate.fairness)
    return Judged(
        candidate=candidate,
        champion=champion,
        insight={"candidate": candidate_insight, "champion": champion_insight},
        passed=passed and all(criterion.passed for criterion in fairness),
        criteria=[*criteria, *fairness],
    )


def insight_settings(config: MlopsConfig) -> InsightSettings:
    """What `model_insight` measures for a model's config view."""
    dataset, card = config.dataset, config.model_card
    return InsightSettings(
        slice_features=card.slice_features,
        quantile_feature=card.quantile_feature,
        quantile_bins=card.quantile_bins,
        fairness_attributes=dataset.fairness_attributes,
        privacy=Privacy(dataset.sensitive, dataset.hash_salt, card.min_slice_rows),
    )


def scored(
    model: OnnxModel,
    holdout: pd.DataFrame,
    config: MlopsConfig,
    *,
    calibration_method: str | None = None,
    schema: Mapping[str, FeatureType] | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """The model's metrics and insight on the held-out rows, from one pass through
    onnxruntime. `schema`: the features whose slices are measured (default: the model's)."""
    signature = model.signature
    task = Task(signature.task)
    prediction = model.predict(holdout)
    y_true = target_array(holdout, signature.target, task)
    evaluation = evaluate_predictions(
        task=task,
        y_true=y_true,
        labels=prediction.labels,
        probabilities=prediction.probabilities,
        classes=signature.classes,
    )
    insight = model_insight(
        holdout,
        scores_of(task, y_true, prediction.labels, prediction.probabilities, signature.classes),
        schema=signature.schema if schema is None else schema,
        settings=insight_settings(config),
        calibration_method=calibration_method,
    )
    return evaluation, insight


def score(model: OnnxModel, holdout: pd.DataFrame) -> Evaluation:
    """The model's metrics on the held-out rows, scored through onnxruntime."""
    signature = model.signature
    prediction = model.predict(holdout)
    return evaluate_predictions(
        task=Task(signature.task),
        y_true=target_array(holdout, signature.target, Task(signature.task)),
        labels=prediction.labels,
        probabilities=prediction.probabilities,
        classes=signature.classes,
    )
