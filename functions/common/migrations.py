"""The registered migrations: what `mlops migrate` rewrites in the data bucket because today's
code no longer reads it where it is (a format change that an upgrade in memory covers is not
one: `functions.common.formats`). Each names the prefix it looks under and, for a key there, the
key it belongs at today (None: not this migration's); a document that moves may be rewritten on
the way (`rewrite`, given its new key). Some depend on the config (the batch layout needs the
model names): `migrations(models, default_model)` gives them all. Pure: the CLI lists, copies,
verifies and deletes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from functions.common import formats
from functions.common.layout import (
    BATCH_IN_PREFIX,
    BATCH_OUT_PREFIX,
    BATCH_PREFIX,
    BATCH_START_MARKER,
    JOB_PATTERN,
    MANIFEST_FILE,
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
    reserved: bool = False
    """Its prefix is reserved by the bucket policy (quarantine/: ingest and the erasure role
    only), so `mlops migrate` moves its objects as the stack's erasure role; otherwise with the
    operator's own credentials."""


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
    reserved=True,
)


def _batch_target(models: Sequence[str], default_model: str) -> Callable[[str], str | None]:
    """Where an object of a batch job of the layout before model folders
    (`batch/{in,out}/<job>/...`) belongs: `batch/{in,out}/<default model>/<job>/...`.

    An old job folder is told from a model folder by the config's model names and by depth:
    under a model's folder every object is in a job folder (`<model>/<job>/<file>`, the job a
    valid job name, which never starts with '_'); an object directly in a folder named like a
    model (`<name>/<file>`, `<name>/_plan/plan.json`) is of an old job of that name. Caveat: an
    old job named like a model with input files in sub-folders reads as that model's jobs and
    is left where it is. An old job's `_START` marker stays where it is: its copy under the
    model folder would be a new marker, and start the job again."""
    known = frozenset(models)

    def target(key: str) -> str | None:
        for prefix in (BATCH_IN_PREFIX, BATCH_OUT_PREFIX):
            if not key.startswith(prefix) or key.endswith("/"):
                continue
            parts = key.removeprefix(prefix).split("/")
            if len(parts) < 2 or (prefix == BATCH_IN_PREFIX and parts[-1] == BATCH_START_MARKER):
                return None  # a file directly under batch/in/ was never a job's
            if parts[0] in known and len(parts) >= 3 and re.match(JOB_PATTERN, parts[1]):
                return None  # today's layout
            return f"{prefix}{default_model}/{'/'.join(parts)}"
        return None

    return target


def _batch_manifest_at(new_key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """A job's manifest moved to `new_key`, at the current format (its keys moved with it)."""
    return formats.stamp(formats.BATCH_MANIFEST, formats.read(formats.BATCH_MANIFEST, manifest))


def batch_layout(models: Sequence[str], default_model: str) -> Migration:
    """Batch jobs of the layout before model folders (`batch/in/<job>/`, `batch/out/<job>/`)
    moved under the default model (`batch/{in,out}/<default model>/<job>/`); each job's
    manifest is rewritten at its current format (its file keys under the model folder)."""
    return Migration(
        id="batch-layout",
        description=(
            "batch jobs from batch/{in,out}/<job>/ (the layout before model folders) to "
            f"batch/{{in,out}}/{default_model}/<job>/ (the default model's folder)"
        ),
        prefix=BATCH_PREFIX,
        target=_batch_target(models, default_model),
        rewrite=_batch_manifest_at,
        rewrites=lambda key: (
            key.startswith(BATCH_OUT_PREFIX)
            and key.endswith(f"/{MANIFEST_FILE}")
            and key.count("/") == 4
        ),
    )


def migrations(models: Sequence[str], default_model: str) -> tuple[Migration, ...]:
    """Every registered migration for a stack serving `models`, in the order `mlops migrate`
    runs them."""
    return (QUARANTINE_LAYOUT, batch_layout(models, default_model))
