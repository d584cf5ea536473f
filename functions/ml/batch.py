"""Pure pieces of batch inference: detecting an input's format (the readers' `FileFormat`),
counting records and finding their byte offsets, splitting files into row ranges, and turning
text records into feature values.

Rows are numbered from 0 per file, in file order: the header line of a CSV file is not a row;
every other record is one, a blank line included (it is reported as a reject, never skipped),
so a row number always points at the same record whoever counts. CSV records may span lines
inside double quotes (RFC 4180); JSON Lines records are one line each.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from functions.common.layout import BATCH_START_MARKER
from functions.ml.onnx_input import NamedTwiceError, by_feature_name
from functions.ml.readers.formats import GZIP_MAGIC, PARQUET_MAGIC, FileFormat

MARKERS = frozenset({BATCH_START_MARKER, "_SUCCESS"})
"""Marker objects under `batch/in/<job>/`: `_START` starts the job (see the batch construct);
neither is an input file."""


class UnreadableInput(ValueError):
    """A whole input file is not a table batch inference reads (its rows cannot be counted)."""


def input_format(name: str, head: bytes) -> FileFormat:
    """The format of an input file from its first bytes (gzip, Parquet magic, `{` for JSON
    Lines) and, for gzip, its name (`.jsonl.gz`/`.json.gz` vs anything else: CSV)."""
    lower = name.lower()
    if head.startswith(GZIP_MAGIC):
        jsonl = lower.endswith((".jsonl.gz", ".json.gz", ".ndjson.gz"))
        return FileFormat.JSON_LINES_GZIP if jsonl else FileFormat.CSV_GZIP
    if head.startswith(PARQUET_MAGIC):
        return FileFormat.PARQUET
    if not head.strip():
        raise UnreadableInput("the file is empty")
    if b"\x00" in head:
        raise UnreadableInput("the file is binary, not CSV, JSON Lines or Parquet")
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return FileFormat.JSON_LINES
    return FileFormat.CSV


def is_input(relative_name: str) -> bool:
    """Whether an object under the job's prefix is an input file (markers, folder keys and
    names starting with `_` or `.` are not)."""
    name = relative_name.rsplit("/", 1)[-1]
    return bool(name) and name not in MARKERS and not name.startswith(("_", "."))


@dataclass
class RecordScan:
    """Records found in a stream of bytes, and the byte offset where every `every`-th record
    starts (offset 0 for record 0 is implied): what a ranged GET of a row range needs."""

    every: int
    quoted: bool
    """CSV: a newline inside double quotes does not end a record."""
    records: int = 0
    offsets: list[int] = field(default_factory=list)
    header_end: int | None = None
    """CSV: the byte offset after the header record (the header is not counted)."""
    _position: int = 0
    _in_quotes: bool = False
    _pending: bool = False
    _skip_header: bool = False

    @classmethod
    def csv(cls, every: int) -> RecordScan:
        return cls(every=every, quoted=True, _skip_header=True)

    @classmethod
    def json_lines(cls, every: int) -> RecordScan:
        return cls(every=every, quoted=False)

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start < len(chunk):
            end = self._record_end(chunk, start)
            if end is None:
                self._pending = True
                break
            self._record(self._position + end + 1)
            start = end + 1
        self._position += len(chunk)

    def finish(self) -> RecordScan:
        """After the last chunk: a final record without a newline counts too."""
        if self._pending:
            self._record(self._position)
        return self

    def _record_end(self, chunk: bytes, start: int) -> int | None:
        """Index in `chunk` of the newline ending the record that goes on at `start`."""
        if not self.quoted:
            end = chunk.find(b"\n", start)
            return None if end < 0 else end
        position = start
        while True:
            newline = chunk.find(b"\n", position)
            segment_end = len(chunk) if newline < 0 else newline
            if chunk.count(b'"', position, segment_end) % 2:
                self._in_quotes = not self._in_quotes
            if newline < 0:
                return None
            if not self._in_quotes:
                return newline
            position = newline + 1

    def _record(self, end: int) -> None:
        self._pending = False
        if self._skip_header:
            self._skip_header = False
            self.header_end = end
            return
        self.records += 1
        if self.records % self.every == 0:
            self.offsets.append(end)


@dataclass(frozen=True)
class RowRange:
    start: int
    end: int
    """Exclusive."""
    byte_start: int | None = None
    byte_end: int | None = None
    """The bytes holding rows `start`..`end` (text files that are not compressed)."""


def row_ranges(
    rows: int,
    rows_per_item: int,
    *,
    offsets: Sequence[int] | None = None,
    first_byte: int = 0,
    size: int | None = None,
) -> list[RowRange]:
    """Split `rows` rows into ranges of `rows_per_item` (the last may be shorter). With the
    record offsets of a `RecordScan` (every `rows_per_item` records), `first_byte` (where row 0
    starts) and the object's `size`, each range also gets its byte range. An empty file is
    one empty range, so it still appears in the results."""
    if rows == 0:
        return [RowRange(0, 0, first_byte if offsets is not None else None, size)]
    ranges = []
    for index, start in enumerate(range(0, rows, rows_per_item)):
        end = min(rows, start + rows_per_item)
        if offsets is None:
            ranges.append(RowRange(start, end))
            continue
        byte_start = first_byte if index == 0 else offsets[index - 1]
        byte_end = offsets[index] if end < rows and index < len(offsets) else size
        ranges.append(RowRange(start, end, byte_start, byte_end))
    return ranges


def output_stems(relative_names: Sequence[str]) -> dict[str, str]:
    """Name of each input's outputs: its path under the job without the format extension
    (`part-1.csv.gz` -> `part-1`); two inputs that would share one keep their extension."""
    stems = {name: _stem(name) for name in relative_names}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {
        name: stem if counts[stem] == 1 else name.replace(".", "_") for name, stem in stems.items()
    }


def _stem(name: str) -> str:
    folder, _, base = name.rpartition("/")
    lower = base.lower()
    for suffix in (".csv.gz", ".jsonl.gz", ".json.gz", ".ndjson.gz", ".gz"):
        if lower.endswith(suffix):
            base = base[: -len(suffix)]
            break
    else:
        if "." in base.strip("."):
            base = base.rsplit(".", 1)[0]
    return f"{folder}/{base}" if folder else base


@dataclass
class TextRows:
    """Records of a row range as feature columns; `problems` holds (row offset, field, code,
    message) for records that could not be read (blank, not JSON, not an object)."""

    count: int
    columns: dict[str, list[Any]]
    present: dict[str, list[bool]]
    """Per feature, whether the record had the field at all (a missing one is a reject)."""
    problems: list[tuple[int, str | None, str, str]]


def csv_records(text: str, *, delimiter: str) -> Iterator[list[str]]:
    """The CSV records of a piece of text (no header line expected)."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def csv_rows(
    records: Iterable[list[str]], header: Sequence[str], features: Sequence[str]
) -> TextRows:
    """CSV records (no header line) as text columns of the features the file has."""
    index = {name: position for position, name in enumerate(header)}
    columns: dict[str, list[Any]] = {name: [] for name in features}
    present: dict[str, list[bool]] = {name: [] for name in features}
    problems: list[tuple[int, str | None, str, str]] = []
    width = len(header)
    count = 0
    for record in records:
        if not record:
            problems.append((count, None, "empty_row", "the line is empty"))
        elif len(record) != width:
            problems.append(
                (
                    count,
                    None,
                    "malformed_row",
                    f"the record has {len(record)} fields; the header has {width}",
                )
            )
        for name in features:
            position = index.get(name)
            has = position is not None and len(record) == width
            present[name].append(has)
            columns[name].append(record[position] if has and position is not None else None)
        count += 1
    return TextRows(count=count, columns=columns, present=present, problems=problems)


