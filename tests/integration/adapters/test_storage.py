"""The S3 adapter: exact object versions, server-side copies, and domain errors, not ClientError."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from functions.adapters.storage import ObjectStore
from functions.common.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud


def test_download_fetches_the_requested_version_not_the_latest(
    cloud: Cloud, tmp_path: Path
) -> None:
    old = cloud.s3.put_object(Bucket=cloud.bucket, Key="raw/churn/a.csv", Body=b"old")
    cloud.s3.put_object(Bucket=cloud.bucket, Key="raw/churn/a.csv", Body=b"new")

    path = ObjectStore().download(
        cloud.bucket, "raw/churn/a.csv", tmp_path / "a", version_id=old["VersionId"]
    )

    assert path.read_bytes() == b"old"


def test_copy_copies_the_requested_version_and_leaves_the_source_alone(cloud: Cloud) -> None:
    old = cloud.s3.put_object(Bucket=cloud.bucket, Key="raw/churn/a.csv", Body=b"old")
    cloud.s3.put_object(Bucket=cloud.bucket, Key="raw/churn/a.csv", Body=b"new")

    ObjectStore().copy(
        cloud.bucket, "raw/churn/a.csv", "quarantine/churn/a.csv", version_id=old["VersionId"]
    )

    assert cloud.body("quarantine/churn/a.csv") == b"old"
    assert cloud.body("raw/churn/a.csv") == b"new"


def test_json_documents_round_trip(cloud: Cloud) -> None:
    store = ObjectStore()

    store.put_json(cloud.bucket, "curated/x/manifest.json", {"rows": 3, "schema": {"a": "numeric"}})

    assert store.get_json(cloud.bucket, "curated/x/manifest.json") == {
        "rows": 3,
        "schema": {"a": "numeric"},
    }
    head = cloud.s3.head_object(Bucket=cloud.bucket, Key="curated/x/manifest.json")
    assert head["ContentType"] == "application/json"


def test_a_missing_object_is_object_not_found(cloud: Cloud, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="raw/churn/gone.csv"):
        ObjectStore().download(cloud.bucket, "raw/churn/gone.csv", tmp_path / "gone")


def test_other_failures_are_storage_errors_naming_the_aws_code(cloud: Cloud) -> None:
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        ObjectStore().put_json("no-such-bucket", "a.json", {})

    assert not isinstance(caught.value, ObjectNotFoundError)
