"""What one file may hold and still be read within a function's memory (`ReadLimits`,
`[ingest]`), and the text stream that enforces it as it is read: lines no longer than
`max_line_bytes`, no binary content, a gzip drop's expansion bounded."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.common.config.dataset import IngestConfig
from functions.ml.errors import DataValidationError, RejectionCode
from functions.ml.readers.formats import BINARY_CONTROL_SHARE, CONTROL_BYTES, SAMPLE_BYTES

_CONTROL_BYTE = re.compile(b"[" + re.escape(CONTROL_BYTES) + b"]")
_WINDOW_CONTROLS = int(SAMPLE_BYTES * BINARY_CONTROL_SHARE)
"""Control bytes one 64 KB window of a text stream may hold (the sample's share)."""
# What a gzip stream that breaks after the sniffed head raises while being read.
GZIP_ERRORS = (OSError, EOFError, zlib.error)
MAX_NAME_CHARS = 1024
"""A column name (JSON key) longer than this refuses the file."""
GZIP_FLOOR = 64 << 20
"""Decompressed bytes any gzip drop may reach, whatever its compression ratio."""
CHUNK_CELLS = 4_000_000
"""At most this many cells (rows x columns) per chunk: `dataset.chunk_rows` rows of up to 20
columns; a wider file is read in fewer rows per chunk."""
CHUNK_BYTES = 64 << 20
"""A chunk ends once its rows hold about this many bytes, however few they are."""
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
            raise DataValidationError(
                RejectionCode.COLUMN_NAME_TOO_LONG,
                f"A column name is {len(long):,} characters long (at most {MAX_NAME_CHARS:,}): "
                f"{long[:80]!r}...",
                details={"length": len(long), "max_name_chars": MAX_NAME_CHARS},
                **kwargs,
            )

    def check_columns(self, count: int, where: str, **kwargs: Any) -> None:
        if count > self.max_columns:
            raise DataValidationError(
                RejectionCode.TOO_MANY_COLUMNS,
                f"{where} has {count:,} columns; at most {self.max_columns:,} are read "
                f"([ingest] max_columns = {self.max_columns}).",
                details={"columns": count, "max_columns": self.max_columns},
                **kwargs,
            )

    def record_too_large(self, record: int, problem: str) -> DataValidationError:
        """`record` counts data rows from 1 (a header is not one)."""
        return DataValidationError(
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
            raise DataValidationError(
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
            controls = len(piece) - len(piece.translate(None, CONTROL_BYTES))
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
        return DataValidationError(
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
        return DataValidationError(
            RejectionCode.LINE_TOO_LONG,
            f"Line {line:,} is longer than {self._cap:,} bytes ([ingest] max_line_bytes); "
            "reading stopped there.",
            rows=[line],
            details={"line": line, "max_line_bytes": self._cap},
        )


def _first_break(data: bytes, start: int, end: int) -> int:
    found = [i for i in (data.find(b"\n", start, end), data.find(b"\r", start, end)) if i >= 0]
    return min(found) if found else -1


def open_text(path: Path, gzipped: bool, limits: ReadLimits) -> io.TextIOWrapper:
    binary: Any = gzip.open(path, "rb") if gzipped else path.open("rb")
    limited = io.BufferedReader(limited_stream(binary, path, gzipped, limits))
    return io.TextIOWrapper(limited, encoding="utf-8-sig", newline="")


def limited_stream(raw: Any, path: Path, gzipped: bool, limits: ReadLimits) -> LineLimitedStream:
    expansion = None
    if gzipped and limits.max_gzip_ratio:
        expansion = max(GZIP_FLOOR, limits.max_gzip_ratio * path.stat().st_size)
    return LineLimitedStream(raw, limits.max_line_bytes, expansion, gzipped=gzipped)


@contextmanager
def text_errors(what: str, *, gzipped: bool) -> Iterator[None]:
    """Reading a text file: bytes that are not UTF-8 refuse it (`not_utf8`, naming `what`), and
    so does a gzip stream that breaks after the head format detection decompressed
    (`not_gzip`); the same errors of a plain file are raised as they are."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            RejectionCode.NOT_UTF8, f"{what} is not UTF-8 text ({exc.reason})."
        ) from None
    except GZIP_ERRORS as exc:
        if not gzipped:
            raise
        raise DataValidationError(
            RejectionCode.NOT_GZIP, f"The gzip stream is corrupt or truncated ({exc})."
        ) from None
