"""Train stage: the pipeline state (a dataset version from Ingest, or a retrain request) in;
a `TrainingRun` out, its artifacts under `models/<name>/runs/<run_id>/`, or `TrainingSkipped`
when a drop's training set was trained on before (the state machine then ends, `skipped`).
Emits the run's OpenLineage events (`<model>.train`: the curated versions in, the run out)."""

from __future__ import annotations

from functions.adapters.lineage import traced
from functions.common.config.loading import deployed_model_config
from functions.common.contracts import PipelineState, TrainingRun, TrainingSkipped
from functions.common.handlers import step_handler
from functions.common.lineage_steps import train_begin, train_end
from functions.train.logic import train


def traced_train(state: PipelineState) -> TrainingRun | TrainingSkipped:
    return traced(
        train,
        lambda s: train_begin(s, deployed_model_config(s.model).model_name),
        lambda s, result, read: train_end(
            deployed_model_config(s.model).dataset.name, result, read
        ),
    )(state)


lambda_handler = step_handler(PipelineState, traced_train)
