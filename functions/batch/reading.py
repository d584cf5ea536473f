"""One map item's rows read from its input file (Parquet row groups, a CSV or JSON Lines byte
range, or a gzip stream) and checked against the model's features."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from itertools import islice
from typing import Any

import pyarrow.parquet as pq

from functions.batch.contracts import BatchItem
from functions.batch.scoring import Checked, check_rows
from functions.batch.stage import Adapters
from functions.common.config.loading import MlopsConfig
from functions.ml import batch as rows
from functions.ml.onnx_input import NamedTwiceError
from functions.ml.readers.formats import FileFormat
from functions.serving.features import alias_names, feature_names
from functions.serving.model import ServingModel


def read_and_check(adapters: Adapters, item: BatchItem, model: ServingModel) -> tuple[Checked, int]:
    """The item's rows as checked columns, and how many rows it had."""
    config = adapters.model_config(item.model)
    features = [spec.name for spec in model.specs]
    reject_unseen = config.serving.unseen_categories == "reject"
    file_format = FileFormat(item.format)
    if file_format is FileFormat.PARQUET:
        columns, present, count, named_twice = _parquet_columns(adapters, item, model)
        return (
            check_rows(
                columns,
                present,
                count,
                model.specs,
                reject_unseen=reject_unseen,
                problems=_every_row(count, named_twice),
            ),
            count,
        )
    data = _item_bytes(adapters, item, file_format)
    if file_format.delimited:
        text = data.decode("utf-8-sig", errors="replace")
        records: Iterable[list[str]] = rows.csv_records(text, delimiter=config.dataset.delimiter)
        if file_format.gzipped:
            records = islice(records, 1 + item.start, 1 + item.end)
        header, named_twice = _feature_names(item.header or [], model)
        table = rows.csv_rows(records, header, features)
        table.problems.extend(_every_row(table.count, named_twice))
        table.problems.extend(_typed_csv(table, model, config))
    else:
        lines: Iterable[bytes] = rows.split_lines(data)
        if file_format.gzipped:
            lines = islice(lines, item.start, item.end)
        table = rows.json_lines_rows(lines, features, alias_names(model.specs))
    checked = check_rows(
        table.columns,
        table.present,
        table.count,
        model.specs,
        reject_unseen=reject_unseen,
        problems=table.problems,
    )
    return checked, table.count


def _item_bytes(adapters: Adapters, item: BatchItem, file_format: FileFormat) -> bytes:
    if file_format.gzipped:
        return gzip.decompress(adapters.objects.get_bytes(adapters.bucket, item.key))
    start = item.byte_start or 0
    end = item.size if item.byte_end is None else item.byte_end
    return adapters.objects.get_range(adapters.bucket, item.key, start, end)


def _typed_csv(
    table: rows.TextRows, model: ServingModel, config: MlopsConfig
) -> list[tuple[int, str | None, str, str]]:
    """CSV text as feature values (numbers for numeric features; a missing marker is None);
    cells that are not numbers become problems."""
    missing = frozenset(marker.strip().lower() for marker in config.dataset.missing_markers)
    problems: list[tuple[int, str | None, str, str]] = []
    for spec in model.specs:
        values = table.columns[spec.name]
        if spec.categorical:
            table.columns[spec.name] = rows.text_categories(values, missing)
            continue
        numbers, bad = rows.text_numbers(values, missing)
        table.columns[spec.name] = numbers
        problems.extend(
            (
                offset,
                spec.name,
                "invalid_type",
                f"{spec.name} must be a number (feature {spec.name!r} is numeric), "
                f"not {text!r:.60}",
            )
            for offset, text in bad
        )
    return problems


def _feature_names(
    names: list[str], model: ServingModel
) -> tuple[list[str], NamedTwiceError | None]:
    """A file's column names as feature names (producer names mapped through the model's
    aliases), and the error when a feature is named twice (then the names stay as given)."""
    try:
        return feature_names(names, model.specs), None
    except NamedTwiceError as error:
        return names, error


def _every_row(count: int, error: NamedTwiceError | None) -> list[tuple[int, str | None, str, str]]:
    """A file-wide problem as a problem of each of its `count` rows (none without one)."""
    if error is None:
        return []
    return [(offset, error.name, "duplicate_feature", str(error)) for offset in range(count)]


def _parquet_columns(
    adapters: Adapters, item: BatchItem, model: ServingModel
) -> tuple[dict[str, list[Any]], dict[str, list[bool]], int, NamedTwiceError | None]:
    features = [spec.name for spec in model.specs]
    file = pq.ParquetFile(adapters.objects.reader(adapters.bucket, item.key, item.size))
    given = list(file.schema_arrow.names)
    resolved, named_twice = _feature_names(given, model)
    column_of = dict(zip(resolved, given, strict=True))
    names = set(column_of)
    wanted = [column_of[name] for name in features if name in names]
    groups, first = [], None
    position = 0
    for index in range(file.num_row_groups):
        group_rows = file.metadata.row_group(index).num_rows
        if position + group_rows > item.start and position < item.end:
            groups.append(index)
            first = position if first is None else first
        position += group_rows
    table = file.read_row_groups(groups, columns=wanted) if groups else None
    count = item.end - item.start
    if table is not None:
        table = table.slice(item.start - (first or 0), count)
    columns = {
        name: table.column(column_of[name]).to_pylist()
        if table is not None and name in names
        else [None] * count
        for name in features
    }
    present = {name: [name in names] * count for name in features}
    return columns, present, count, named_twice
