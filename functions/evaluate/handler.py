"""Evaluate stage: the pipeline state with `training` in; an `EvaluationResult` out: the
candidate and the champion (alias `production`) scored on the same held-out rows, and the
gate's decision with every criterion."""

from __future__ import annotations

from functions.common.contracts import PipelineState
from functions.common.handlers import step_handler
from functions.evaluate.logic import evaluate

lambda_handler = step_handler(PipelineState, evaluate)
