"""Erasure of one data subject from the data bucket: every version of every object under
capture/, feedback/, raw/, quarantine/ and curated/ is read, and each key holding the subject
in any version is changed so that no version with the subject remains.

For a key whose current version holds the subject, a new version without the subject's rows
is written (same format), or a delete marker when no row is left (a one-row API feedback
object, a drop of the subject's rows only); a curated Parquet file is rewritten even when
empty, so the dataset version keeps its files, and its manifest gets the new row count and an
`erasures` entry. Then every version that held the subject, current or not, is deleted by
version id. `verify` reads everything again and names any version still holding the subject.

The order of the scan matters: capture first (the subject's predictions, whose feedback is
the subject's too), then feedback, raw and quarantine, then curated (whose rows are found by
the fingerprints of the subject's raw rows in the drop each dataset version came from).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from botocore.exceptions import ClientError

from functions.common.config import DatasetConfig
from functions.common.errors import RegistryError, StorageError
from functions.common.layout import DATA_FILE, MANIFEST_FILE, data_version_sort_key, dataset_key
from functions.ml.erasure import (
    Filtered,
    Matcher,
    Subject,
    UnreadableFileError,
    filter_json_lines,
    filter_parquet,
    filter_table,
    fingerprints,
)

CAPTURE, FEEDBACK, RAW, QUARANTINE, CURATED = "capture", "feedback", "raw", "quarantine", "curated"
AREAS = (CAPTURE, FEEDBACK, RAW, QUARANTINE, CURATED)
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
            "key": _redacted(self.key, redact),
            "action": self.action,
            "rows_removed": self.rows_removed,
            "rows_kept": self.rows_kept,
            "versions_deleted": self.versions_deleted,
            "new_version": self.new_version,
        }


@dataclass
class _Version:
    version_id: str
    latest: bool


@contextmanager
def _translated(operation: str, bucket: str, key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        raise StorageError(f"{operation} s3://{bucket}/{key} failed: {code}: {exc}") from exc


CuratedRowsHook = Callable[[str, str, int], None]
"""Called with (dataset, data_version, rows left) after a curated version was rewritten."""


class Eraser:
    """Finds and erases one subject in the data bucket; `s3` must be allowed to delete object
    versions (the stack's erasure role: raw/ refuses deletes from anyone else)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        dataset: DatasetConfig,
        *,
        on_curated: CuratedRowsHook | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.dataset = dataset
        self.on_curated = on_curated

    def find(
        self,
        subject: Subject,
        *,
        linked: frozenset[tuple[str, int]] = frozenset(),
        curated_fingerprints: dict[str, frozenset[int]] | None = None,
    ) -> Findings:
        """Every key with a version holding `subject`; nothing is written."""
        findings = Findings(subject=subject, linked=linked)
        raw_rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        with TemporaryDirectory(prefix="erasure-") as workdir:
            scan = _Scan(self, Path(workdir), findings)
            found_linked = set(linked)
            for key, versions in self._keys(f"{CAPTURE}/"):
                removed = scan.key(CAPTURE, key, versions, Matcher(subject), keep_removed=True)
                for rows in removed.values():
                    found_linked.update(_predictions(rows))
            findings.linked = frozenset(found_linked)
            feedback = Matcher(subject, findings.linked)
            for key, versions in self._keys(f"{FEEDBACK}/"):
                scan.key(FEEDBACK, key, versions, feedback)
            for area in (RAW, QUARANTINE):
                for key, versions in self._keys(f"{area}/"):
                    removed = scan.key(area, key, versions, feedback, keep_removed=area == RAW)
                    raw_rows.update({(key, v): rows for v, rows in removed.items()})
            for key, versions in self._keys(f"{CURATED}/"):
                if not key.endswith(f"/{DATA_FILE}"):
                    continue
                prints = (
                    curated_fingerprints.get(key, frozenset())
                    if curated_fingerprints is not None
                    else self._curated_fingerprints(key, raw_rows)
                )
                if prints:
                    findings.curated_fingerprints[key] = prints
                scan.key(CURATED, key, versions, feedback, fingerprints=prints)
        return findings

    def erase(self, findings: Findings, *, erasure_id: str, at: str) -> list[KeyResult]:
        """Rewrite or delete each found key's current version, then delete every version that
        held the subject."""
        results = []
        with TemporaryDirectory(prefix="erasure-") as workdir:
            for finding in findings.keys:
                if not finding.hits:
                    continue
                results.append(self._erase_key(finding, findings, Path(workdir), erasure_id, at))
        return results

    def verify(self, findings: Findings) -> Findings:
        """Scan again (with the predictions and fingerprints found before the erasure, whose
        sources are gone now): what still holds the subject."""
        return self.find(
            findings.subject,
            linked=findings.linked,
            curated_fingerprints=findings.curated_fingerprints,
        )

    def _erase_key(
        self, finding: KeyFinding, findings: Findings, workdir: Path, erasure_id: str, at: str
    ) -> KeyResult:
        key = finding.key
        result = KeyResult(finding.area, key, finding.action, 0, None, [])
        if finding.current in finding.hits:
            source = workdir / "current"
            content_type = self._download(key, finding.current, source)
            out = workdir / "filtered"
            filtered = _filter(
                finding.area,
                key,
                source,
                out,
                Matcher(findings.subject, findings.linked),
                self.dataset.delimiter,
                findings.curated_fingerprints.get(key, frozenset()),
            )
            result.rows_removed, result.rows_kept = filtered.removed, filtered.kept
            if finding.action == DELETED:
                if not finding.all_versions_hit:
                    # Older versions without the subject stay; a marker keeps them noncurrent.
                    with _translated("delete", self.bucket, key):
                        marker = self.s3.delete_object(Bucket=self.bucket, Key=key)
                    result.new_version = marker.get("VersionId")
            else:
                with _translated("put", self.bucket, key), out.open("rb") as body:
                    written = self.s3.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentType=content_type,
                        Metadata={"erasure-id": erasure_id},
                    )
                result.new_version = written.get("VersionId")
                if finding.area == CURATED:
                    self._record_in_manifest(key, filtered, erasure_id, at)
        for version_id in finding.hits:
            with _translated("delete version", self.bucket, key):
                self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            result.versions_deleted.append(version_id)
        if finding.all_versions_hit:
            self._drop_delete_markers(key)
        return result

    def _drop_delete_markers(self, key: str) -> None:
        """A key left with delete markers only is removed whole: its name may carry the
        subject (feedback keys hold the request id)."""
        with _translated("list versions", self.bucket, key):
            listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key)
        if any(v["Key"] == key for v in listed.get("Versions", [])):
            return
        for marker in listed.get("DeleteMarkers", []):
            if marker["Key"] == key:
                with _translated("delete marker", self.bucket, key):
                    self.s3.delete_object(
                        Bucket=self.bucket, Key=key, VersionId=marker["VersionId"]
                    )

    def _record_in_manifest(self, key: str, filtered: Filtered, erasure_id: str, at: str) -> None:
        manifest_key = key.removesuffix(DATA_FILE) + MANIFEST_FILE
        manifest = self._manifest(manifest_key)
        if manifest is None:
            return
        rows = manifest.setdefault("rows", {})
        rows["out"] = filtered.kept
        manifest.setdefault("erasures", []).append(
            {"erasure_id": erasure_id, "at": at, "rows_removed": filtered.removed}
        )
        with _translated("put", self.bucket, manifest_key):
            self.s3.put_object(
                Bucket=self.bucket,
                Key=manifest_key,
                Body=json.dumps(manifest, indent=2, default=str).encode(),
                ContentType="application/json",
            )
        if self.on_curated is not None and manifest.get("data_version"):
            self.on_curated(str(manifest["dataset"]), str(manifest["data_version"]), filtered.kept)

    def _curated_fingerprints(
        self, key: str, raw_rows: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> frozenset[int]:
        """Fingerprints of the subject's rows in the drop this dataset version came from."""
        manifest = self._manifest(key.removesuffix(DATA_FILE) + MANIFEST_FILE)
        if not manifest or not isinstance(manifest.get("schema"), dict):
            return frozenset()
        source = manifest.get("source") or {}
        version = source.get("version_id")
        rows = [
            row
            for (raw_key, raw_version), found in raw_rows.items()
            if raw_key == source.get("key") and (version is None or raw_version == version)
            for row in found
        ]
        return fingerprints(
            rows,
            schema=manifest["schema"],
            target=str(manifest.get("target") or self.dataset.target),
            missing_markers=self.dataset.missing_markers,
        )

    def _manifest(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"NoSuchKey", "404"}:
                return None
            raise StorageError(f"get s3://{self.bucket}/{key} failed: {exc}") from exc
        document = json.loads(body)
        return document if isinstance(document, dict) else None

    def _keys(self, prefix: str) -> Iterator[tuple[str, list[_Version]]]:
        """Keys under `prefix` with their object versions (delete markers left out; a key
        whose latest entry is a delete marker has no current version)."""
        versions: dict[str, list[_Version]] = {}
        paginator = self.s3.get_paginator("list_object_versions")
        with _translated("list versions", self.bucket, prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Versions", []):
                    if item["Key"].endswith("/"):
                        continue
                    versions.setdefault(item["Key"], []).append(
                        _Version(str(item.get("VersionId") or "null"), bool(item["IsLatest"]))
                    )
        yield from sorted(versions.items())

    def _download(self, key: str, version_id: str, destination: Path) -> str:
        extra = {} if version_id == "null" else {"VersionId": version_id}
        with _translated("get", self.bucket, key):
            response = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)
            with destination.open("wb") as file:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    file.write(chunk)
        return str(response.get("ContentType") or "application/octet-stream")


class _Scan:
    """Reads every version of a key and records the versions holding the subject."""

    def __init__(self, eraser: Eraser, workdir: Path, findings: Findings) -> None:
        self.eraser = eraser
        self.workdir = workdir
        self.findings = findings

    def key(
        self,
        area: str,
        key: str,
        versions: list[_Version],
        matcher: Matcher,
        *,
        fingerprints: frozenset[int] = frozenset(),
        keep_removed: bool = False,
    ) -> dict[str, list[dict[str, Any]]]:
        """Scan `key`; returns the removed rows per version id when `keep_removed`."""
        self.findings.objects_scanned += 1
        current = next((v.version_id for v in versions if v.latest), None)
        finding = KeyFinding(area, key, {}, current, versions=len(versions))
        removed: dict[str, list[dict[str, Any]]] = {}
        source, out = self.workdir / "version", self.workdir / "filtered"
        for version in versions:
            self.findings.versions_scanned += 1
            self.eraser._download(key, version.version_id, source)
            try:
                filtered = _filter(
                    area,
                    key,
                    source,
                    out,
                    matcher,
                    self.eraser.dataset.delimiter,
                    fingerprints,
                    keep_removed=keep_removed,
                )
            except UnreadableFileError as exc:
                if matcher.subject.value.encode() in source.read_bytes():
                    finding.unreadable[version.version_id] = str(exc)
                continue
            if version.latest:
                finding.current_rows = filtered.rows_in
            if filtered.removed:
                finding.hits[version.version_id] = filtered.removed
                removed[version.version_id] = filtered.removed_rows
        if finding.hits or finding.unreadable:
            self.findings.keys.append(finding)
        return removed


def _filter(
    area: str,
    key: str,
    source: Path,
    out: Path,
    matcher: Matcher,
    delimiter: str,
    prints: frozenset[int],
    *,
    keep_removed: bool = False,
) -> Filtered:
    if area == CAPTURE:
        return filter_json_lines(source, out, matcher, keep_removed=keep_removed)
    if area == CURATED:
        return filter_parquet(source, out, matcher, fingerprints=prints)
    if area == FEEDBACK and not key.lower().endswith(".csv"):
        return filter_json_lines(source, out, matcher, keep_removed=keep_removed)
    return filter_table(source, key, out, matcher, delimiter=delimiter, keep_removed=keep_removed)


def _predictions(rows: list[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    for row in rows:
        request_id, index = row.get("request_id"), row.get("row", 0)
        if request_id is not None and type(index) is int:
            yield str(request_id), index


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
            {"key": _redacted(key, subject.value), "version_id": version, "reason": why}
            for key, version, why in findings.unreadable
        ],
        "verified": remaining is not None and not remaining.keys,
        "remaining": [
            {"key": _redacted(f.key, subject.value), "versions": sorted({*f.hits, *f.unreadable})}
            for f in (remaining.keys if remaining is not None else [])
        ],
    }


def _redacted(key: str, value: str | None) -> str:
    """Keys can carry the subject (`feedback/dt=.../<request_id>-<row>.json`): not in clear."""
    return key.replace(value, "<subject>") if value else key


def registry_rows_updater(dynamodb: Any, table: str) -> CuratedRowsHook:
    """Keeps the registry's row count of a dataset version equal to its rewritten Parquet."""

    def update(dataset: str, data_version: str, rows: int) -> None:
        try:
            dynamodb.update_item(
                TableName=table,
                Key={
                    "pk": {"S": dataset_key(dataset)},
                    "sk": {"S": data_version_sort_key(data_version)},
                },
                UpdateExpression="SET #rows = :rows",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#rows": "rows"},
                ExpressionAttributeValues={":rows": {"N": str(rows)}},
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code != "ConditionalCheckFailedException":
                raise RegistryError(f"update_item on table {table} failed: {code}") from exc

    return update
