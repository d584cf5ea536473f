"""S3 adapter for the data bucket: download to a local file, upload, server-side copy, JSON
documents, listings, metadata, ranged and streamed reads, writes that never overwrite. Files
are streamed (managed transfers), never held in memory whole."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.adapters import aws
from functions.adapters.errors import failure, is_already_stored, storage_errors
from functions.common import formats, layout
from functions.common.errors import ObjectNotFoundError, StorageError

JSON_CONTENT_TYPE = "application/json"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


class ObjectStore:
    """S3 objects; the client is created on first use unless one is passed in."""

    _s3 = aws.LazyClient("s3")

    def __init__(self, s3: Any | None = None) -> None:
        self._client = s3

    def download(
        self, bucket: str, key: str, destination: Path, *, version_id: str | None = None
    ) -> Path:
        """Stream the object (that exact version, when given) into `destination`."""
        extra = {"VersionId": version_id} if version_id else None
        with storage_errors("download", bucket, key), destination.open("wb") as file:
            self._s3.download_fileobj(bucket, key, file, ExtraArgs=extra)
        return destination

    def upload_file(
        self, path: Path, bucket: str, key: str, *, content_type: str = PARQUET_CONTENT_TYPE
    ) -> None:
        with storage_errors("upload", bucket, key):
            self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})

    def copy(
        self,
        bucket: str,
        key: str,
        destination_key: str,
        *,
        version_id: str | None = None,
        destination_bucket: str | None = None,
    ) -> None:
        """Server-side copy of one object version (single request: objects up to 5 GB)."""
        source: dict[str, str] = {"Bucket": bucket, "Key": key}
        if version_id:
            source["VersionId"] = version_id
        with storage_errors("copy", bucket, key):
            self._s3.copy_object(
                CopySource=source, Bucket=destination_bucket or bucket, Key=destination_key
            )

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        body = json.dumps(document, indent=2, sort_keys=False, default=str).encode()
        with storage_errors("put", bucket, key):
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=JSON_CONTENT_TYPE)

    def put_bytes(
        self, bucket: str, key: str, body: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        with storage_errors("put", bucket, key):
            self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with storage_errors("get", bucket, key):
            return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def get_json(self, bucket: str, key: str) -> Any:
        with storage_errors("get", bucket, key):
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)

    def list_objects(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Every object under `prefix` (key, size, ETag), in key order."""
        found: list[dict[str, Any]] = []
        with storage_errors("list", bucket, prefix):
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                found.extend(
                    {"key": item["Key"], "size": item["Size"], "etag": item["ETag"].strip('"')}
                    for item in page.get("Contents", [])
                )
        return found

    def list_modified(
        self, bucket: str, prefix: str, *, delimiter: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects under `prefix` (key, size, LastModified as `modified`), in key order; with
        `delimiter`, those not under a further delimiter only."""
        extra = {"Delimiter": delimiter} if delimiter else {}
        found: list[dict[str, Any]] = []
        with storage_errors("list", bucket, prefix):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, **extra
            )
            for page in pages:
                found.extend(
                    {
                        "key": item["Key"],
                        "size": int(item["Size"]),
                        "modified": item["LastModified"],
                    }
                    for item in page.get("Contents", [])
                )
        return found

    def child_prefixes(self, bucket: str, prefix: str) -> list[str]:
        """The "folders" directly under `prefix` (each ending in `/`)."""
        found: list[str] = []
        with storage_errors("list", bucket, prefix):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return found

    def metadata(self, bucket: str, key: str, *, version_id: str | None = None) -> dict[str, str]:
        """The user metadata of the object (that exact version, when given)."""
        extra = {"VersionId": version_id} if version_id else {}
        with storage_errors("head", bucket, key):
            head = self._s3.head_object(Bucket=bucket, Key=key, **extra)
        return dict(head.get("Metadata") or {})

    def put_bytes_once(self, bucket: str, key: str, body: bytes, *, content_type: str) -> bool:
        """Write the object unless the key exists (`If-None-Match: *`): False, nothing written,
        when it does or a concurrent write of it won."""
        try:
            self._s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as exc:
            if is_already_stored(exc):
                return False
            raise failure(StorageError, f"put s3://{bucket}/{key}", exc) from exc
        return True

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the key has a current version (a HEAD request)."""
        try:
            self.metadata(bucket, key)
        except ObjectNotFoundError:
            return False
        return True

    def sha256(self, bucket: str, key: str) -> str:
        """The SHA-256 of the object's bytes, streamed."""
        digest = hashlib.sha256()
        for chunk in self.stream(bucket, key):
            digest.update(chunk)
        return digest.hexdigest()

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of the object: one ranged GET."""
        if end <= start:
            return b""
        with storage_errors("get", bucket, key):
            response = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            return bytes(response["Body"].read())

    def stream(self, bucket: str, key: str, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes in chunks, never held whole."""
        with storage_errors("get", bucket, key):
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            yield from body.iter_chunks(chunk_bytes)

    def lines(self, bucket: str, key: str) -> Iterator[bytes]:
        """The object's lines, streamed."""
        with storage_errors("get", bucket, key):
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            yield from body.iter_lines()

    def reader(self, bucket: str, key: str, size: int) -> io.BufferedReader:
        """A seekable, read-only file of the object that fetches what is read by ranged GETs
        (Parquet footers and row groups without downloading the whole file)."""
        return io.BufferedReader(_RangeFile(self, bucket, key, size), buffer_size=1 << 20)


class _RangeFile(io.RawIOBase):
    def __init__(self, store: ObjectStore, bucket: str, key: str, size: int) -> None:
        self._store, self._bucket, self._key, self._size = store, bucket, key, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._size, self._position + len(buffer))
        data = self._store.get_range(self._bucket, self._key, self._position, end)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def read_quarantine_reason(
    store: ObjectStore, bucket: str, raw_key: str, version_id: str | None = None
) -> dict[str, Any] | None:
    """The reason record of the drop at `raw_key` (where `layout.reason_key` puts it; of its
    version `version_id`, when given: a record of another version of the key is not this
    one's), or None when it has none."""
    try:
        record = store.get_json(bucket, layout.reason_key(raw_key))
    except ObjectNotFoundError:
        return None
    if not isinstance(record, dict):
        return None
    record = formats.read(formats.QUARANTINE_REASON, record)
    recorded = (record.get("source") or {}).get("version_id")
    if version_id and recorded and recorded != version_id:
        return None
    return record
