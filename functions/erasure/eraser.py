"""Erasure of one data subject from the data bucket: every version of every object under
capture/, shadow/, feedback/, raw/, quarantine/ and curated/ is read, and each key holding the
subject in any version is changed so that no version with the subject remains.

For a key whose current version holds the subject, a new version without the subject's rows
is written (same format), or a delete marker when no row is left (a one-row API feedback
object, a drop of the subject's rows only); a curated Parquet file is rewritten even when
empty, so the dataset version keeps its files, and its manifest gets the new row count and an
`erasures` entry. Then every version that held the subject, current or not, is deleted by
version id. `verify` reads everything again and names any version still holding the subject.

The order of the scan matters: capture first (the subject's predictions, whose feedback and
shadow records are the subject's too: a shadow record, one per captured request or chunk, goes
whole when one of its rows is the subject's), then shadow, feedback, raw and quarantine, then
curated (whose rows are found by the fingerprints of the subject's raw rows in the drop each
dataset version came from).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from functions.adapters.versions import ObjectVersion, ObjectVersions
from functions.common import formats
from functions.common.config.dataset import DatasetConfig
from functions.common.errors import ObjectNotFoundError
from functions.common.layout import DATA_FILE, MANIFEST_FILE
from functions.erasure.findings import (
    CAPTURE,
    CURATED,
    DELETED,
    FEEDBACK,
    QUARANTINE,
    RAW,
    SHADOW,
    Findings,
    KeyFinding,
    KeyResult,
)
from functions.ml.cleaning import normalise_column_name
from functions.ml.erasure import (
    Filtered,
    Matcher,
    Subject,
    UnreadableFileError,
    filter_json_lines,
    filter_parquet,
    filter_table,
    fingerprints,
    same_value,
)

CuratedRowsHook = Callable[[str, str, int], None]
"""Called with (dataset, data_version, rows left) after a curated version was rewritten."""


@dataclass
class Eraser:
    """Finds and erases one subject in the data bucket; `objects` must be allowed to delete
    object versions (the stack's erasure role: raw/ refuses deletes from anyone else)."""

    objects: ObjectVersions
    bucket: str
    dataset: DatasetConfig
    _: KW_ONLY
    on_curated: CuratedRowsHook | None = None

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
            for key, versions in self._keys(f"{SHADOW}/"):
                scan.key(SHADOW, key, versions, _matcher(SHADOW, subject, findings.linked))
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
                _matcher(finding.area, findings.subject, findings.linked),
                self.dataset.delimiter,
                findings.curated_fingerprints.get(key, frozenset()),
            )
            result.rows_removed, result.rows_kept = filtered.removed, filtered.kept
            if finding.action == DELETED:
                if not finding.all_versions_hit:
                    # Older versions without the subject stay; a marker keeps them noncurrent.
                    result.new_version = self.objects.delete(self.bucket, key)
            else:
                result.new_version = self.objects.put_version(
                    self.bucket,
                    key,
                    out,
                    content_type=content_type,
                    metadata={"erasure-id": erasure_id},
                )
                if finding.area == CURATED:
                    self._record_in_manifest(key, filtered, erasure_id, at)
        for version_id in finding.hits:
            self.objects.delete(self.bucket, key, version_id=version_id)
            result.versions_deleted.append(version_id)
        if finding.all_versions_hit:
            # Its name may carry the subject (feedback keys hold the request id).
            self.objects.drop_delete_markers(self.bucket, key)
        return result

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
        self.objects.put_json(
            self.bucket, manifest_key, formats.stamp(formats.DATASET_MANIFEST, manifest)
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
            document = self.objects.get_json(self.bucket, key)
        except ObjectNotFoundError:
            return None
        return (
            formats.read(formats.DATASET_MANIFEST, document) if isinstance(document, dict) else None
        )

    def _keys(self, prefix: str) -> Iterator[tuple[str, list[ObjectVersion]]]:
        """Keys under `prefix` with their object versions (delete markers left out; a key
        whose latest entry is a delete marker has no current version)."""
        versions: dict[str, list[ObjectVersion]] = {}
        for version in self.objects.list_versions(self.bucket, prefix):
            if not version.key.endswith("/"):
                versions.setdefault(version.key, []).append(version)
        yield from sorted(versions.items())

    def _download(self, key: str, version_id: str, destination: Path) -> str:
        return self.objects.download_version(self.bucket, key, version_id, destination)


@dataclass
class _Scan:
    """Reads every version of a key and records the versions holding the subject."""

    eraser: Eraser
    workdir: Path
    findings: Findings

    def key(
        self,
        area: str,
        key: str,
        versions: list[ObjectVersion],
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
    if area in (CAPTURE, SHADOW):
        return filter_json_lines(source, out, matcher, keep_removed=keep_removed, columnar=True)
    if area == CURATED:
        return filter_parquet(source, out, matcher, fingerprints=prints)
    if area == FEEDBACK and not key.lower().endswith(".csv"):
        return filter_json_lines(source, out, matcher, keep_removed=keep_removed)
    return filter_table(source, key, out, matcher, delimiter=delimiter, keep_removed=keep_removed)


@dataclass(frozen=True)
class ShadowRecords(Matcher):
    """A shadow record (one per captured request or chunk: `first_row`, `rows`, feature
    `columns`) is the subject's when it matches as any record does, when one of its rows is a
    prediction found to be the subject's, or when one of its columns holds the subject's
    value."""

    def record(self, record: Mapping[str, Any]) -> bool:
        # Its own fields and features as any record's; its predictions by row range below
        # (a shadow record has no `row`, which a plain record's linking reads as row 0).
        if Matcher(self.subject).record(record):
            return True
        request_id, first, rows = (record.get(k) for k in ("request_id", "first_row", "rows"))
        if request_id is not None and type(first) is int and type(rows) is int:
            if any((str(request_id), row) in self.linked for row in range(first, first + rows)):
                return True
        columns = record.get("columns")
        if not isinstance(columns, Mapping):
            return False
        return any(
            normalise_column_name(str(name)) == self.subject.column
            and isinstance(values, list)
            and any(same_value(value, self.subject.value) for value in values)
            for name, values in columns.items()
        )


def _matcher(area: str, subject: Subject, linked: frozenset[tuple[str, int]]) -> Matcher:
    return (ShadowRecords if area == SHADOW else Matcher)(subject, linked)


def _predictions(rows: list[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    for row in rows:
        request_id, index = row.get("request_id"), row.get("row", 0)
        if request_id is not None and type(index) is int:
            yield str(request_id), index
