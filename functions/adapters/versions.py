"""S3 adapter for every version of an object (`mlops erase`): list the versions under a prefix,
read one version, write a new one, delete one by version id, and drop the delete markers of a
key left with nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.adapters.errors import storage_errors
from functions.adapters.storage import ObjectStore


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str
    """"null" for an object written before the bucket was versioned."""
    latest: bool


class ObjectVersions(ObjectStore):
    """Object versions of a versioned bucket; deleting a version needs a principal allowed to
    (the stack's erasure role: raw/ refuses deletes from anyone else)."""

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        """The object versions under `prefix` (delete markers left out), as listed."""
        found: list[ObjectVersion] = []
        with storage_errors("list versions", bucket, prefix):
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                found.extend(
                    ObjectVersion(
                        item["Key"], str(item.get("VersionId") or "null"), bool(item["IsLatest"])
                    )
                    for item in page.get("Versions", [])
                )
        return found

    def download_version(self, bucket: str, key: str, version_id: str, destination: Path) -> str:
        """Stream one version into `destination`; returns its content type."""
        extra = {} if version_id == "null" else {"VersionId": version_id}
        with storage_errors("get", bucket, key):
            response = self._s3.get_object(Bucket=bucket, Key=key, **extra)
            with destination.open("wb") as file:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    file.write(chunk)
        return str(response.get("ContentType") or "application/octet-stream")

    def put_version(
        self, bucket: str, key: str, path: Path, *, content_type: str, metadata: dict[str, str]
    ) -> str | None:
        """Write the file at `path` as the key's new current version; returns its version id."""
        with storage_errors("put", bucket, key), path.open("rb") as body:
            written = self._s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
        return _version_id(written)

    def delete(self, bucket: str, key: str, *, version_id: str | None = None) -> str | None:
        """Delete that version for good; without one, put a delete marker and return its id."""
        extra = {"VersionId": version_id} if version_id else {}
        with storage_errors("delete version" if version_id else "delete", bucket, key):
            return _version_id(self._s3.delete_object(Bucket=bucket, Key=key, **extra))

    def drop_delete_markers(self, bucket: str, key: str) -> None:
        """Remove the key whole when only delete markers are left of it."""
        with storage_errors("list versions", bucket, key):
            listed = self._s3.list_object_versions(Bucket=bucket, Prefix=key)
        if any(v["Key"] == key for v in listed.get("Versions", [])):
            return
        for marker in listed.get("DeleteMarkers", []):
            if marker["Key"] == key:
                with storage_errors("delete marker", bucket, key):
                    self._s3.delete_object(Bucket=bucket, Key=key, VersionId=marker["VersionId"])


def _version_id(response: dict[str, Any]) -> str | None:
    version = response.get("VersionId")
    return str(version) if version is not None else None
