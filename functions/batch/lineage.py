"""A batch job's OpenLineage run (`<model>.batch`): the job's input folder and the model
version it is scored with in, its output folder out. The plan step emits START once it has
planned (FAIL when planning failed); the finalize step COMPLETE, or FAIL when the job failed.
Both derive the run id from the model, job and planning time, so they name one run."""

from __future__ import annotations

from functions.adapters.lineage import LineageEmitter, LineageRun
from functions.batch.contracts import BatchManifest, BatchPlan, BatchRequest
from functions.common.layout import job_inputs, job_outputs, version_prefix
from functions.common.lineage import Dataset, run_id_for

BATCH_JOB = "JOB"
DESCRIPTION = "Score the files of a batch job's folder with a pinned model version"


def _job(model: str) -> str:
    return f"{model}.batch"


def planned_run(
    emitter: LineageEmitter, plan: BatchPlan, execution: str | None = None
) -> LineageRun:
    """The job's run as planned: its inputs, its planning time as the nominal time."""
    model, job = plan.model_name, plan.job
    return emitter.run(
        _job(model),
        job_type=BATCH_JOB,
        description=DESCRIPTION,
        inputs=(
            Dataset(job_inputs(model, job), version=plan.planned_at),
            Dataset(version_prefix(model, plan.model_version), version=str(plan.model_version)),
        ),
        parent=execution,
        nominal_time=plan.planned_at,
        run_id=run_id_for("batch", model, job, plan.planned_at),
    )


def unplanned_run(emitter: LineageEmitter, request: BatchRequest, model: str) -> LineageRun:
    """A job whose planning failed (a run of its own)."""
    return emitter.run(
        _job(model),
        job_type=BATCH_JOB,
        description=DESCRIPTION,
        inputs=(Dataset(job_inputs(model, request.job)),),
    )


def outputs(manifest: BatchManifest) -> tuple[Dataset, ...]:
    """The job's output folder (scored files, rejects, manifest), versioned by its end."""
    folder = job_outputs(manifest.model_name, manifest.job)
    return (Dataset(folder, version=manifest.finished_at),)


class BatchJobFailed(RuntimeError):
    """The job ended `failed` (its FAIL event's error: the manifest's reason)."""
