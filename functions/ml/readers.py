"""Format detection and chunked readers for dropped files: CSV, CSV.gz, Parquet, JSON Lines.

The format is decided by content (gzip magic, `PAR1` magic, a JSON object as the first
character, else delimited text); the extension only has to agree where it makes a promise the
content breaks (`.gz`, `.parquet`). Readers yield pandas frames of at most `chunk_rows` rows with
the file's own column names, so memory stays bounded by the chunk size, not the file size.

Whatever a file holds, reading it stays within `ReadLimits` (`[ingest]`): binary content
anywhere in a text file (a NUL byte, or control bytes over 1% of any 64 KB) is refused at its
byte offset as the stream is read, a line longer than
`max_line_bytes` is refused as soon as that many bytes of it are read (a 1 KB gzip can
decompress to a single 1 GiB line), a record that does not fit the reader's block of
`max_record_bytes` is refused before it is parsed, a file with more than `max_columns` columns
(or JSON keys) is refused before a frame is built, and a chunk holds at most `CHUNK_CELLS`
cells and about `CHUNK_BYTES` bytes, however wide or long its rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions.common.config import IngestConfig
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
_CONTROL_BYTE = re.compile(b"[" + re.escape(_CONTROL_BYTES) + b"]")
_WINDOW_CONTROLS = int(SAMPLE_BYTES * _BINARY_CONTROL_SHARE)
"""Control bytes one 64 KB window of a text stream may hold (the sample's share)."""
# Text stays in Arrow memory inside pandas: no Python string object per cell.
_TEXT_TYPES = {pa.string(): pd.ArrowDtype(pa.string())}.get
# What pandas raises when a Parquet file's "pandas" metadata (free JSON written by the
# producer) is not JSON, not UTF-8 or not shaped the way pandas expects.
_PANDAS_METADATA_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
)
# What a gzip stream that breaks after the sniffed head raises while being read.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
_STRADDLING = "straddling object straddles two block boundaries"
MAX_NAME_CHARS = 1024
"""A column name (JSON key) longer than this refuses the file."""
GZIP_FLOOR = 64 << 20
"""Decompressed bytes any gzip drop may reach, whatever its compression ratio."""
CHUNK_CELLS = 4_000_000
"""At most this many cells (rows x columns) per chunk: `dataset.chunk_rows` rows of up to 20
columns; a wider file is read in fewer rows per chunk."""
CHUNK_BYTES = 64 << 20
"""A chunk ends once its rows hold about this many bytes, however few they are."""
JSON_CHUNK_CELLS = 1_000_000
"""JSON Lines: cells per chunk (values nested in arrays and objects count one each). pandas
holds a parsed JSON cell as a Python object, several times the size of a CSV cell."""
MAX_JSON_DEPTH = 32
"""JSON Lines: arrays and objects nested deeper in one line refuse the file."""
_PARQUET_BATCH_ROWS = 1024
"""Parquet rows decoded at once (then regrouped into chunks by rows and bytes): the footer
does not tell how large dictionary-encoded values decode."""
_INGEST_DEFAULTS = IngestConfig()


