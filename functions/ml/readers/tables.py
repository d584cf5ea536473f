"""The reader of a detected file: `open_table`."""

from __future__ import annotations

from pathlib import Path

from functions.ml.readers.delimited import DelimitedTable
from functions.ml.readers.formats import FileFormat
from functions.ml.readers.json_lines import JsonLinesTable
from functions.ml.readers.limits import ReadLimits
from functions.ml.readers.parquet import ParquetTable
from functions.ml.readers.source import SourceTable


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
