"""What every config section shares: the base model (unknown keys and mutation refused), the
error every config problem raises, and the name patterns sections validate against."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from functions.common.config.errors import ConfigError

__all__ = ["COLUMN_PATTERN", "NAME_PATTERN", "ConfigError", "Section"]

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
COLUMN_PATTERN = r"^[a-z_][a-z0-9_]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
