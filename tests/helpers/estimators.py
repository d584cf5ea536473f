"""The allow-listed estimators as test parameters: one whose framework this environment lacks
(XGBoost is optional in the dev environment, `functions.ml.boosting`) is skipped, saying so."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.config.dataset import Task
from functions.common.config.training import ESTIMATORS
from functions.ml.boosting import FRAMEWORKS, framework_installed


def estimator_param(estimator: str, *values: Any) -> Any:
    """`pytest.param(*values or estimator)`, skipped when the estimator's framework is missing."""
    missing = estimator in FRAMEWORKS and not framework_installed(estimator)
    marks = (
        [pytest.mark.skip(reason=f"{FRAMEWORKS[estimator].requirement} is not installed here")]
        if missing
        else []
    )
    return pytest.param(
        *(values or (estimator,)), marks=marks, id="-".join(map(str, values)) or estimator
    )


def estimator_cases() -> list[Any]:
    """(task, estimator) for every task and every estimator it allows."""
    return [
        estimator_param(estimator, task, estimator)
        for task in (Task.CLASSIFICATION, Task.REGRESSION)
        for estimator in ESTIMATORS[task]
    ]
