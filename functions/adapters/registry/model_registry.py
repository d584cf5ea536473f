"""The model registry as one object: training runs, model versions, aliases with their history,
rollouts and the drift monitor's last check, over one registry table (the dataset side is
`functions.adapters.datasets`)."""

from __future__ import annotations

from functions.adapters.registry.monitor import MonitorReadings
from functions.adapters.registry.rollouts import Rollouts
from functions.adapters.registry.runs import TrainingRuns
from functions.adapters.registry.versions import ModelVersions


class ModelRegistry(TrainingRuns, ModelVersions, Rollouts, MonitorReadings):
    """Training runs, model versions, aliases, rollouts and the drift monitor's last check of
    one registry table."""
