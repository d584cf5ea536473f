"""Evaluate stage: the pipeline state with `training` in; an `EvaluationResult` out: the
candidate and the champion (alias `production`) scored on the same held-out rows, and the
gate's decision with every criterion. Emits the run's OpenLineage events (`<model>.evaluate`:
the candidate, its held-out rows and the champion in, the evaluation out)."""

from __future__ import annotations

from functions.adapters.lineage import traced
from functions.common.contracts import PipelineState
from functions.common.handlers import step_handler
from functions.common.lineage_steps import evaluate_begin, evaluate_end
from functions.evaluate.logic import evaluate

traced_evaluate = traced(evaluate, evaluate_begin, evaluate_end)
lambda_handler = step_handler(PipelineState, traced_evaluate)
