"""The training container's `train` program, as SageMaker runs it (`docker run <image> train`):
reads the SageMaker layout under `/opt/ml` (or `$MLOPS_SAGEMAKER_ROOT`), trains with the same
code as the train function and writes the run into `/opt/ml/model/`. On failure the reason goes
to `/opt/ml/output/failure` (SageMaker's FailureReason) and the exit code is 1."""

from __future__ import annotations

import sys
import traceback

from functions.common.layout import SageMakerLayout
from functions.common.observability import logger
from functions.train.sagemaker import train_in_layout

FAILURE_LIMIT = 1024
"""SageMaker keeps the first 1024 characters of the failure file."""


def main(root: str | None = None) -> int:
    layout = SageMakerLayout.from_env(root)
    try:
        run = train_in_layout(layout)
    except Exception as exc:
        layout.failure.parent.mkdir(parents=True, exist_ok=True)
        layout.failure.write_text(f"{type(exc).__name__}: {exc}"[:FAILURE_LIMIT], encoding="utf-8")
        traceback.print_exc()
        return 1
    logger.info("Training job finished", extra={"run_id": run.run_id, "rows": run.rows_train})
    return 0


if __name__ == "__main__":
    sys.exit(main())
