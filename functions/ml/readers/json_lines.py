"""JSON Lines (plain or gzip), one object per line, read in chunks of lines parsed by pandas."""

from __future__ import annotations

import io
import json
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from functions.ml.errors import DataValidationError, RejectionCode
from functions.ml.readers.formats import FileFormat
from functions.ml.readers.limits import CHUNK_BYTES, ReadLimits, open_text, text_errors
from functions.ml.readers.source import SourceTable

JSON_CHUNK_CELLS = 1_000_000
"""JSON Lines: cells per chunk (values nested in arrays and objects count one each). pandas
holds a parsed JSON cell as a Python object, several times the size of a CSV cell."""
MAX_JSON_DEPTH = 32
"""JSON Lines: arrays and objects nested deeper in one line refuse the file."""


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
        super().__init__(path, file_format, limits)
        self.chunk_rows = chunk_rows
        self.header = self._first_object_keys()
        frames = self._read()
        first = next(frames, None)
        frames.close()
        self.columns = (
            list(first.columns) if first is not None else list(dict.fromkeys(self.header))
        )

    def _text(self) -> io.TextIOWrapper:
        return open_text(self.path, self.file_format.gzipped, self.limits)

    def _first_object_keys(self) -> list[str]:
        with text_errors("Line 1", gzipped=self.file_format.gzipped), self._text() as text:
            line = next((line for line in text if line.strip()), "")
        try:
            pairs = json.loads(line, object_pairs_hook=lambda items: items)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise DataValidationError(
                RejectionCode.MALFORMED_ROWS,
                f"Line 1 is not a JSON object ({reason}).",
                rows=[1],
            ) from None
        return [key for key, _ in pairs] if isinstance(pairs, list) else []

    def _read(self) -> Generator[pd.DataFrame, None, None]:
        with text_errors("The file", gzipped=self.file_format.gzipped), self._text() as text:
            for lines in self._line_chunks(text):
                yield _parse_json_lines(lines)

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
                raise DataValidationError(
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
        raise DataValidationError(
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
        raise DataValidationError(
            RejectionCode.MALFORMED_ROWS, f"A line is not a valid JSON object ({exc})."
        ) from None
    except (AttributeError, TypeError):
        # pandas fails this way on a line holding an array or a bare value.
        raise _not_objects() from None


def _not_objects(line: int | None = None) -> DataValidationError:
    where = f"Line {line:,}" if line is not None else "A line"
    return DataValidationError(
        RejectionCode.NOT_JSON_LINES,
        f"{where} holds a JSON array or a bare value; JSON Lines needs one object per line.",
        rows=[line] if line is not None else None,
    )
