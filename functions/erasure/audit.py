"""The audit record of one erasure (`audit/erasure/<erasure id>.json`), which names the subject
only as a salted hash."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from functions.erasure.findings import Findings, KeyResult, redacted


def new_erasure_id(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def audit_record(
    findings: Findings,
    results: list[KeyResult],
    *,
    erasure_id: str,
    at: str,
    who: str,
    acting_as: str | None,
    reason: str | None,
    target: str,
    remaining: Findings | None = None,
) -> dict[str, Any]:
    """The audit record of one erasure: the subject only as a salted hash (with its salt, so
    whoever knows the subject can confirm the record is about them; nobody can read it off).
    `remaining`: what the verification found afterwards (nothing, when it succeeded)."""
    salt = secrets.token_bytes(16)
    subject = findings.subject
    return {
        "erasure_id": erasure_id,
        "at": at,
        "who": who,
        "acting_as": acting_as,
        "reason": reason,
        "target": target,
        "subject": {
            "column": subject.column,
            "hash": f"sha256:{subject.digest(salt)}",
            "salt": salt.hex(),
        },
        "found": bool(results),
        "objects_scanned": findings.objects_scanned,
        "versions_scanned": findings.versions_scanned,
        "rows_removed": sum(r.rows_removed for r in results),
        "versions_deleted": sum(len(r.versions_deleted) for r in results),
        "keys": [r.as_dict(subject.value) for r in results],
        "unreadable": [
            {"key": redacted(key, subject.value), "version_id": version, "reason": why}
            for key, version, why in findings.unreadable
        ],
        "verified": remaining is not None and not remaining.keys,
        "remaining": [
            {"key": redacted(f.key, subject.value), "versions": sorted({*f.hits, *f.unreadable})}
            for f in (remaining.keys if remaining is not None else [])
        ],
    }
