"""Register stage: the pipeline state (`$.training`, `$.evaluation`) in, the registered and
promoted model version (`ModelVersion`) out. A promotion that lost a race to another one fails
the execution with `StalePromotionError` (the version stays registered, not promoted)."""

from __future__ import annotations

from functions.common.handlers import step_handler
from functions.register.logic import RegisterRequest, register_model

lambda_handler = step_handler(RegisterRequest, register_model)
