"""What an erasure found and did: the keys holding the subject, in which versions, and what
was done to each key (see `functions.erasure.eraser`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.ml.erasure import Subject

CAPTURE, FEEDBACK, RAW, QUARANTINE, CURATED = "capture", "feedback", "raw", "quarantine", "curated"
SHADOW = "shadow"
AREAS = (CAPTURE, SHADOW, FEEDBACK, RAW, QUARANTINE, CURATED)
"""Scanned in this order; each area is the prefix `<area>/`."""
REWRITTEN, DELETED, VERSIONS_DELETED = "rewritten", "deleted", "versions deleted"


@dataclass
class KeyFinding:
    """One key holding the subject in at least one version."""

    area: str
    key: str
    hits: dict[str, int]
    """Version id -> the subject's rows in it."""
    current: str | None
    """The current version's id (None: a delete marker is current)."""
    current_rows: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    """Version id -> why it could not be filtered though it contains the subject's value."""
    versions: int = 0
    """Object versions of the key (delete markers not counted)."""

    @property
    def all_versions_hit(self) -> bool:
        return len(self.hits) == self.versions

    @property
    def rows_removed(self) -> int:
        return self.hits.get(self.current or "", 0)

    @property
    def action(self) -> str:
        if self.current not in self.hits:
            return VERSIONS_DELETED
        if self.area != CURATED and self.rows_removed >= self.current_rows:
            return DELETED
        return REWRITTEN


@dataclass
class Findings:
    subject: Subject
    keys: list[KeyFinding] = field(default_factory=list)
    linked: frozenset[tuple[str, int]] = frozenset()
    """The subject's predictions (request_id, row) found in capture."""
    curated_fingerprints: dict[str, frozenset[int]] = field(default_factory=dict)
    """Curated data key -> fingerprints of the subject's rows in it."""
    objects_scanned: int = 0
    versions_scanned: int = 0

    @property
    def unreadable(self) -> list[tuple[str, str, str]]:
        return [(f.key, v, why) for f in self.keys for v, why in f.unreadable.items()]


@dataclass
class KeyResult:
    area: str
    key: str
    action: str
    rows_removed: int
    rows_kept: int | None
    versions_deleted: list[str]
    new_version: str | None = None

    def as_dict(self, redact: str | None = None) -> dict[str, Any]:
        return {
            "area": self.area,
            "key": redacted(self.key, redact),
            "action": self.action,
            "rows_removed": self.rows_removed,
            "rows_kept": self.rows_kept,
            "versions_deleted": self.versions_deleted,
            "new_version": self.new_version,
        }


def redacted(key: str, value: str | None) -> str:
    """Keys can carry the subject (`feedback/dt=.../<request_id>-<row>.json`): not in clear."""
    return key.replace(value, "<subject>") if value else key
