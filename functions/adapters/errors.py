"""botocore's `ClientError` read and translated in one place: the error code of a failed call,
what kind of failure it is, and the vocabulary's error (`functions.common.errors`) raised in
its stead, so nothing outside the adapters handles botocore's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError

from functions.common.errors import AdapterError

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
