"""Config checks that need the ML code: what `functions.common.config` cannot know alone.

- `[model] params` and `[model.grid]`: every name must be a hyperparameter the configured
  estimator takes, as the estimator itself lists them (`get_params`);
- `[gate.metrics.<metric>]`: every metric must be one the task's evaluation computes.

`mlops config check` and synth (`infra.cdk.config.deploy_config`) run them, on the base config and
on every stage's merged config, so such a config fails there with the key and the allowed
values instead of at training time. Pure: scikit-learn only, no AWS.
"""

from __future__ import annotations

from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig
from functions.ml.metrics import TASK_METRICS
from functions.ml.training import estimator_param_names


def training_problems(config: MlopsConfig) -> list[str]:
    """`key: problem` for every hyperparameter and gate metric the config names that the
    estimator does not take or the task does not compute."""
    task = config.dataset.task
    estimator = config.estimator
    allowed = [] if config.model.factory else estimator_param_names(task, estimator)
    problems = (
        []
        if config.model.factory
        else [
            f"{section}.{name}: {estimator} takes no hyperparameter {name!r}; allowed: "
            f"{', '.join(allowed)}"
            for section, names in (
                ("model.params", config.model.params),
                ("model.grid", config.model.grid or {}),
            )
            for name in names
            if name not in allowed
        ]
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
