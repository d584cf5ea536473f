"""Train stage: the pipeline state (a dataset version from Ingest, or a retrain request) in;
a `TrainingRun` out, its artifacts under `models/<name>/runs/<run_id>/`, or `TrainingSkipped`
when a drop's training set was trained on before (the state machine then ends, `skipped`)."""

from __future__ import annotations

from functions.common.contracts import PipelineState
from functions.common.handlers import step_handler
from functions.train.logic import train

lambda_handler = step_handler(PipelineState, train)
