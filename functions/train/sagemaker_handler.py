"""The two Lambda steps around a SageMaker training job (`[train] backend = "sagemaker"`):
`prepare` (pipeline state in, `$.training_job` out) and `collect` (the finished job in, the
`TrainingRun` out as `$.training`, as the train function returns it). `collect` emits the
OpenLineage events of the training (`<model>.train`), as the train function does."""

from __future__ import annotations

from functions.adapters.lineage import traced
from functions.common.config.loading import deployed_model_config
from functions.common.contracts import PipelineState, TrainingJobState
from functions.common.handlers import step_handler
from functions.common.lineage import RunSpec
from functions.common.lineage_steps import STEP, train_end
from functions.train.sagemaker import collect, prepare


def _collect_begin(state: TrainingJobState) -> RunSpec:
    return RunSpec(
        job=f"{state.training_job.model_name}.train",
        job_type=STEP,
        description=f"Collect SageMaker training job {state.training_job.job_name}: the "
        "candidate fitted, exported to ONNX and checked",
        parent=state.execution.id if state.execution else None,
    )


traced_collect = traced(
    collect,
    _collect_begin,
    lambda s, result, read: train_end(
        deployed_model_config(s.training_job.model_name).dataset.name, result, read
    ),
)

prepare_handler = step_handler(PipelineState, prepare, records_metrics=False)
collect_handler = step_handler(TrainingJobState, traced_collect)
