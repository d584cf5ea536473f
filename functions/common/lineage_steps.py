"""What each pipeline step reads and writes, as OpenLineage datasets of the data bucket (no
I/O but the `Reader` given, for the schema facets): the chain a lineage tool follows from a
model version back to the raw objects it was trained on.

    raw/<dataset>/<file> --ingest.<dataset>--> curated/<dataset>/<data version>/
    curated/<dataset>/<data version>/ (each of the training set) --<model>.train-->
        models/<model>/runs/<run id>/
    models/<model>/runs/<run id>/ (+ its holdout.parquet, + the champion's version)
        --<model>.evaluate--> models/<model>/runs/<run id>/evaluation.json
    models/<model>/runs/<run id>/ --<model>.register--> models/<model>/<version>/
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.common.contracts import (
    DatasetRef,
    EvaluationResult,
    ModelVersion,
    PipelineState,
    SourceObject,
    TrainingRun,
    TrainingSkipped,
)
from functions.common.layout import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    data_version_prefix,
    version_prefix,
)
from functions.common.lineage import (
    Dataset,
    Reader,
    RunEnd,
    RunSpec,
    manifest_fields,
    signature_fields,
)

STEP = "TASK"
"""`jobType` of a step of the pipeline's state machine."""


def _execution(state: PipelineState) -> str | None:
    return state.execution.id if state.execution else None


def raw_object(source: SourceObject) -> Dataset:
    """A dropped object: its key, versioned by its S3 version id (else its ETag)."""
    return Dataset(source.key, version=source.version_id or source.etag)


def curated_version(dataset: str, data_version: str, read: Reader | None = None) -> Dataset:
    """A curated dataset version (its prefix), with its manifest's columns when `read`."""
    prefix = data_version_prefix(dataset, data_version)
    manifest = read(prefix + MANIFEST_FILE) if read else None
    return Dataset(prefix, version=data_version, fields=manifest_fields(manifest or {}))


def _signature(read: Reader, key: str) -> Mapping[str, Any]:
    return read(key) or {}


# Ingest


def ingest_job(dataset: str | None) -> str:
    return f"ingest.{dataset}" if dataset else "ingest"


def ingest_begin(source: SourceObject, dataset: str | None, execution: str | None) -> RunSpec:
    return RunSpec(
        job=ingest_job(dataset),
        job_type=STEP,
        description="Validate, clean and version a dropped file into a curated dataset version "
        "(a bad file is quarantined)",
        inputs=(raw_object(source),),
        parent=execution,
    )


def ingest_end(result: Any, read: Reader) -> RunEnd:
    """The curated version the drop became (none when nothing was ingested)."""
    if not isinstance(result, DatasetRef):
        return RunEnd()
    return RunEnd(outputs=(curated_version(result.dataset, result.data_version, read),))


# Train


def train_begin(state: PipelineState, model: str) -> RunSpec:
    trigger = state.dataset
    inputs = (curated_version(trigger.dataset, trigger.data_version),) if trigger else ()
    return RunSpec(
        job=f"{model}.train",
        job_type=STEP,
        description="Fit a candidate on the training set, export it to ONNX and check parity",
        inputs=inputs,
        parent=_execution(state),
    )


def train_end(dataset: str, result: TrainingRun | TrainingSkipped, read: Reader) -> RunEnd:
    """Every curated version of the training set, and the run's artefacts with the columns
    trained on (a skipped run wrote none)."""
    inputs = tuple(curated_version(dataset, v, read) for v in result.data_versions)
    if isinstance(result, TrainingSkipped):
        return RunEnd(inputs=inputs)
    # The columns trained on: the trigger version's (the train function reads no run).
    fields = next((d.fields for d in inputs if d.version == result.data_version), ())
    return RunEnd(
        inputs=inputs,
        outputs=(Dataset(result.run_prefix, version=result.run_id, fields=fields),),
    )


# Evaluate


def _run(training: TrainingRun, fields: Any = ()) -> Dataset:
    return Dataset(training.run_prefix, version=training.run_id, fields=fields)


def _model(state: PipelineState) -> str:
    """The model of the state's training run (else the state's model, else `model`)."""
    return state.training.model_name if state.training else state.model or "model"


CANDIDATE_STEPS = {
    "evaluate": "Score the candidate and the champion on the same held-out rows; the gate",
    "register": "Register the candidate as a model version with its card; promote it",
}
"""The steps on a training run, and what they do."""


def _candidate_step(state: PipelineState, step: str) -> RunSpec:
    """A step on the state's training run: `<model>.<step>`, the run as its input."""
    return RunSpec(
        job=f"{_model(state)}.{step}",
        job_type=STEP,
        description=CANDIDATE_STEPS[step],
        inputs=(_run(state.training),) if state.training else (),
        parent=_execution(state),
    )


def evaluate_begin(state: PipelineState) -> RunSpec:
    return _candidate_step(state, "evaluate")


def evaluate_end(state: PipelineState, result: EvaluationResult, read: Reader) -> RunEnd:
    """The candidate, its held-out rows and the champion version, and the evaluation."""
    training = state.training
    if training is None:
        return RunEnd()
    fields = signature_fields(_signature(read, training.signature_key))
    inputs = [
        _run(training),
        Dataset(training.holdout_key, version=training.run_id, fields=fields),
    ]
    if result.champion_version is not None:
        champion = version_prefix(training.model_name, result.champion_version)
        inputs.append(Dataset(champion, version=str(result.champion_version)))
    evaluation = Dataset(result.evaluation_key, version=training.run_id)
    return RunEnd(inputs=tuple(inputs), outputs=(evaluation,))


# Register


def register_begin(state: PipelineState) -> RunSpec:
    return _candidate_step(state, "register")


def register_end(state: PipelineState, result: ModelVersion, read: Reader) -> RunEnd:
    """The run registered, and the version it became."""
    fields = signature_fields(_signature(read, result.prefix + SIGNATURE_FILE))
    inputs = (_run(state.training, fields),) if state.training else None
    return RunEnd(
        inputs=inputs,
        outputs=(Dataset(result.prefix, version=str(result.version), fields=fields),),
    )
