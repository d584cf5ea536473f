"""The project (`[project]`) and its stages (`[stages.<stage>]`, with per-stage overrides of
other sections)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from functions.common.config.base import NAME_PATTERN, Section


class ProjectConfig(Section):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "mlops"
    """Prefix of every stack (`<name>-<stage>`) and resource name."""
    default_model: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    """The model `POST /v1/predict` serves and CLI commands use without `--model`; defaults to
    the first model (the only one, in a single-model config)."""


STAGE_SECTIONS = ("model", "gate", "drift", "serving", "ingest", "train", "data_lake", "batch")
"""Sections a stage may override (`[stages.<stage>.<section>]`)."""


REGISTRY_TABLE_PATTERN = r"^[A-Za-z0-9_.-]{3,255}$"
"""A DynamoDB table name."""


class StageConfig(Section):
    """Per-stage settings (`[stages.<stage>]`) and overrides of any of `STAGE_SECTIONS` for
    that stage only, e.g. `[stages.prod.serving] provisioned_concurrency = 2`: the stage's
    stack and its functions get the base config with these keys replaced."""

    removal_policy: Literal["retain", "destroy"] = "retain"
    log_retention_days: Annotated[int, Field(ge=1, le=3653)] = 90
    registry_table: Annotated[str, Field(pattern=REGISTRY_TABLE_PATTERN)] | None = None
    """The registry table the stage's functions and the CLI use instead of the stack's own:
    the table `mlops restore --registry` restored from point-in-time recovery. The stack
    keeps its own table (not deleted, for forensics) and grants every function on this one.
    Read at synth only."""
    model: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    ingest: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    data_lake: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None

    def overrides(self) -> dict[str, dict[str, Any]]:
        return {
            name: value for name in STAGE_SECTIONS if (value := getattr(self, name)) is not None
        }
