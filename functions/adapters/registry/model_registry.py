"""The model registry as one object: training runs, model versions, aliases with their history,
and rollouts, over one registry table (the dataset side is `functions.adapters.datasets`)."""

from __future__ import annotations

from functions.adapters.registry.rollouts import Rollouts
from functions.adapters.registry.runs import TrainingRuns
from functions.adapters.registry.versions import ModelVersions


class ModelRegistry(TrainingRuns, ModelVersions, Rollouts):
    """Training runs, model versions, aliases and rollouts of one registry table."""
