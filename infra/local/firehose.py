"""Firehose's custom S3 prefixes: `!{timestamp:yyyy-MM-dd}` (Java date pattern, UTC) and
`!{firehose:random-string}` expanded as the service does. moto appends its own
`YYYY/MM/DD/HH/` instead, so capture objects would not land under capture/dt=YYYY-MM-DD/."""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime

_EXPRESSION = re.compile(r"!\{(timestamp|firehose):([^}]*)\}")
_JAVA_TO_STRFTIME = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
]


def expand_prefix(prefix: str, now: datetime | None = None, error_type: str = "") -> str:
    """The prefix with Firehose's `!{namespace:value}` expressions evaluated at `now`."""
    moment = now or datetime.now(UTC)

    def evaluate(match: re.Match[str]) -> str:
        namespace, value = match.groups()
        if namespace == "timestamp":
            pattern = value
            for java, strftime in _JAVA_TO_STRFTIME:
                pattern = pattern.replace(java, strftime)
            return moment.strftime(pattern)
        if value == "random-string":
            alphabet = string.ascii_lowercase + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(11))
        if value == "error-output-type":
            return error_type or "processing-failed"
        raise ValueError(f"unsupported Firehose prefix expression !{{firehose:{value}}}")

    return _EXPRESSION.sub(evaluate, prefix)


def install() -> None:
    """Make moto's S3 object keys follow custom prefixes (idempotent)."""
    from moto.firehose.models import FirehoseBackend

    original = FirehoseBackend._format_s3_object_path
    if getattr(original, "_mlops_local", False):
        return

    def object_path(delivery_stream_name: str, version_id: str, prefix: str) -> str:
        if "!{" not in prefix:
            return original(delivery_stream_name, version_id, prefix)
        now = datetime.now(UTC)
        return (
            f"{expand_prefix(prefix, now)}{delivery_stream_name}-{version_id}-"
            f"{now.strftime('%Y-%m-%d-%H-%M-%S')}-{secrets.token_hex(8)}"
        )

    object_path._mlops_local = True  # type: ignore[attr-defined]
    FirehoseBackend._format_s3_object_path = staticmethod(object_path)  # type: ignore[method-assign,assignment]