@dataclass(frozen=True)
class ReadLimits:
    """What one file may hold and still be read within a function's memory (`[ingest]`)."""

    max_line_bytes: int = _INGEST_DEFAULTS.max_line_bytes
    """Bytes of one line (between line breaks) of a text file."""
    max_record_bytes: int = _INGEST_DEFAULTS.max_record_bytes
    """Bytes of one record: the CSV reader's block (a record, quoted line breaks included, must
    fit one block), a Parquet row group's average row."""
    max_columns: int = _INGEST_DEFAULTS.max_columns
    """Columns of the header; distinct keys of a JSON Lines file."""
    max_gzip_ratio: int = _INGEST_DEFAULTS.max_gzip_ratio
    """Decompressed bytes per compressed byte a gzip drop may reach (past `GZIP_FLOOR`)."""

    @classmethod
    def of(cls, ingest: IngestConfig) -> ReadLimits:
        return cls(
            ingest.max_line_bytes,
            ingest.max_record_bytes,
            ingest.max_columns,
            ingest.max_gzip_ratio,
        )

    def rows_per_chunk(self, chunk_rows: int, columns: int) -> int:
        """`chunk_rows`, fewer for a file so wide that they would hold over `CHUNK_CELLS`."""
        return max(1, min(chunk_rows, CHUNK_CELLS // max(1, columns)))

    def check_names(self, names: Iterable[str], **kwargs: Any) -> None:
        """Column names (JSON keys) longer than `MAX_NAME_CHARS` refuse the file."""
        long = next((name for name in names if len(name) > MAX_NAME_CHARS), None)
        if long is not None:
            raise _reject(
                RejectionCode.COLUMN_NAME_TOO_LONG,
                f"A column name is {len(long):,} characters long (at most {MAX_NAME_CHARS:,}): "
                f"{long[:80]!r}...",
                details={"length": len(long), "max_name_chars": MAX_NAME_CHARS},
                **kwargs,
            )

    def check_columns(self, count: int, where: str, **kwargs: Any) -> None:
        if count > self.max_columns:
            raise _reject(
                RejectionCode.TOO_MANY_COLUMNS,
                f"{where} has {count:,} columns; at most {self.max_columns:,} are read "
                f"([ingest] max_columns = {self.max_columns}).",
                details={"columns": count, "max_columns": self.max_columns},
                **kwargs,
            )

    def record_too_large(self, record: int, problem: str) -> DataValidationError:
        """`record` counts data rows from 1 (a header is not one)."""
        return _reject(
            RejectionCode.RECORD_TOO_LARGE,
            f"Record {record:,} {problem}; the cap is {self.max_record_bytes:,} bytes "
            "([ingest] max_record_bytes).",
            rows=[record],
            details={"record": record, "max_record_bytes": self.max_record_bytes},
        )


class LineLimitedStream(io.RawIOBase):
    """A binary stream over `raw` that fails with `line_too_long` as soon as a line (the bytes
    between two line breaks, `\\n` or `\\r`) grows past `max_line_bytes`: whatever reads
    from it never holds more of one line than that. It looks at every byte once, at C speed
    (`find`/`count` over slices no longer than the cap, so only lines that cross a slice
    boundary need tracking). It fails with `binary_content` at the first NUL byte, or once
    one 64 KB window of the stream holds more control bytes than text has (the share format
    detection allows in the first 64 KB), naming the byte offset (in the decompressed
    stream, for gzip) and its line."""

    def __init__(
        self,
        raw: Any,
        max_line_bytes: int,
        max_bytes: int | None = None,
        *,
        gzipped: bool = False,
    ) -> None:
        super().__init__()
        self._where = "the decompressed gzip stream" if gzipped else "the file"
        self._window_controls = 0
        self._first_control: tuple[int, int, bytes] | None = None
        """The current window's first control byte: offset, line, the bytes from it."""
        self._raw = raw
        self._cap = max_line_bytes
        self._run = 0
        """Bytes of the current line read so far."""
        self._line_breaks = 0
        self._read = 0
        self._max_bytes = max_bytes
        """Bytes the stream may yield in all (a gzip drop's expansion); None: unbounded."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Direct, without RawIOBase's copy through a buffer (pyarrow reads this way).
        data = bytes(self._raw.read(size))
        start = self._read
        self._read += len(data)
        if self._max_bytes is not None and self._read > self._max_bytes:
            raise _reject(
                RejectionCode.GZIP_BOMB,
                f"The gzip stream expands to over {self._max_bytes:,} bytes, more than "
                "[ingest] max_gzip_ratio times its compressed size; reading stopped there.",
                details={"decompressed_bytes_read": self._read, "limit": self._max_bytes},
            )
        self._check_binary(data, start)
        self._check(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _check_binary(self, data: bytes, start: int) -> None:
        """`data` begins at byte `start` of the stream; `_line_breaks` counts the lines before."""
        nul = data.find(b"\x00")
        if nul >= 0:
            raise self._binary(start + nul, self._line_at(data, nul), data[nul:], "a NUL byte")
        position = 0
        while position < len(data):
            offset = start + position
            if offset % SAMPLE_BYTES == 0:
                self._window_controls, self._first_control = 0, None
            end = min(len(data), position + SAMPLE_BYTES - offset % SAMPLE_BYTES)
            piece = data[position:end]
            controls = len(piece) - len(piece.translate(None, _CONTROL_BYTES))
            if controls and self._first_control is None:
                found = _CONTROL_BYTE.search(piece)
                at = position + (found.start() if found else 0)
                self._first_control = (start + at, self._line_at(data, at), data[at:])
            self._window_controls += controls
            if self._window_controls > _WINDOW_CONTROLS and self._first_control is not None:
                raise self._binary(
                    *self._first_control,
                    f"the first of {self._window_controls:,} control bytes within 64 KB "
                    f"(text has at most {_WINDOW_CONTROLS:,})",
                )
            position = end

    def _line_at(self, data: bytes, index: int) -> int:
        return self._line_breaks + data.count(b"\n", 0, index) + 1

    def _binary(self, offset: int, line: int, following: bytes, what: str) -> DataValidationError:
        return _reject(
            RejectionCode.BINARY_CONTENT,
            f"{self._where.capitalize()} holds binary data at byte {offset:,} (line {line:,}): "
            f"{what}; CSV and JSON Lines are text.",
            details={"byte_offset": offset, "line": line, "bytes": following[:8].hex()},
        )

    def _check(self, data: bytes) -> None:
        cap = self._cap
        for start in range(0, len(data), cap):
            end = min(start + cap, len(data))
            first = _first_break(data, start, end)
            if first < 0:
                self._run += end - start
                if self._run > cap:
                    raise self._too_long()
                continue
            self._run += first - start
            if self._run > cap:
                raise self._too_long()
            self._line_breaks += data.count(b"\n", start, end)
            self._run = end - 1 - max(data.rfind(b"\n", start, end), data.rfind(b"\r", start, end))

    def _too_long(self) -> DataValidationError:
        line = self._line_breaks + 1
        return _reject(
            RejectionCode.LINE_TOO_LONG,
            f"Line {line:,} is longer than {self._cap:,} bytes ([ingest] max_line_bytes); "
            "reading stopped there.",
            rows=[line],
            details={"line": line, "max_line_bytes": self._cap},
        )


def _first_break(data: bytes, start: int, end: int) -> int:
    found = [i for i in (data.find(b"\n", start, end), data.find(b"\r", start, end)) if i >= 0]
    return min(found) if found else -1


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
    path: Path,
    file_format: FileFormat,
    *,
    delimiter: str,
    chunk_rows: int,
    limits: ReadLimits | None = None,
) -> SourceTable:
    """Open a detected file for chunked reading; the header is read (and checked) here."""
    limits = limits or ReadLimits()
    if file_format.delimited:
        return DelimitedTable(
            path, file_format, delimiter=delimiter, chunk_rows=chunk_rows, limits=limits
        )
    if file_format is FileFormat.PARQUET:
        return ParquetTable(path, chunk_rows=chunk_rows, limits=limits)
    return JsonLinesTable(path, file_format, chunk_rows=chunk_rows, limits=limits)


def _open_text(path: Path, gzipped: bool, limits: ReadLimits) -> io.TextIOWrapper:
    binary: Any = gzip.open(path, "rb") if gzipped else path.open("rb")
    limited = io.BufferedReader(_limited(binary, path, gzipped, limits))
    return io.TextIOWrapper(limited, encoding="utf-8-sig", newline="")


def _limited(raw: Any, path: Path, gzipped: bool, limits: ReadLimits) -> LineLimitedStream:
    expansion = None
    if gzipped and limits.max_gzip_ratio:
        expansion = max(GZIP_FLOOR, limits.max_gzip_ratio * path.stat().st_size)
    return LineLimitedStream(raw, limits.max_line_bytes, expansion, gzipped=gzipped)


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
        self.path = path
        self.file_format = file_format
        self.delimiter = delimiter
        self.limits = limits or ReadLimits()
        self._malformed = 0
        self._malformed_samples: list[str] = []
        self._rows_read = 0
        lines, whole_file = self._first_rows()
        if not lines:
            raise _reject(RejectionCode.EMPTY_FILE, "The file has no header line.")
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
            with _open_text(self.path, self.file_format.gzipped, self.limits) as text:
                rows.extend(islice(csv.reader(text, delimiter=self.delimiter), _SNIFF_LINES))
                return [row for row in rows if row], len(rows) < _SNIFF_LINES
        except UnicodeDecodeError as exc:
            raise _reject(
                RejectionCode.NOT_UTF8, f"The header is not UTF-8 text ({exc.reason})."
            ) from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise self.limits.record_too_large(
                    len(rows), "(counting data rows after the header) has a longer field"
                ) from None
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
        for table in _rebatch(self._batches(options), self.chunk_rows):
            frame = table.to_pandas(types_mapper=_TEXT_TYPES)
            frame.columns = list(wanted)
            yield frame

    def _batches(self, options: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        compression = "gzip" if self.file_format.gzipped else None
        self._rows_read = 0
        try:
            with pa.input_stream(str(self.path), compression=compression) as stream:
                limited = _limited(stream, self.path, compression is not None, self.limits)
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
    be shorter), so chunking, and with it memory, follows `dataset.chunk_rows`; a chunk of
    long rows ends early, once it holds `CHUNK_BYTES`."""
    pending: list[pa.RecordBatch] = []
    count = size = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        size += batch.nbytes
        while count >= rows or size >= CHUNK_BYTES:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches()
            count, size = rest.num_rows, rest.nbytes
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
    def __init__(self, path: Path, *, chunk_rows: int, limits: ReadLimits | None = None):
        self.file_format = FileFormat.PARQUET
        self.limits = limits or ReadLimits()
        try:
            self._file = pq.ParquetFile(path)
            self.arrow_schema = self._file.schema_arrow
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            # A damaged footer can hold column names that are not UTF-8.
            raise _reject(
                RejectionCode.NOT_PARQUET, f"The file is not readable Parquet ({exc})."
            ) from None
        self.limits.check_columns(len(self.arrow_schema.names), "The file's schema")
        self.limits.check_names(self.arrow_schema.names)
        try:
            self.arrow_schema.empty_table().to_pandas()
        except _PANDAS_METADATA_ERRORS as exc:
            raise _pandas_metadata_rejection(exc) from None
        self.header = list(self.arrow_schema.names)
        self.columns = list(dict.fromkeys(self.header))
        self._widest_row_bytes()
        self.chunk_rows = self.limits.rows_per_chunk(chunk_rows, len(self.columns))

    def _widest_row_bytes(self) -> float:
        """The largest average row size (uncompressed) of a row group, from the footer; a
        row group whose rows average over the record cap is refused before it is read (a
        single row can decompress to gigabytes). Rows are checked again as decoded."""
        metadata = self._file.metadata
        widest, first = 0.0, 1
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            if group.num_rows:
                average = group.total_byte_size / group.num_rows
                if average > self.limits.max_record_bytes:
                    raise self.limits.record_too_large(
                        first,
                        f"starts row group {index}, whose {group.num_rows:,} row(s) average "
                        f"{average:,.0f} bytes uncompressed",
                    )
                widest = max(widest, average)
            first += group.num_rows
        return widest

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        try:
            batches = self._file.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns)
            for table in _rebatch(self._checked(batches), self.chunk_rows):
                # Integers with nulls stay integers (not floats), so categories read "3", not "3.0".
                yield table.to_pandas(integer_object_nulls=True, types_mapper=_TEXT_TYPES)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise _reject(
                RejectionCode.NOT_PARQUET, f"The Parquet file cannot be read ({exc})."
            ) from None
        except _PANDAS_METADATA_ERRORS as exc:
            raise _pandas_metadata_rejection(exc) from None

    def _checked(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Decoded batches, each row within the record cap (text and nested values as
        decoded, which the footer's sizes do not tell) and its text valid UTF-8."""
        first = 1
        for batch in batches:
            sizes = np.zeros(batch.num_rows, dtype=np.int64)
            for column in batch.columns:
                sizes += _decoded_row_bytes(column)
            if batch.num_rows and int(sizes.max()) > self.limits.max_record_bytes:
                record = first + int(np.argmax(sizes > self.limits.max_record_bytes))
                raise self.limits.record_too_large(
                    record, f"decodes to {int(sizes.max()):,} bytes of values"
                )
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    try:
                        column.validate(full=True)
                    except pa.ArrowInvalid:
                        raise _reject(
                            RejectionCode.NOT_UTF8,
                            f"Column {name!r} holds text that is not UTF-8 (records "
                            f"{first:,}-{first + batch.num_rows - 1:,}).",
                            columns=[name],
                        ) from None
            first += batch.num_rows
            yield batch


def _decoded_row_bytes(column: pa.Array) -> np.ndarray:
    """Per row: bytes of text and binary values, and one per value nested in lists, in a
    column as decoded."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        lengths = pc.binary_length(column).fill_null(0)
        return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        counts = np.asarray(
            pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        inner = _decoded_row_bytes(column.flatten())
        if inner.size:
            # Each row's share of the values nested in it.
            offsets = np.concatenate([[0], np.cumsum(counts)])
            counts = counts + np.add.reduceat(np.append(inner, 0), offsets[:-1]) * (counts > 0)
        return counts
    if pa.types.is_struct(kind):
        total = np.zeros(len(column), dtype=np.int64)
        for index in range(kind.num_fields):
            total += _decoded_row_bytes(column.field(index))
        return total
    return np.zeros(len(column), dtype=np.int64)


def _pandas_metadata_rejection(exc: Exception) -> DataValidationError:
    return _reject(
        RejectionCode.NOT_PARQUET,
        f"The Parquet file's pandas metadata is corrupt ({type(exc).__name__}: {exc}).",
        details={"metadata_key": "pandas"},
    )


class JsonLinesTable(SourceTable):
    """One JSON object per line. Objects may omit keys: the columns are the union of the keys in
    the first chunk (later chunks are aligned to them). Every line's keys are counted before
    pandas builds a frame: a file with more distinct keys than `max_columns` is refused at the
    line that brings one too many (a frame is rows x keys, whatever the lines hold)."""

    def __init__(
        self,
        path: Path,
        file_format: FileFormat,
        *,
        chunk_rows: int,
        limits: ReadLimits | None = None,
    ):
        self.path = path
        self.file_format = file_format
        self.chunk_rows = chunk_rows
        self.limits = limits or ReadLimits()
        self.header = self._first_object_keys()
        frames = self._read()
        first = next(frames, None)
        frames.close()
        self.columns = (
            list(first.columns) if first is not None else list(dict.fromkeys(self.header))
        )

    def _text(self) -> io.TextIOWrapper:
        return _open_text(self.path, self.file_format.gzipped, self.limits)

    def _first_object_keys(self) -> list[str]:
        try:
            with self._text() as text:
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
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise _reject(
                RejectionCode.MALFORMED_ROWS,
                f"Line 1 is not a JSON object ({reason}).",
                rows=[1],
            ) from None
        return [key for key, _ in pairs] if isinstance(pairs, list) else []

    def _read(self) -> Generator[pd.DataFrame, None, None]:
        try:
            with self._text() as text:
                for lines in self._line_chunks(text):
                    yield _parse_json_lines(lines)
        except UnicodeDecodeError as exc:
            raise _reject(
                RejectionCode.NOT_UTF8, f"The file is not UTF-8 text ({exc.reason})."
            ) from None
        except _GZIP_ERRORS as exc:
            if not self.file_format.gzipped:
                raise
            raise _reject(
                RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
            ) from None

    def _line_chunks(self, text: io.TextIOWrapper) -> Iterator[list[str]]:
        """Non-blank lines (without their line breaks) in chunks: `chunk_rows` lines, fewer
        once the frame pandas builds of them (rows x the chunk's keys, plus nested values)
        would hold `JSON_CHUNK_CELLS` cells, or the lines `CHUNK_BYTES` bytes."""
        keys: dict[str, None] = {}
        lines: list[str] = []
        chunk_keys: set[str] = set()
        size = nested = 0
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            line_keys, line_nested = _object_keys(line, number)
            if not line_keys <= keys.keys():
                self.limits.check_names(line_keys - keys.keys(), rows=[number])
                keys.update(dict.fromkeys(line_keys))
                self.limits.check_columns(
                    len(keys), f"Up to line {number:,}, the file", rows=[number]
                )
            union = len(chunk_keys | line_keys)
            cells = (len(lines) + 1) * union + nested + line_nested
            if lines and (cells > JSON_CHUNK_CELLS or len(lines) >= self.chunk_rows):
                yield lines
                lines, chunk_keys, size, nested = [], set(), 0, 0
            lines.append(line.rstrip("\r\n"))
            chunk_keys |= line_keys
            size += len(line.encode("utf-8", errors="surrogatepass"))
            nested += line_nested
            if size >= CHUNK_BYTES:
                yield lines
                lines, chunk_keys, size, nested = [], set(), 0, 0
        if lines:
            yield lines

    def chunks(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        wanted = columns if columns is not None else self.columns
        for frame in self._read():
            # A chunk of arrays or bare values only gets positional (integer) column labels.
            if not all(isinstance(name, str) for name in frame.columns):
                raise _not_objects()
            yield frame.reindex(columns=wanted)


def _object_keys(line: str, number: int) -> tuple[frozenset[str], int]:
    """The keys of the object on line `number`, and how many values it nests in arrays and
    objects. A line that is not JSON gives no keys (pandas then names the problem, as it
    parses the chunk); one that is not an object, nests too deep or holds text that is not
    UTF-8 refuses the file here."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            # orjson refuses NaN and Infinity, which pandas reads.
            value = json.loads(line)
        except (ValueError, RecursionError):
            return frozenset(), 0
    if not isinstance(value, dict):
        raise _not_objects(number)
    return frozenset(value), _nested_values(value.values(), number)


def _nested_values(values: Iterable[Any], number: int, depth: int = 1) -> int:
    """Values inside arrays and objects (a scalar cell counts none); checks depth and text."""
    count = 0
    for value in values:
        if isinstance(value, str):
            _check_text(value, number)
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _reject(
                    RejectionCode.MALFORMED_ROWS,
                    f"Line {number:,} nests arrays or objects more than {MAX_JSON_DEPTH} deep.",
                    rows=[number],
                )
            inner = value.values() if isinstance(value, dict) else value
            count += len(value) + _nested_values(inner, number, depth + 1)
    return count


def _check_text(value: str, number: int) -> None:
    """JSON can escape a lone surrogate (`\\ud800`), which is no character: not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject(
            RejectionCode.NOT_UTF8,
            f"Line {number:,} holds a lone surrogate escape, which is not UTF-8 text.",
            rows=[number],
        ) from None


def _parse_json_lines(lines: list[str]) -> pd.DataFrame:
    """One chunk of lines as pandas reads JSON Lines."""
    try:
        return pd.read_json(
            io.StringIO("\n".join(lines)),
            lines=True,
            dtype=False,
            convert_dates=False,
            convert_axes=False,
            precise_float=True,
        )
    except (ValueError, RecursionError) as exc:
        raise _reject(
            RejectionCode.MALFORMED_ROWS, f"A line is not a valid JSON object ({exc})."
        ) from None
    except (AttributeError, TypeError):
        # pandas fails this way on a line holding an array or a bare value.
        raise _not_objects() from None


def _not_objects(line: int | None = None) -> DataValidationError:
    where = f"Line {line:,}" if line is not None else "A line"
    return _reject(
        RejectionCode.NOT_JSON_LINES,
        f"{where} holds a JSON array or a bare value; JSON Lines needs one object per line.",
        rows=[line] if line is not None else None,
    )
