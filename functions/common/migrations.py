"""The registered migrations: what `mlops migrate` rewrites in the data bucket because today's
code no longer reads it where it is (a format change that an upgrade in memory covers is not
one: `functions.common.formats`). Each names the prefix it looks under and, for a key there, the
key it belongs at today (None: not this migration's); a document that moves may be rewritten on
the way (`rewrite`, given its new key). Pure: the CLI lists, copies, verifies and deletes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.common import formats
from functions.common.layout import (
    QUARANTINE_PREFIX,
    QUARANTINE_REASONS_PREFIX,
    QUARANTINED_FILES_PREFIX,
    REASON_SUFFIX,
    quarantine_key,
    raw_key_of_reason,
)


@dataclass(frozen=True)
class Migration:
    id: str
    description: str
    prefix: str
    """Where the objects it moves are (listed from here)."""
    target: Callable[[str], str | None]
    """The key an object at this key belongs at today; None: not this migration's."""
    rewrite: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    """For a JSON document that moves: its content at its new key (None: moved byte for byte)."""
    rewrites: Callable[[str], bool] = lambda key: False
    """Which of the moved keys are JSON documents `rewrite` applies to."""


def _quarantine_target(key: str) -> str | None:
    if not key.startswith(QUARANTINE_PREFIX) or key.endswith("/"):
        return None
    if key.startswith((QUARANTINED_FILES_PREFIX, QUARANTINE_REASONS_PREFIX)):
        return None
    rest = key.removeprefix(QUARANTINE_PREFIX)
    if key.endswith(REASON_SUFFIX):
        return QUARANTINE_REASONS_PREFIX + rest
    return QUARANTINED_FILES_PREFIX + rest


def _reason_at(new_key: str, reason: dict[str, Any]) -> dict[str, Any]:
    """A reason record moved to `new_key`, pointing at its copy's new key."""
    current = formats.read(formats.QUARANTINE_REASON, reason)
    current["quarantine_key"] = quarantine_key(raw_key_of_reason(new_key))
    return formats.stamp(formats.QUARANTINE_REASON, current)


QUARANTINE_LAYOUT = Migration(
    id="quarantine-layout",
    description=(
        "quarantined copies and reason records from quarantine/<dataset>/<file>[.reason.json] "
        "(releases before issue 16) to quarantine/files/ and quarantine/reasons/"
    ),
    prefix=QUARANTINE_PREFIX,
    target=_quarantine_target,
    rewrite=_reason_at,
    rewrites=lambda key: key.startswith(QUARANTINE_REASONS_PREFIX),
)

MIGRATIONS: tuple[Migration, ...] = (QUARANTINE_LAYOUT,)
"""Every registered migration, in the order `mlops migrate` runs them."""
