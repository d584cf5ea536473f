"""botocore's `ClientError` read and translated in one place: the error code of a failed call,
what kind of failure it is, and the vocabulary's error (`functions.common.errors`) raised in
its stead, so nothing outside the adapters handles botocore's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from functions.common.errors import AdapterError, ObjectNotFoundError, StorageError

NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound"})
"""S3's codes for a missing object or object version."""
CONDITION_FAILED = "ConditionalCheckFailedException"
"""DynamoDB: the condition expression of a write did not hold."""
ALREADY_STORED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
"""S3: a conditional write (`If-None-Match: *`) found the key taken, or raced another one."""


def error_code(exc: ClientError) -> str:
    """The service's error code of a failed call ("Unknown" when the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in NOT_FOUND


def is_condition_failed(exc: ClientError) -> bool:
    return error_code(exc) == CONDITION_FAILED


def is_already_stored(exc: ClientError) -> bool:
    return error_code(exc) in ALREADY_STORED


def failure(error: type[AdapterError], what: str, exc: ClientError) -> AdapterError:
    """`error` saying that `what` (the operation and its target) failed, and with which code."""
    return error(f"{what} failed: {error_code(exc)}: {exc}")


@contextmanager
def translated(error: type[AdapterError], what: str) -> Iterator[None]:
    """Raise `error` (see `failure`) for a `ClientError` of the block."""
    try:
        yield
    except ClientError as exc:
        raise failure(error, what, exc) from exc


@contextmanager
def storage_errors(operation: str, bucket: str, key: str) -> Iterator[None]:
    """For S3 calls on `s3://bucket/key`: `ObjectNotFoundError` for a missing object (or
    version), `StorageError` for any other failure."""
    try:
        yield
    except ClientError as exc:
        where = f"s3://{bucket}/{key}"
        if is_not_found(exc):
            raise ObjectNotFoundError(
                f"{operation} {where}: object not found ({error_code(exc)})"
            ) from exc
        raise failure(StorageError, f"{operation} {where}", exc) from exc
    except S3UploadFailedError as exc:
        # upload_file reports a failed PutObject or UploadPart as this, not as the ClientError.
        error = exc.__context__
        if isinstance(error, ClientError):
            # The ClientError, not the wrapper, whose message names the local file uploaded.
            raise failure(StorageError, f"{operation} s3://{bucket}/{key}", error) from exc
        raise StorageError(f"{operation} s3://{bucket}/{key} failed: Unknown") from exc
