"""Register stage: the pipeline state (`$.training`, `$.evaluation`) in, the registered and
promoted model version (`ModelVersion`) out. A promotion that lost a race to another one fails
the execution with `StalePromotionError` (the version stays registered, not promoted). Emits
the run's OpenLineage events (`<model>.register`: the run in, `models/<model>/<version>/` out)."""

from __future__ import annotations

from functions.adapters.lineage import traced
from functions.common.handlers import step_handler
from functions.common.lineage_steps import register_begin, register_end
from functions.register.logic import RegisterRequest, register_model

traced_register = traced(register_model, register_begin, register_end)
lambda_handler = step_handler(RegisterRequest, traced_register)
