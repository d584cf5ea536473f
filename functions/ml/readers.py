"""Format detection and chunked readers for dropped files: CSV, CSV.gz, Parquet, JSON Lines.

The format is decided by content (gzip magic, `PAR1` magic, a JSON object as the first
character, else delimited text); the extension only has to agree where it makes a promise the
content breaks (`.gz`, `.parquet`). Readers yield pandas frames of at most `chunk_rows` rows with
the file's own column names, so memory stays bounded by the chunk size, not the file size.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions.ml.errors import DataValidationError, RejectionCode

SAMPLE_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 20
_MAX_MALFORMED_SAMPLES = 5
# Text files have almost no control characters besides tab/newline/carriage return.
_BINARY_CONTROL_SHARE = 0.01
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
# Text stays in Arrow memory inside pandas: no Python string object per cell.
_TEXT_TYPES = {pa.string(): pd.ArrowDtype(pa.string())}.get
# What pandas raises when a Parquet file's "pandas" metadata (free JSON written by the
# producer) is not JSON, not UTF-8 or not shaped the way pandas expects.
_PANDAS_METADATA_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
# What a gzip stream that breaks after the sniffed head raises while being read.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


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


def _reject(code: RejectionCode, message: str, **kwargs: Any) -> DataValidationError:
    return DataValidationError(code, message, **kwargs)


def detect_format(path: Path, name: str) -> FileFormat:
    """The format of the file at `path`, named `name` in the bucket (its extension is a hint).

    Raises DataValidationError (empty_file, not_gzip, not_parquet, binary_content, not_utf8,
    not_json_lines) when the content is not a table this pipeline reads.
    """
    with path.open("rb") as file:
        head = file.read(SAMPLE_BYTES)
    lower = name.lower()
    if not head:
        raise _reject(RejectionCode.EMPTY_FILE, "The file is empty (0 bytes).")
    if head.startswith(GZIP_MAGIC):
        inner = _text_format(_gunzip_sample(path), inside="the decompressed gzip stream")
        return FileFormat.CSV_GZIP if inner is FileFormat.CSV else FileFormat.JSON_LINES_GZIP
    if lower.endswith(".gz"):
        raise _reject(
            RejectionCode.NOT_GZIP,
            "The file is named .gz but is not gzip-compressed (no gzip magic bytes).",
            details={"first_bytes": head[:8].hex()},
        )
    if head.startswith(PARQUET_MAGIC):
        return FileFormat.PARQUET
    if lower.endswith((".parquet", ".pq")):
        raise _reject(
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
        raise _reject(
            RejectionCode.NOT_GZIP,
            f"The file starts like gzip but cannot be decompressed ({exc}).",
        ) from None


def _text_format(sample: bytes, *, inside: str) -> FileFormat:
    if not sample:
        raise _reject(RejectionCode.EMPTY_FILE, f"{inside.capitalize()} is empty.")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _reject(RejectionCode.NOT_UTF8, f"{inside.capitalize()} is UTF-16 text; use UTF-8.")
    if b"\x00" in sample or _control_share(sample) > _BINARY_CONTROL_SHARE:
        raise _reject(
            RejectionCode.BINARY_CONTENT,
            f"{inside.capitalize()} is binary data, not CSV, Parquet or JSON Lines.",
            details={"first_bytes": sample[:8].hex()},
        )
    try:
        # A sample can end inside a multi-byte character: only complete characters are checked.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError as exc:
        raise _reject(
            RejectionCode.NOT_UTF8,
            f"{inside.capitalize()} is not UTF-8 text (invalid byte at offset {exc.start}).",
            details={"byte_offset": exc.start, "bytes": sample[exc.start : exc.start + 4].hex()},
        ) from None
    stripped = text.lstrip()
    if not stripped:
        raise _reject(RejectionCode.EMPTY_FILE, f"{inside.capitalize()} contains only whitespace.")
    if stripped[0] == "{":
        return FileFormat.JSON_LINES
    if stripped[0] == "[":
        raise _reject(
            RejectionCode.NOT_JSON_LINES,
            f"{inside.capitalize()} is a JSON array; drop JSON Lines (one object per line).",
        )
    return FileFormat.CSV


def _control_share(sample: bytes) -> float:
    removed = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return removed / len(sample)


class SourceTable(ABC):
    """A readable table: its column names as written in the file, and its rows in chunks."""

    file_format: FileFormat
    header: list[str]
    """Column names exactly as written (duplicates included), for the header checks."""
    columns: list[str]
    """Distinct column names the chunks carry."""
    arrow_schema: pa.Schema | None = None
    """Declared column types (Parquet only)."""

    @abstractmethod
    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Frames of at most `chunk_rows` rows, restricted to `columns` when given."""

    @property
    def malformed_rows(self) -> int:
        """Rows skipped because their field count differs from the header (delimited text)."""
        return 0

    @property
    def malformed_samples(self) -> list[str]:
        return []