def json_lines_rows(
    lines: Iterable[bytes], features: Sequence[str], aliases: Mapping[str, str] | None = None
) -> TextRows:
    """JSON Lines records as feature columns of JSON values. A key in `aliases` (a producer's
    name -> the feature's name) counts as its feature; a record naming a feature twice is a
    `duplicate_feature` problem."""
    columns: dict[str, list[Any]] = {name: [] for name in features}
    present: dict[str, list[bool]] = {name: [] for name in features}
    problems: list[tuple[int, str | None, str, str]] = []
    count = 0
    for row, line in enumerate(lines):
        count = row + 1
        document: Any = None
        if not line.strip():
            problems.append((row, None, "empty_row", "the line is empty"))
        else:
            try:
                document = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                problems.append((row, None, "malformed_json", f"the line is not JSON ({error})"))
            else:
                if not isinstance(document, dict):
                    problems.append(
                        (row, None, "invalid_instance", "the line is not a JSON object")
                    )
                    document = None
                elif aliases and not aliases.keys().isdisjoint(document):
                    try:
                        document = by_feature_name(document, aliases)
                    except NamedTwiceError as error:
                        problems.append((row, error.name, "duplicate_feature", str(error)))
                        document = None
        for name in features:
            has = document is not None and name in document
            present[name].append(has)
            columns[name].append(document[name] if has else None)
    return TextRows(count=count, columns=columns, present=present, problems=problems)


def split_lines(data: bytes) -> Iterator[bytes]:
    """The lines of a JSON Lines byte range (a final line without a newline included)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return iter(lines)


def text_numbers(
    values: list[Any], missing: frozenset[str]
) -> tuple[list[Any], list[tuple[int, str]]]:
    """CSV cells of a numeric feature as numbers (None for a missing marker), and the cells
    that are not numbers: (offset, text). Vectorised when every cell parses."""
    cells = [
        None if value is None or value.strip().lower() in missing else value for value in values
    ]
    try:
        array = np.array(cells, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    else:
        return [None if math.isnan(x) else x for x in array.tolist()], _nan_words(cells, array)
    numbers: list[Any] = []
    bad: list[tuple[int, str]] = []
    for offset, cell in enumerate(cells):
        try:
            number = None if cell is None else float(cell)
        except ValueError:
            bad.append((offset, str(cell)))
            number = None
        numbers.append(number)
    return numbers, bad


def _nan_words(cells: list[Any], array: np.ndarray) -> list[tuple[int, str]]:
    """'nan'/'inf' texts parse as floats but are no numbers a model takes: reported as bad
    when not configured as missing markers."""
    not_finite = np.flatnonzero(~np.isfinite(array)).tolist()
    return [(offset, cells[offset]) for offset in not_finite if cells[offset] is not None]


def text_categories(values: list[Any], missing: frozenset[str]) -> list[Any]:
    """CSV cells of a categorical feature: None for a missing marker, else the text."""
    return [
        None if value is None or value.strip().lower() in missing else value for value in values
    ]
