"""Delimited text (CSV, CSV.gz), read in chunks by pyarrow's streaming reader."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from functions.ml.errors import DataValidationError, RejectionCode
from functions.ml.readers.formats import FileFormat
from functions.ml.readers.limits import (
    GZIP_ERRORS,
    ReadLimits,
    limited_stream,
    open_text,
    text_errors,
)
from functions.ml.readers.source import TEXT_TYPES, SourceTable, rebatch

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 20
_MAX_MALFORMED_SAMPLES = 5
_STRADDLING = "straddling object straddles two block boundaries"


class DelimitedTable(SourceTable):
    """CSV-like text, parsed by pyarrow's streaming reader: strict about field counts (pandas'
    chunked reader silently truncates long rows) and about UTF-8, and far lighter on memory."""

    def __init__(
        self,
        path: Path,
        file_format: FileFormat,
        *,
        delimiter: str,
        chunk_rows: int,
        limits: ReadLimits | None = None,
    ):
        super().__init__(path, file_format, limits)
        self.delimiter = delimiter
        self._malformed = 0
        self._malformed_samples: list[str] = []
        self._rows_read = 0
        lines, whole_file = self._first_rows()
        if not lines:
            raise DataValidationError(RejectionCode.EMPTY_FILE, "The file has no header line.")
        self.header = lines[0]
        self.limits.check_columns(len(self.header), "The header", rows=[1])
        self.limits.check_names(self.header, rows=[1])
        self.columns = list(dict.fromkeys(self.header))
        self.chunk_rows = self.limits.rows_per_chunk(chunk_rows, len(self.columns))
        # pyarrow cannot skip a lone header line that lacks a final newline.
        self._header_only = whole_file and len(lines) == 1
        _check_delimiter(lines, delimiter)

    def _first_rows(self) -> tuple[list[list[str]], bool]:
        """The first non-empty rows, and whether they are all the file has."""
        # The csv module refuses fields over 128 KiB by default; records up to the cap are fine.
        csv.field_size_limit(max(csv.field_size_limit(), self.limits.max_record_bytes))
        rows: list[list[str]] = []
        try:
            # Format detection decompresses only a prefix: the damage can come later.
            gzipped = self.file_format.gzipped
            with (
                text_errors("The header", gzipped=gzipped),
                open_text(self.path, gzipped, self.limits) as text,
            ):
                rows.extend(islice(csv.reader(text, delimiter=self.delimiter), _SNIFF_LINES))
                return [row for row in rows if row], len(rows) < _SNIFF_LINES
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise self.limits.record_too_large(
                    len(rows), "(counting data rows after the header) has a longer field"
                ) from None
            raise DataValidationError(
                RejectionCode.MALFORMED_ROWS, f"The first lines are not valid CSV ({exc})."
            ) from None

    @property
    def malformed_rows(self) -> int:
        return self._malformed

    @property
    def malformed_samples(self) -> list[str]:
        return list(self._malformed_samples)

    def _skip_row(self, row: Any) -> str:
        self._malformed += 1
        if len(self._malformed_samples) < _MAX_MALFORMED_SAMPLES:
            self._malformed_samples.append(
                f"{row.actual_columns} fields instead of {row.expected_columns}: {row.text[:200]}"
            )
        return "skip"

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        if self._header_only:
            return
        # Positional names sidestep whatever the header contains; the real names come back below.
        positional = [f"c{i}" for i in range(len(self.columns))]
        wanted = columns if columns is not None else self.columns
        index = {name: i for i, name in enumerate(self.columns)}
        include = [positional[index[name]] for name in wanted]
        options = {
            # A record must fit in one block (quoted line breaks included): the record cap.
            # The header is one CSV row, which quotes can spread over several lines.
            "read_options": pacsv.ReadOptions(
                skip_rows_after_names=1,
                column_names=positional,
                block_size=self.limits.max_record_bytes,
                encoding="utf8",
            ),
            "parse_options": pacsv.ParseOptions(
                delimiter=self.delimiter,
                newlines_in_values=True,
                invalid_row_handler=self._skip_row,
            ),
            "convert_options": pacsv.ConvertOptions(
                column_types=dict.fromkeys(positional, pa.string()),
                include_columns=include,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        }
        for table in rebatch(self._batches(options), self.chunk_rows):
            frame = table.to_pandas(types_mapper=TEXT_TYPES)
            frame.columns = list(wanted)
            yield frame

    def _batches(self, options: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        compression = "gzip" if self.file_format.gzipped else None
        self._rows_read = 0
        try:
            with pa.input_stream(str(self.path), compression=compression) as stream:
                limited = limited_stream(stream, self.path, compression is not None, self.limits)
                for batch in pacsv.open_csv(limited, **options):
                    self._rows_read += batch.num_rows
                    yield batch
        except pa.ArrowInvalid as exc:
            text = str(exc)
            if _STRADDLING in text:
                record = self._rows_read + self._malformed + 1
                raise self.limits.record_too_large(
                    record,
                    "(counting data rows after the header) is too long to fit the reader's block",
                ) from None
            if "UTF8" in text or "UTF-8" in text:
                raise DataValidationError(
                    RejectionCode.NOT_UTF8,
                    "The file contains bytes that are not UTF-8 text.",
                    details={"reader": text},
                ) from None
            raise DataValidationError(
                RejectionCode.MALFORMED_ROWS,
                f"The file is not valid delimited text ({text}).",
                details={"reader": text},
            ) from None
        except GZIP_ERRORS as exc:
            if not self.file_format.gzipped:
                raise
            raise DataValidationError(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
            ) from None


def _check_delimiter(rows: list[list[str]], delimiter: str) -> None:
    """A header that splits into one field with the configured delimiter but into several with
    another (consistently over the first lines) is a wrong-delimiter drop, reported as such
    rather than as a missing target."""
    if len(rows[0]) > 1:
        return
    lines = [delimiter.join(row) for row in rows]
    candidate = other_delimiter(lines, delimiter)
    if candidate is not None:
        raise DataValidationError(
            RejectionCode.WRONG_DELIMITER,
            f"The file is separated by {candidate!r}, but dataset.delimiter is {delimiter!r}.",
            details={"expected": delimiter, "detected": candidate, "header": lines[0][:200]},
        )


def other_delimiter(lines: list[str], delimiter: str) -> str | None:
    """The candidate delimiter (not `delimiter`) that splits each of `lines`, one field each
    when read with `delimiter`, into the same number of fields, more than one; or None."""
    for candidate in CANDIDATE_DELIMITERS:
        if candidate == delimiter:
            continue
        try:
            counts = {len(next(csv.reader([line], delimiter=candidate))) for line in lines}
        except csv.Error:
            # A quoted field spanning lines (an unbalanced quote) does not re-split.
            continue
        if len(counts) == 1 and counts.pop() > 1:
            return candidate
    return None
