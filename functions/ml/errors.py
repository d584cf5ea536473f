"""Why a dropped file was rejected. The exception class name is the error name Step Functions
sees (a Lambda failure's `errorType`), so the names below are part of the pipeline contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class RejectionCode(StrEnum):
    """Stable, machine-readable reasons written to `quarantine/...reason.json`."""

    UNKNOWN_DATASET = "unknown_dataset"
    EMPTY_FILE = "empty_file"
    BINARY_CONTENT = "binary_content"
    NOT_UTF8 = "not_utf8"
    NOT_GZIP = "not_gzip"
    NOT_PARQUET = "not_parquet"
    NOT_JSON_LINES = "not_json_lines"
    WRONG_DELIMITER = "wrong_delimiter"
    MALFORMED_ROWS = "malformed_rows"
    LINE_TOO_LONG = "line_too_long"
    RECORD_TOO_LARGE = "record_too_large"
    TOO_MANY_COLUMNS = "too_many_columns"
    COLUMN_NAME_TOO_LONG = "column_name_too_long"
    GZIP_BOMB = "gzip_bomb"
    HEADER_ONLY = "header_only"
    DUPLICATE_COLUMNS = "duplicate_columns"
    MISSING_TARGET = "missing_target"
    MISSING_COLUMNS = "missing_columns"
    SCHEMA_MISMATCH = "schema_mismatch"
    WRONG_TYPE = "wrong_type"
    ALL_NULL_COLUMN = "all_null_column"
    TOO_MANY_NULLS = "too_many_nulls"
    TOO_FEW_ROWS = "too_few_rows"
    SINGLE_CLASS = "single_class"
    TOO_FEW_CLASS_ROWS = "too_few_class_rows"
    TOO_MANY_CLASSES = "too_many_classes"
    UNKNOWN_CLASS = "unknown_class"
    CONSTANT_TARGET = "constant_target"
    INGEST_CRASHED = "ingest_crashed"


class DataRejectedError(Exception):
    """A dropped file that must not become a dataset version; the message is one human sentence.

    `columns` and `rows` say where the problem is (rows are examples, not an exhaustive list);
    `file_format` is filled in once the format is known.
    """

    def __init__(
        self,
        code: RejectionCode,
        message: str,
        *,
        columns: list[str] | None = None,
        rows: list[Any] | None = None,
        details: dict[str, Any] | None = None,
        file_format: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.columns = columns or []
        self.rows = rows or []
        self.details = details or {}
        self.file_format = file_format

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "message": self.message,
            "columns": self.columns,
            "rows": self.rows,
            "details": self.details,
            "format": self.file_format,
        }


class DataValidationError(DataRejectedError):
    """The file's content is unreadable or breaks the dataset contract."""


class UnknownDatasetError(DataRejectedError):
    """The file was dropped under `raw/<name>/` for a dataset this pipeline does not own."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(RejectionCode.UNKNOWN_DATASET, message, details=details)


class IngestCrashedError(DataRejectedError):
    """The ingest function itself died on the file (out of memory, timed out): the file is
    quarantined unread by the pipeline's catch, with the failure Lambda reported."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(RejectionCode.INGEST_CRASHED, message, details=details)