def open_table(
    path: Path, file_format: FileFormat, *, delimiter: str, chunk_rows: int
) -> SourceTable:
    """Open a detected file for chunked reading; the header is read (and checked) here."""
    if file_format.delimited:
        return DelimitedTable(path, file_format, delimiter=delimiter, chunk_rows=chunk_rows)
    if file_format is FileFormat.PARQUET:
        return ParquetTable(path, chunk_rows=chunk_rows)
    return JsonLinesTable(path, file_format, chunk_rows=chunk_rows)


def _open_text(path: Path, gzipped: bool) -> io.TextIOBase:
    binary = gzip.open(path, "rb") if gzipped else path.open("rb")
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


class DelimitedTable(SourceTable):
    """CSV-like text, parsed by pyarrow's streaming reader: strict about field counts (pandas'
    chunked reader silently truncates long rows) and about UTF-8, and far lighter on memory."""

    def __init__(self, path: Path, file_format: FileFormat, *, delimiter: str, chunk_rows: int):
        self.path = path
        self.file_format = file_format
        self.delimiter = delimiter
        self.chunk_rows = chunk_rows
        self._malformed = 0
        self._malformed_samples: list[str] = []
        lines, whole_file = self._first_rows()
        if not lines:
            raise _reject(RejectionCode.EMPTY_FILE, "The file has no header line.")
        self.header = lines[0]
        self.columns = list(dict.fromkeys(self.header))
        # pyarrow cannot skip a lone header line that lacks a final newline.
        self._header_only = whole_file and len(lines) == 1
        _check_delimiter(lines, delimiter)

    def _first_rows(self) -> tuple[list[list[str]], bool]:
        """The first non-empty rows, and whether they are all the file has."""
        try:
            with _open_text(self.path, self.file_format.gzipped) as text:
                rows = list(islice(csv.reader(text, delimiter=self.delimiter), _SNIFF_LINES))
                return [row for row in rows if row], len(rows) < _SNIFF_LINES
        except UnicodeDecodeError as exc:
            raise _reject(
                RejectionCode.NOT_UTF8, f"The header is not UTF-8 text ({exc.reason})."
            ) from None
        except csv.Error as exc:
            raise _reject(
                RejectionCode.MALFORMED_ROWS, f"The first lines are not valid CSV ({exc})."
            ) from None
        except _GZIP_ERRORS as exc:
            # Format detection decompresses only a prefix: the damage can come later.
            raise _reject(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
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
            "read_options": pacsv.ReadOptions(
                skip_rows=1, column_names=positional, block_size=4 << 20, encoding="utf8"
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
        for table in _rebatch(self._batches(options), self.chunk_rows):
            frame = table.to_pandas(types_mapper=_TEXT_TYPES)
            frame.columns = list(wanted)
            yield frame

    def _batches(self, options: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        compression = "gzip" if self.file_format.gzipped else None
        try:
            with pa.input_stream(str(self.path), compression=compression) as stream:
                yield from pacsv.open_csv(stream, **options)
        except pa.ArrowInvalid as exc:
            text = str(exc)
            if "UTF8" in text or "UTF-8" in text:
                raise _reject(
                    RejectionCode.NOT_UTF8,
                    "The file contains bytes that are not UTF-8 text.",
                    details={"reader": text},
                ) from None
            raise _reject(
                RejectionCode.MALFORMED_ROWS,
                f"The file is not valid delimited text ({text}).",
                details={"reader": text},
            ) from None
        except _GZIP_ERRORS as exc:
            if not self.file_format.gzipped:
                raise
            raise _reject(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
            ) from None


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Regroup reader batches (sized in bytes) into tables of exactly `rows` rows (the last may
    be shorter), so chunking, and with it memory, follows `dataset.chunk_rows`."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches()
            count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def _check_delimiter(rows: list[list[str]], delimiter: str) -> None:
    """A header that splits into one field with the configured delimiter but into several with
    another (consistently over the first lines) is a wrong-delimiter drop, reported as such
    rather than as a missing target."""
    if len(rows[0]) > 1:
        return
    lines = [delimiter.join(row) for row in rows]
    for candidate in CANDIDATE_DELIMITERS:
        if candidate == delimiter:
            continue
        try:
            counts = {len(next(csv.reader([line], delimiter=candidate))) for line in lines}
        except csv.Error:
            # A quoted field spanning lines (an unbalanced quote) does not re-split.
            continue
        if len(counts) == 1 and counts.pop() > 1:
            raise _reject(
                RejectionCode.WRONG_DELIMITER,
                f"The file is separated by {candidate!r}, but dataset.delimiter is {delimiter!r}.",
                details={"expected": delimiter, "detected": candidate, "header": lines[0][:200]},
            )


class ParquetTable(SourceTable):
    def __init__(self, path: Path, *, chunk_rows: int):
        self.file_format = FileFormat.PARQUET
        self.chunk_rows = chunk_rows
        try:
            self._file = pq.ParquetFile(path)
            self.arrow_schema = self._file.schema_arrow
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            # A damaged footer can hold column names that are not UTF-8.
            raise _reject(
                RejectionCode.NOT_PARQUET, f"The file is not readable Parquet ({exc})."
            ) from None
        try:
            self.arrow_schema.empty_table().to_pandas()
        except _PANDAS_METADATA_ERRORS as exc:
            raise _pandas_metadata_rejection(exc) from None
        self.header = list(self.arrow_schema.names)
        self.columns = list(dict.fromkeys(self.header))

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        try:
            for batch in self._file.iter_batches(batch_size=self.chunk_rows, columns=columns):
                # Integers with nulls stay integers (not floats), so categories read "3", not "3.0".
                yield batch.to_pandas(integer_object_nulls=True, types_mapper=_TEXT_TYPES)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise _reject(
                RejectionCode.NOT_PARQUET, f"The Parquet file cannot be read ({exc})."
            ) from None
        except _PANDAS_METADATA_ERRORS as exc:
            raise _pandas_metadata_rejection(exc) from None


def _pandas_metadata_rejection(exc: Exception) -> DataValidationError:
    return _reject(
        RejectionCode.NOT_PARQUET,
        f"The Parquet file's pandas metadata is corrupt ({type(exc).__name__}: {exc}).",
        details={"metadata_key": "pandas"},
    )


class JsonLinesTable(SourceTable):
    """One JSON object per line. Objects may omit keys: the columns are the union of the keys in
    the first chunk (later chunks are aligned to them)."""

    def __init__(self, path: Path, file_format: FileFormat, *, chunk_rows: int):
        self.path = path
        self.file_format = file_format
        self.chunk_rows = chunk_rows
        self.header = self._first_object_keys()
        frames = self._read()
        first = next(frames, None)
        frames.close()
        self.columns = (
            list(first.columns) if first is not None else list(dict.fromkeys(self.header))
        )

    def _first_object_keys(self) -> list[str]:
        try:
            with _open_text(self.path, self.file_format.gzipped) as text:
                line = next((line for line in text if line.strip()), "")
        except UnicodeDecodeError as exc:
            raise _reject(
                RejectionCode.NOT_UTF8, f"Line 1 is not UTF-8 text ({exc.reason})."
            ) from None
        except _GZIP_ERRORS as exc:
            if not self.file_format.gzipped:
                raise
            raise _reject(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
            ) from None
        try:
            pairs = json.loads(line, object_pairs_hook=lambda items: items)
        except json.JSONDecodeError as exc:
            raise _reject(
                RejectionCode.MALFORMED_ROWS,
                f"Line 1 is not a JSON object ({exc.msg}).",
                rows=[1],
            ) from None
        return [key for key, _ in pairs] if isinstance(pairs, list) else []

    def _read(self) -> Generator[pd.DataFrame, None, None]:
        try:
            with pd.read_json(
                self.path,
                lines=True,
                chunksize=self.chunk_rows,
                dtype=False,
                convert_dates=False,
                precise_float=True,
                encoding="utf-8",
                compression="gzip" if self.file_format.gzipped else None,
            ) as reader:
                yield from reader
        except UnicodeDecodeError as exc:
            raise _reject(
                RejectionCode.NOT_UTF8, f"The file is not UTF-8 text ({exc.reason})."
            ) from None
        except ValueError as exc:
            raise _reject(
                RejectionCode.MALFORMED_ROWS, f"A line is not a valid JSON object ({exc})."
            ) from None
        except (AttributeError, TypeError):
            # pandas fails this way on a line holding an array or a bare value.
            raise _not_objects() from None
        except _GZIP_ERRORS as exc:
            if not self.file_format.gzipped:
                raise
            raise _reject(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
            ) from None

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        wanted = columns if columns is not None else self.columns
        for frame in self._read():
            # A chunk of arrays or bare values only gets positional (integer) column labels.
            if not all(isinstance(name, str) for name in frame.columns):
                raise _not_objects()
            yield frame.reindex(columns=wanted)


def _not_objects() -> DataValidationError:
    return _reject(
        RejectionCode.NOT_JSON_LINES,
        "A line holds a JSON array or a bare value; JSON Lines needs one object per line.",
    )
