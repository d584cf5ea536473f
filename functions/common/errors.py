"""Errors of the AWS adapters, raised instead of botocore's `ClientError` so callers (and Step
Functions, which sees the class name as the error name) deal in domain terms."""

from __future__ import annotations


class AdapterError(Exception):
    """An AWS call failed; the message names the operation, the resource and AWS's error code."""


class StorageError(AdapterError):
    """An S3 operation on the data bucket failed."""


class ObjectNotFoundError(StorageError):
    """The object (or the requested version of it) does not exist."""


class RegistryError(AdapterError):
    """A DynamoDB operation on the registry table failed."""
