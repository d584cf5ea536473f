"""What the stack's alarms tell whoever they notify (`[alerts]`). Read at synth only: the
functions do not receive this section."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from functions.common.config.base import Section

DEFAULT_RUNBOOK_URL = "http://127.0.0.1:8000/runbook/"
RUNBOOK_URL_MAX_CHARS = 400


class AlertsConfig(Section):
    """The CloudWatch alarms that notify the alerts topic."""

    runbook_url: Annotated[str, Field(max_length=RUNBOOK_URL_MAX_CHARS)] = DEFAULT_RUNBOOK_URL
    """Where the runbook page of this docs site is published: every alarm's description ends
    with `<runbook_url>#<its section>`. The default is the page as `mkdocs serve` shows it on
    your machine; set it to where your team publishes the site (`make docs` builds it)."""

    @field_validator("runbook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL (https://host/path/runbook/)")
        if parts.fragment or value.endswith("#"):
            raise ValueError(
                f"{value!r} has a #fragment: each alarm adds its own section's, give the page"
            )
        if any(char.isspace() for char in value):
            raise ValueError(f"{value!r} contains whitespace")
        return value
