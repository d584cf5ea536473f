"""What the stack's alarms tell whoever they notify (`[alerts]`). Read at synth only: the
functions do not receive this section."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from functions.common.config.base import Section

DEFAULT_RUNBOOK_URL = "docs/runbook.md"
RUNBOOK_URL_MAX_CHARS = 400


class AlertsConfig(Section):
    """The CloudWatch alarms that notify the alerts topic."""

    runbook_url: Annotated[str, Field(max_length=RUNBOOK_URL_MAX_CHARS)] = DEFAULT_RUNBOOK_URL
    """Where on-call reads the runbook: every alarm's description ends with
    `<runbook_url>#<its section>`. The default is the page's path in this repository (readable
    in any clone and on a code host, and no address that works on one machine only); set an
    http(s) URL where your team publishes the docs site (`make docs` builds it)."""

    @field_validator("runbook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        repository_page = not parts.scheme and not value.startswith("/") and value.endswith(".md")
        if not repository_page and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(
                f"{value!r} is not an http(s) URL (https://host/path/runbook/) nor a page of the "
                "repository (docs/runbook.md)"
            )
        if parts.fragment or value.endswith("#"):
            raise ValueError(
                f"{value!r} has a #fragment: each alarm adds its own section's, give the page"
            )
        if any(char.isspace() for char in value):
            raise ValueError(f"{value!r} contains whitespace")
        return value
