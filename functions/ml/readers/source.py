"""The table every reader is (`SourceTable`), and the regrouping of a reader's batches into
chunks of `chunk_rows` rows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from functions.ml.readers.formats import FileFormat
from functions.ml.readers.limits import CHUNK_BYTES, ReadLimits

# Text stays in Arrow memory inside pandas: no Python string object per cell.
TEXT_TYPES = {pa.string(): pd.ArrowDtype(pa.string())}.get


class SourceTable(ABC):
    """A readable table: its column names as written in the file, and its rows in chunks."""

    file_format: FileFormat
    header: list[str]
    """Column names exactly as written (duplicates included), for the header checks."""
    columns: list[str]
    """Distinct column names the chunks carry."""
    arrow_schema: pa.Schema | None = None
    """Declared column types (Parquet only)."""

    def __init__(self, path: Path, file_format: FileFormat, limits: ReadLimits | None) -> None:
        self.path = path
        self.file_format = file_format
        self.limits = limits or ReadLimits()

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


def rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
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
