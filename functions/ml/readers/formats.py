"""The format of a dropped file, decided by its content (gzip magic, `PAR1` magic, a JSON object
as the first character, else delimited text); the extension only has to agree where it makes a
promise the content breaks (`.gz`, `.parquet`)."""

from __future__ import annotations

import codecs
import gzip
import zlib
from enum import StrEnum
from pathlib import Path

from functions.ml.errors import DataValidationError, RejectionCode

SAMPLE_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# Text files have almost no control characters besides tab/newline/carriage return.
BINARY_CONTROL_SHARE = 0.01
CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


class FileFormat(StrEnum):
    CSV = "csv"
    CSV_GZIP = "csv.gz"
    PARQUET = "parquet"
    JSON_LINES = "jsonl"
    JSON_LINES_GZIP = "jsonl.gz"

    @property
    def gzipped(self) -> bool:
        return self in (FileFormat.CSV_GZIP, FileFormat.JSON_LINES_GZIP)

    @property
    def delimited(self) -> bool:
        return self in (FileFormat.CSV, FileFormat.CSV_GZIP)


def detect_format(path: Path, name: str) -> FileFormat:
    """The format of the file at `path`, named `name` in the bucket (its extension is a hint).

    Raises DataValidationError (empty_file, not_gzip, not_parquet, binary_content, not_utf8,
    not_json_lines) when the content is not a table this pipeline reads.
    """
    with path.open("rb") as file:
        head = file.read(SAMPLE_BYTES)
    lower = name.lower()
    if not head:
        raise DataValidationError(RejectionCode.EMPTY_FILE, "The file is empty (0 bytes).")
    if head.startswith(GZIP_MAGIC):
        inner = _text_format(_gunzip_sample(path), inside="the decompressed gzip stream")
        return FileFormat.CSV_GZIP if inner is FileFormat.CSV else FileFormat.JSON_LINES_GZIP
    if lower.endswith(".gz"):
        raise DataValidationError(
            RejectionCode.NOT_GZIP,
            "The file is named .gz but is not gzip-compressed (no gzip magic bytes).",
            details={"first_bytes": head[:8].hex()},
        )
    if head.startswith(PARQUET_MAGIC):
        return FileFormat.PARQUET
    if lower.endswith((".parquet", ".pq")):
        raise DataValidationError(
            RejectionCode.NOT_PARQUET,
            "The file is named .parquet but does not start with the Parquet magic bytes.",
            details={"first_bytes": head[:8].hex()},
        )
    return _text_format(head, inside="the file")


def _gunzip_sample(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as file:
            return file.read(SAMPLE_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataValidationError(
            RejectionCode.NOT_GZIP,
            f"The file starts like gzip but cannot be decompressed ({exc}).",
        ) from None


def _text_format(sample: bytes, *, inside: str) -> FileFormat:
    if not sample:
        raise DataValidationError(RejectionCode.EMPTY_FILE, f"{inside.capitalize()} is empty.")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataValidationError(
            RejectionCode.NOT_UTF8, f"{inside.capitalize()} is UTF-16 text; use UTF-8."
        )
    if b"\x00" in sample or _control_share(sample) > BINARY_CONTROL_SHARE:
        raise DataValidationError(
            RejectionCode.BINARY_CONTENT,
            f"{inside.capitalize()} is binary data, not CSV, Parquet or JSON Lines.",
            details={"first_bytes": sample[:8].hex()},
        )
    try:
        # A sample can end inside a multi-byte character: only complete characters are checked.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            RejectionCode.NOT_UTF8,
            f"{inside.capitalize()} is not UTF-8 text (invalid byte at offset {exc.start}).",
            details={"byte_offset": exc.start, "bytes": sample[exc.start : exc.start + 4].hex()},
        ) from None
    stripped = text.lstrip()
    if not stripped:
        raise DataValidationError(
            RejectionCode.EMPTY_FILE, f"{inside.capitalize()} contains only whitespace."
        )
    if stripped[0] == "{":
        return FileFormat.JSON_LINES
    if stripped[0] == "[":
        raise DataValidationError(
            RejectionCode.NOT_JSON_LINES,
            f"{inside.capitalize()} is a JSON array; drop JSON Lines (one object per line).",
        )
    return FileFormat.CSV


def _control_share(sample: bytes) -> float:
    removed = len(sample) - len(sample.translate(None, CONTROL_BYTES))
    return removed / len(sample)
