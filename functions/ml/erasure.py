"""Erasure of one data subject's rows from a stored file, without boto3: which rows belong to
the subject, and the file rewritten without them in its own format.

A subject is a column and a value (`customer_id=C000000042`, or `request_id=<id>` for one
prediction request). Column names are compared normalised, as ingestion normalises them
(`Customer ID` is `customer_id`); values as trimmed text, or as numbers when both sides are
numeric (`42` matches `42.0`). A record (a capture line, a feedback item) also matches on the
features it carries, and on the (request_id, row) of a prediction already found to be the
subject's (`Matcher.linked`): feedback labels the subject's predictions by request id only.

Curated Parquet has the contract's columns only (an id column such as `customer_id` is dropped
by cleaning), so its rows are found by fingerprint: the subject's raw rows cleaned exactly as
ingestion cleaned them, hashed as ingestion hashes rows (`fingerprints`).

Every filter streams: lines or record batches in, the kept ones out, so memory stays bounded
by a batch, not the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from functions.common.config.dataset import FeatureType
from functions.ml.cleaning import TEXT, clean_frame, normalise_column_name, row_hashes
from functions.ml.errors import DataRejectedError
from functions.ml.readers.formats import FileFormat, detect_format

REQUEST_ID = "request_id"
_SUBJECT = re.compile(r"^\s*([^=\s][^=]*?)\s*=(.*)$")
_BATCH_ROWS = 50_000
_LINKED_COLUMNS = (REQUEST_ID, "row")


class SubjectSyntaxError(ValueError):
    """`--subject` is not COLUMN=VALUE; the message names the problem."""


@dataclass(frozen=True)
class Subject:
    """Whose rows to erase: `column` (normalised) equal to `value`."""

    column: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Subject:
        """`COLUMN=VALUE` (the value may itself contain `=`; both sides are trimmed)."""
        found = _SUBJECT.match(text)
        if found is None:
            raise SubjectSyntaxError(
                f"--subject {text!r} must be COLUMN=VALUE, e.g. customer_id=C000000042"
            )
        column, value = normalise_column_name(found.group(1)), found.group(2).strip()
        if not value:
            raise SubjectSyntaxError(f"--subject {text!r} has an empty value after '='")
        return cls(column, value)

    @classmethod
    def request(cls, request_id: str) -> Subject:
        value = request_id.strip()
        if not value:
            raise SubjectSyntaxError("--request-id must not be empty")
        return cls(REQUEST_ID, value)

    def digest(self, salt: bytes) -> str:
        """The subject as a salted SHA-256 (hex): recorded instead of the value."""
        return hashlib.sha256(salt + f"{self.column}={self.value}".encode()).hexdigest()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def same_value(cell: Any, value: str) -> bool:
    """`cell` holds `value`: equal as trimmed text, or as finite numbers."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return False
    if str(cell).strip() == value:
        return True
    wanted = _number(value)
    return wanted is not None and _number(cell) == wanted


@dataclass(frozen=True)
class Matcher:
    """Decides whether a record (a mapping of column -> value) is the subject's."""

    subject: Subject
    linked: frozenset[tuple[str, int]] = frozenset()
    """Predictions found to be the subject's: their feedback is the subject's too."""

    def record(self, record: Mapping[str, Any]) -> bool:
        normalised = {normalise_column_name(str(k)): v for k, v in record.items()}
        if same_value(normalised.get(self.subject.column), self.subject.value):
            return True
        features = normalised.get("features")
        if isinstance(features, Mapping) and any(
            normalise_column_name(str(k)) == self.subject.column
            and same_value(v, self.subject.value)
            for k, v in features.items()
        ):
            return True
        return bool(self.linked) and _prediction(normalised) in self.linked

    def columns(self) -> set[str]:
        """The (normalised) columns `record` looks at."""
        return {self.subject.column, "features", *_LINKED_COLUMNS}


def _prediction(record: Mapping[str, Any]) -> tuple[str, int] | None:
    request_id, row = record.get(REQUEST_ID), record.get("row", 0)
    try:
        return (str(request_id), int(row)) if request_id is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class Filtered:
    """What filtering one file did: rows read, rows removed, and the removed rows (as read,
    column names normalised) when asked for."""

    rows_in: int = 0
    removed: int = 0
    removed_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.rows_in - self.removed


class UnreadableFileError(Exception):
    """The file cannot be parsed, so its rows cannot be filtered."""


