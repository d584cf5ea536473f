"""Config checks that need the ML code: what `functions.common.config` cannot know alone.

- `[model] params` and `[model.grid]`: every name must be a hyperparameter the configured
  estimator takes, as the estimator itself lists them (`get_params`);
- `[gate.metrics.<metric>]`: every metric must be one the task's evaluation computes;
- `lightgbm` / `xgboost`: no hyperparameter (or grid candidate) ONNX cannot hold
  (`functions.ml.boosting.unconvertible`: categorical splits, linear trees, gblinear ...);
  their names are checked only where the framework is installed (the dev environment may lack
  XGBoost; the training image checks them again before fitting);
- a factory: `[train] code` must be set, as the folder the factory's package lives in.

`mlops config check` and synth (`infra.cdk.config.deploy_config`) run them, on the base config and
on every stage's merged config, so such a config fails there with the key and the allowed
values instead of at training time. Pure: scikit-learn only, no AWS.
"""

from __future__ import annotations

from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig
from functions.ml.boosting import (
    FRAMEWORKS,
    framework_installed,
    native_param_names,
    unconvertible,
)
from functions.ml.metrics import TASK_METRICS
from functions.ml.training import estimator_param_names, grid_problems


def training_problems(config: MlopsConfig) -> list[str]:
    """`key: problem` for every hyperparameter and gate metric the config names that the
    estimator does not take or the task does not compute."""
    task = config.dataset.task
    estimator = config.estimator
    factory = config.model.factory
    problems: list[str] = []
    if factory and config.train.code is None:
        problems.append(
            f"model.factory: {factory!r} needs train.code, the folder (relative to the config "
            "file) that holds its package"
        )
    checkable = not factory and (estimator not in FRAMEWORKS or framework_installed(estimator))
    allowed = estimator_param_names(task, estimator) if checkable else []
    if checkable:
        problems.extend(
            f"{section}.{name}: {estimator} takes no hyperparameter {name!r}; allowed: "
            f"{', '.join(allowed)}"
            for section, names in (
                ("model.params", config.model.params),
                ("model.grid", config.model.grid or {}),
            )
            for name in names
            if name not in allowed and name not in native_param_names(estimator)
        )
    if not factory:
        problems.extend(
            f"model.params.{problem}" for problem in unconvertible(estimator, config.model.params)
        )
        problems.extend(
            f"model.grid.{problem}" for problem in grid_problems(estimator, config.model.grid or {})
        )
    metrics = TASK_METRICS[task]
    problems.extend(
        f"gate.metrics.{metric}: {task.value} does not compute {metric}; allowed: "
        f"{', '.join(metrics)}"
        for metric in config.gate.metrics
        if metric not in metrics
    )
    return problems


def check_training_config(config: MlopsConfig, source: str) -> None:
    """Raise ConfigError (`<source>: invalid config` and one line per problem, as for any other
    invalid key) when a model's config or its stage's merged config has a `training_problems` one; a
    stage's own problems are named `stages.<stage>.<key>`, and with several models each
    problem names its model (`models.<model>: <key>`)."""
    problems: list[str] = []
    for model in config.models:
        prefix = f"models.{model}: " if len(config.models) > 1 else ""
        base = training_problems(config.for_model(model))
        problems.extend(prefix + problem for problem in base)
        for stage in config.stages:
            staged = training_problems(config.for_stage(stage).for_model(model))
            problems.extend(
                f"stages.{stage}.{prefix}{problem}" for problem in staged if problem not in base
            )
    if problems:
        raise ConfigError("\n".join([f"{source}: invalid config", *(f"  {p}" for p in problems)]))
