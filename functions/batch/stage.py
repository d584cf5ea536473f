"""What the three batch steps share: the deployed config and the adapters of one container,
built on first use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.loading import MlopsConfig, deployed_config
from functions.common.settings import stage_settings


@dataclass(frozen=True)
class Adapters:
    """The deployed config, the data bucket and the clients of one container."""

    config: MlopsConfig
    bucket: str
    objects: ObjectStore
    registry: ModelRegistry

    def model_config(self, model: str) -> MlopsConfig:
        """`model`'s view of the config (its dataset, serving and batch settings)."""
        return self.config.for_model(model)


@cache
def stage_adapters() -> Adapters:
    settings = stage_settings()
    return Adapters(
        config=deployed_config(),
        bucket=settings.data_bucket,
        objects=ObjectStore(),
        registry=ModelRegistry(settings.registry_table),
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