def filter_json_lines(
    source: Path,
    out: Path,
    matcher: Matcher,
    *,
    keep_removed: bool = False,
    columnar: bool = False,
) -> Filtered:
    """Copy the JSON lines of `source` (gzip or not) to `out` (compressed the same way) without
    the subject's; kept lines are copied byte for byte. A line that is not a JSON object is
    kept unless it contains the subject's value as text.

    `columnar` (capture lines): a columnar capture record (`columns`, rows `first_row ..`)
    loses the matching rows: it is rewritten as one record per run of consecutive kept rows
    (each with its own `first_row` and `rows`), and is gone when none is kept; a record
    matching as a whole (its `request_id`) is removed whole. Rows are counted, an error record
    (no rows) as one; other lines (version 1 records, one per row) as above."""
    result = Filtered()
    gzipped = _is_gzip(source)
    value = matcher.subject.value.encode()
    with _open_binary(source, gzipped) as reader, _create_binary(out, gzipped) as writer:
        for line in reader:
            if not line.strip():
                writer.write(line)
                continue
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                record = None
            if columnar and isinstance(record, dict) and isinstance(record.get("columns"), dict):
                _filter_columnar(record, line, matcher, writer, result, keep_removed=keep_removed)
                continue
            result.rows_in += 1
            matched = matcher.record(record) if isinstance(record, dict) else value in line
            if matched:
                result.removed += 1
                if keep_removed and isinstance(record, dict):
                    result.removed_rows.append(_normalised(record))
            else:
                writer.write(line)
    return result


def _filter_columnar(
    record: dict[str, Any],
    line: bytes,
    matcher: Matcher,
    writer: IO[bytes],
    result: Filtered,
    *,
    keep_removed: bool,
) -> None:
    columns: dict[str, list[Any]] = record["columns"]
    rows = len(record.get("predictions") or [])
    first = record.get("first_row", 0) if type(record.get("first_row")) is int else 0
    request_id = record.get(REQUEST_ID)
    result.rows_in += max(rows, 1)
    # The record as a whole: its request (not one of its rows, so no `row`).
    header = {k: v for k, v in record.items() if k not in ("columns", "predictions")}
    header["row"] = None
    if matcher.record(header):
        remove = [True] * rows
    else:
        remove = [False] * rows
        for name, values in columns.items():
            if normalise_column_name(str(name)) == matcher.subject.column:
                for index, cell in enumerate(values[:rows]):
                    remove[index] = remove[index] or same_value(cell, matcher.subject.value)
        if matcher.linked and request_id is not None:
            for index in range(rows):
                remove[index] = remove[index] or (str(request_id), first + index) in matcher.linked
    removed = sum(remove) if rows else int(matcher.record(header))
    if not removed:
        writer.write(line)
        return
    result.removed += removed
    if keep_removed:
        for index in (i for i in range(rows) if remove[i]):
            row = {name: values[index] for name, values in columns.items()}
            result.removed_rows.append(
                _normalised({REQUEST_ID: request_id, "row": first + index, **row})
            )
    start = 0
    while start < rows:
        if remove[start]:
            start += 1
            continue
        stop = start
        while stop < rows and not remove[stop]:
            stop += 1
        writer.write(_capture_run(record, start, stop, first))
        start = stop


def _capture_run(record: dict[str, Any], start: int, stop: int, first: int) -> bytes:
    """Rows `start:stop` of a columnar capture record, as a record of its own (one line)."""
    probabilities = record.get("probabilities")
    run = {
        **record,
        "first_row": first + start,
        "rows": stop - start,
        "columns": {name: values[start:stop] for name, values in record["columns"].items()},
        "predictions": record["predictions"][start:stop],
        "probabilities": probabilities[start:stop] if isinstance(probabilities, list) else None,
    }
    return json.dumps(run, separators=(",", ":")).encode() + b"\n"


def filter_delimited(
    source: Path,
    out: Path,
    matcher: Matcher,
    *,
    delimiter: str,
    keep_removed: bool = False,
) -> Filtered:
    """Copy delimited text (gzip or not) without the subject's rows, in the same format: the
    header as written, rows rewritten with the same delimiter (minimal quoting)."""
    result = Filtered()
    gzipped = _is_gzip(source)
    with (
        _open_text(source, gzipped) as text,
        _create_binary(out, gzipped) as binary,
        io.TextIOWrapper(binary, encoding="utf-8", newline="") as target,
    ):
        reader = csv.reader(text, delimiter=delimiter)
        writer = csv.writer(target, delimiter=delimiter, lineterminator="\n")
        header = next(reader, None)
        if header is None:
            return result
        writer.writerow(header)
        names = [normalise_column_name(name, i) for i, name in enumerate(header)]
        wanted = [i for i, name in enumerate(names) if name in matcher.columns()]
        for row in reader:
            if not row:
                continue
            result.rows_in += 1
            if matcher.record({names[i]: row[i] for i in wanted if i < len(row)}):
                result.removed += 1
                if keep_removed:
                    result.removed_rows.append(dict(zip(names, row, strict=False)))
            else:
                writer.writerow(row)
    return result


