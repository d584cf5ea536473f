"""Parquet, read in chunks of record batches, each row within the record cap as decoded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.ml.errors import DataValidationError, RejectionCode
from functions.ml.readers.formats import FileFormat
from functions.ml.readers.limits import ReadLimits
from functions.ml.readers.source import TEXT_TYPES, SourceTable, rebatch

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
_PARQUET_BATCH_ROWS = 1024
"""Parquet rows decoded at once (then regrouped into chunks by rows and bytes): the footer
does not tell how large dictionary-encoded values decode."""


class ParquetTable(SourceTable):
    def __init__(self, path: Path, *, chunk_rows: int, limits: ReadLimits | None = None):
        super().__init__(path, FileFormat.PARQUET, limits)
        try:
            self._file = pq.ParquetFile(path)
            self.arrow_schema = self._file.schema_arrow
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            # A damaged footer can hold column names that are not UTF-8.
            raise DataValidationError(
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
            for table in rebatch(self._checked(batches), self.chunk_rows):
                # Integers with nulls stay integers (not floats), so categories read "3", not "3.0".
                yield table.to_pandas(integer_object_nulls=True, types_mapper=TEXT_TYPES)
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            raise DataValidationError(
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
                        raise DataValidationError(
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
    return DataValidationError(
        RejectionCode.NOT_PARQUET,
        f"The Parquet file's pandas metadata is corrupt ({type(exc).__name__}: {exc}).",
        details={"metadata_key": "pandas"},
    )
