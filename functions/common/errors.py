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


class ModelRegistryError(Exception):
    """A model registry request that cannot be done as asked. Unlike `RegistryError` (an AWS
    call failed), retrying the same request does not help."""


class RunNotFoundError(ModelRegistryError, LookupError):
    """No training run with that id is recorded for the model."""


class VersionNotFoundError(ModelRegistryError, LookupError):
    """The model has no registered version with that number."""


class VersionExistsError(ModelRegistryError):
    """A version with that number is already registered; versions are never overwritten."""


class StalePromotionError(ModelRegistryError):
    """The alias no longer points where the promoter expected (another promotion or rollback
    won the race); nothing was changed. `actual` is the version the alias points to now."""

    def __init__(self, message: str, *, expected: int | None = None, actual: int | None = None):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class NothingToRollBackError(ModelRegistryError):
    """The alias has no earlier version in its history to go back to."""


class DataVersionNotFoundError(ModelRegistryError, LookupError):
    """The requested dataset version is not registered (or no version exists yet)."""


class DataVersionRetiredError(ModelRegistryError):
    """The dataset version was retired (`mlops data retire`): it is kept, but no longer used
    for training, and cannot be retired twice."""


class EventPublishError(AdapterError):
    """EventBridge did not accept an event (an AWS error or a failed entry)."""


class ArtifactIntegrityError(Exception):
    """A model artifact's bytes differ from the checksum recorded when it was trained."""