def filter_parquet(
    source: Path,
    out: Path,
    matcher: Matcher | None,
    *,
    fingerprints: frozenset[int] = frozenset(),
    keep_removed: bool = False,
) -> Filtered:
    """Copy a Parquet file without the subject's rows (by `matcher`, and rows whose
    fingerprint is in `fingerprints`), keeping its schema and metadata."""
    result = Filtered()
    try:
        file = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFileError(f"not readable Parquet ({exc})") from None
    schema = file.schema_arrow
    names = [normalise_column_name(name, i) for i, name in enumerate(schema.names)]
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in file.iter_batches(batch_size=_BATCH_ROWS):
            remove = np.zeros(batch.num_rows, dtype=bool)
            if matcher is not None:
                remove |= _batch_matches(batch, names, matcher)
            if fingerprints:
                hashes = row_hashes(batch.to_pandas(types_mapper={pa.string(): TEXT}.get))
                remove |= np.isin(hashes, np.fromiter(fingerprints, dtype=np.uint64))
            result.rows_in += batch.num_rows
            result.removed += int(remove.sum())
            if keep_removed and remove.any():
                removed = batch.filter(pa.array(remove)).to_pylist()
                result.removed_rows.extend(_normalised(row) for row in removed)
            writer.write_table(pa.Table.from_batches([batch.filter(pa.array(~remove))]))
    return result


def _batch_matches(batch: pa.RecordBatch, names: list[str], matcher: Matcher) -> np.ndarray:
    wanted = {name: i for i, name in enumerate(names) if name in matcher.columns()}
    if not wanted:
        return np.zeros(batch.num_rows, dtype=bool)
    columns = {name: batch.column(i).to_pylist() for name, i in wanted.items()}
    return np.fromiter(
        (
            matcher.record({name: values[row] for name, values in columns.items()})
            for row in range(batch.num_rows)
        ),
        dtype=bool,
        count=batch.num_rows,
    )


def filter_table(
    source: Path,
    name: str,
    out: Path,
    matcher: Matcher,
    *,
    delimiter: str,
    keep_removed: bool = False,
) -> Filtered:
    """Filter a dropped file (CSV, CSV.gz, Parquet, JSON Lines, format detected as ingestion
    detects it) into `out`, in the same format.

    Raises:
        UnreadableFileError: the file is not a table (a quarantined drop may not be).
    """
    try:
        file_format = detect_format(source, name)
        if file_format is FileFormat.PARQUET:
            return filter_parquet(source, out, matcher, keep_removed=keep_removed)
        if file_format.delimited:
            return filter_delimited(
                source, out, matcher, delimiter=delimiter, keep_removed=keep_removed
            )
        return filter_json_lines(source, out, matcher, keep_removed=keep_removed)
    except DataRejectedError as exc:
        raise UnreadableFileError(exc.message) from None
    except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
        raise UnreadableFileError(f"{type(exc).__name__}: {exc}") from None


def fingerprints(
    rows: Iterable[Mapping[str, Any]],
    *,
    schema: Mapping[str, str],
    target: str,
    missing_markers: Iterable[str],
) -> frozenset[int]:
    """Row hashes of `rows` (raw rows, as dropped) after ingestion's cleaning into a dataset
    version with `schema` (column -> `numeric`/`categorical`, a manifest's `schema`): the
    fingerprints of the curated rows they became."""
    frame = pd.DataFrame([{k: _text(v) for k, v in row.items()} for row in rows])
    if frame.empty:
        return frozenset()
    columns = {name: FeatureType(kind) for name, kind in schema.items()}
    cleaned, _ = clean_frame(frame, columns, target, missing_markers)
    return frozenset(int(h) for h in row_hashes(cleaned))


def _text(value: Any) -> Any:
    """Raw values as the readers hand them to cleaning: text, or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _normalised(record: Mapping[str, Any]) -> dict[str, Any]:
    return {normalise_column_name(str(k), i): v for i, (k, v) in enumerate(record.items())}


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(2) == b"\x1f\x8b"


def _open_binary(path: Path, gzipped: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb") if gzipped else path.open("rb"))


def _create_binary(path: Path, gzipped: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.GzipFile(path, "wb", mtime=0) if gzipped else path.open("wb"))


def _open_text(path: Path, gzipped: bool) -> io.TextIOWrapper:
    return io.TextIOWrapper(_open_binary(path, gzipped), encoding="utf-8-sig", newline="")
