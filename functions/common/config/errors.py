"""The error every config problem raises (importable without pydantic)."""

from __future__ import annotations


class ConfigError(ValueError):
    """The config is missing, unreadable or invalid; the message names file, key and problem."""
