"""Where the OpenLineage run events go besides the data bucket (`[lineage]`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from functions.common.config.base import Section

LINEAGE_URL_MAX_CHARS = 400


class LineageConfig(Section):
    """Every pipeline stage, batch job and drift check writes its OpenLineage run events to
    `lineage/` in the data bucket; with `url`, each event is also posted to that OpenLineage
    HTTP endpoint."""

    url: Annotated[str, Field(max_length=LINEAGE_URL_MAX_CHARS)] | None = None
    """Base URL of an OpenLineage HTTP API (Marquez: `http://marquez:5000`); events are posted
    to `<url>/api/v1/lineage` by the openlineage-python client. Unset: the bucket only. A post
    that fails is logged and counted (`LineageEmitFailures`), never failing the step."""
    namespace: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The jobs' OpenLineage namespace; default `<project name>-<stage>` (the stack's name)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL (https://host[:port][/path])")
        if any(char.isspace() for char in value):
            raise ValueError(f"{value!r} contains whitespace")
        return value
