"""Environment of the deployed functions, one pydantic model (read once per container)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StageSettings(BaseSettings):
    """Variables every stage function receives from the CDK app (`StageFunction`)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    data_bucket: str = Field(alias="DATA_BUCKET")
    registry_table: str = Field(alias="REGISTRY_TABLE")
    stage: str = Field(default="dev", alias="STAGE")
    code_version: str = Field(default="unknown", alias="CODE_VERSION")


@lru_cache(maxsize=1)
def stage_settings() -> StageSettings:
    return StageSettings()  # type: ignore[call-arg]
