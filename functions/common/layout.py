"""Where drops and their outcomes live in the data bucket: the one place that maps a raw key
to its quarantined copy and to its reason (ingest writes them; the CLI and any other reader
find them here).

Producers choose every character of a key under `raw/`, so nothing ingest writes may share a
namespace with what a drop maps to: a quarantined copy goes under `quarantine/files/`, its
reason under `quarantine/reasons/` (a drop named `x.csv.reason.json` is quarantined as a
file, beside no reason). Each mapping is one-to-one and the two prefixes never meet. The bucket
policy lets only the ingest function (and the erasure role) write under `quarantine/`, whatever
a producer's own policy grants.
"""

from __future__ import annotations

RAW_PREFIX = "raw/"
"""Producers drop files under `raw/<dataset>/`."""
QUARANTINE_PREFIX = "quarantine/"
"""Written by ingest only (bucket policy)."""
QUARANTINED_FILES_PREFIX = f"{QUARANTINE_PREFIX}files/"
"""A bad drop's copy (that raw object version): `quarantine/files/<dataset>/<file>`."""
QUARANTINE_REASONS_PREFIX = f"{QUARANTINE_PREFIX}reasons/"
"""Why a drop was quarantined: `quarantine/reasons/<dataset>/<file>.reason.json`."""
REASON_SUFFIX = ".reason.json"


def _under_raw(raw_key: str) -> str:
    if not raw_key.startswith(RAW_PREFIX) or raw_key == RAW_PREFIX:
        raise ValueError(f"{raw_key!r} is not a drop: drops are keys under {RAW_PREFIX}")
    return raw_key.removeprefix(RAW_PREFIX)


def quarantine_key(raw_key: str) -> str:
    """The key of the quarantined copy of the drop at `raw_key` (`raw/<dataset>/<file>`)."""
    return QUARANTINED_FILES_PREFIX + _under_raw(raw_key)


def reason_key(raw_key: str) -> str:
    """The key of the reason record of the drop at `raw_key` (`raw/<dataset>/<file>`)."""
    return QUARANTINE_REASONS_PREFIX + _under_raw(raw_key) + REASON_SUFFIX


def raw_key_of_reason(key: str) -> str:
    """The drop a reason record at `key` is about: the inverse of `reason_key`."""
    if not key.startswith(QUARANTINE_REASONS_PREFIX) or not key.endswith(REASON_SUFFIX):
        raise ValueError(
            f"{key!r} is not a reason record ({QUARANTINE_REASONS_PREFIX}...{REASON_SUFFIX})"
        )
    return RAW_PREFIX + key.removeprefix(QUARANTINE_REASONS_PREFIX).removesuffix(REASON_SUFFIX)
