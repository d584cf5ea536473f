"""The two Lambda steps around a SageMaker training job (`[train] backend = "sagemaker"`):
`prepare` (pipeline state in, `$.training_job` out) and `collect` (the finished job in, the
`TrainingRun` out as `$.training`, as the train function returns it)."""

from __future__ import annotations

from functions.common.contracts import PipelineState, TrainingJobState
from functions.common.handlers import step_handler
from functions.train.sagemaker import collect, prepare

prepare_handler = step_handler(PipelineState, prepare, records_metrics=False)
collect_handler = step_handler(TrainingJobState, collect)
