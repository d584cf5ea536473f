"""File in, cleaned Parquet and a report out: the pure core of the ingest stage.

`ingest_file` detects the format, checks the header against the contract (or infers the
contract), cleans and profiles the rows chunk by chunk while writing them to a local Parquet
file, then validates the whole. The data version is a content hash over the contract and the
cleaned rows, so the same content always gets the same version, whatever the chunk size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from functions.common.config.dataset import DatasetConfig, FeatureType, Task
from functions.common.layout import DATA_FILE
from functions.ml.cleaning import (
    ChunkCleaner,
    CleaningSummary,
    LabelNormaliser,
    normalise_header,
)
from functions.ml.errors import DataRejectedError
from functions.ml.profile import CategoricalProfile, NumericProfile, ProfileBuilder
from functions.ml.readers.formats import FileFormat, detect_format
from functions.ml.readers.limits import ReadLimits
from functions.ml.readers.source import SourceTable
from functions.ml.readers.tables import open_table
from functions.ml.schema import (
    MAX_CLASSES,
    DatasetContract,
    check_classes,
    check_columns,
    check_declared_types,
    header_mapping,
    infer_contract,
    validate_rows,
)

VERSION_LENGTH = 16
ARROW_TYPES = {FeatureType.NUMERIC: pa.float64(), FeatureType.CATEGORICAL: pa.string()}


@dataclass(frozen=True)
class IngestionResult:
    data_path: Path
    data_version: str
    contract: DatasetContract
    contract_inferred: bool
    file_format: FileFormat
    summary: CleaningSummary
    profile: dict[str, NumericProfile | CategoricalProfile]
    class_counts: dict[str, int]
    """Classification: rows per class of the target (empty for regression)."""

    @property
    def classes(self) -> list[str]:
        """The target's classes in this version, sorted (empty for regression)."""
        return sorted(self.class_counts)

    @property
    def rows_in(self) -> int:
        return self.summary.rows_in

    @property
    def rows_out(self) -> int:
        return self.summary.rows_out


def arrow_schema(contract: DatasetContract) -> pa.Schema:
    """Curated Parquet schema: numeric -> float64, categorical -> string, contract order."""
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in contract.column_types.items()])


def ingest_file(
    path: Path,
    *,
    name: str,
    dataset: DatasetConfig,
    contract: DatasetContract | None,
    out_dir: Path,
    chunk_rows: int | None = None,
    limits: ReadLimits | None = None,
    classes: Sequence[str] | None = None,
) -> IngestionResult:
    """Validate and clean the file at `path` (`name` is its key, for the extension hint) into
    `out_dir/data.parquet`, reading it within `limits` (`[ingest]`'s defaults if None).

    `contract` None means: infer it from this file (the caller freezes it afterwards).
    `classes` is the frozen class set of a classification target (None before the first good
    version): a label outside it rejects the file (`unknown_class`), unless it is a case or
    whitespace variant of a class and `dataset.normalize_labels` is on, which rewrites it.
    Raises DataValidationError (with `file_format` set when known) if the file is rejected;
    `out_dir` then holds nothing worth keeping.
    """
    file_format: FileFormat | None = None
    try:
        file_format = detect_format(path, name)
        table = open_table(
            path,
            file_format,
            delimiter=dataset.delimiter,
            chunk_rows=chunk_rows or dataset.chunk_rows,
            limits=limits,
        )
        return _ingest_table(
            table, dataset=dataset, contract=contract, out_dir=out_dir, classes=classes
        )
    except DataRejectedError as error:
        error.file_format = error.file_format or (file_format.value if file_format else None)
        raise


def _ingest_table(
    table: SourceTable,
    *,
    dataset: DatasetConfig,
    contract: DatasetContract | None,
    out_dir: Path,
    classes: Sequence[str] | None,
) -> IngestionResult:
    normalise_header(table.header)
    mapping = header_mapping(table.columns, dataset.target)
    declared = (
        {mapping[field.name]: field.type for field in table.arrow_schema}
        if table.arrow_schema is not None
        else None
    )
    inferred = contract is None
    chunks: Iterator[pd.DataFrame]
    if contract is None:
        chunks = table.chunks()
        first = next(chunks, None)
        sample = (
            first.rename(columns=normalise_header([str(c) for c in first.columns]))
            if first is not None
            else pd.DataFrame(columns=list(mapping.values()))
        )
        contract = infer_contract(sample, dataset, declared)
        chunks = chain([first], chunks) if first is not None else iter(())
        unread: list[str] = []
    else:
        check_columns(mapping, contract)
        if table.arrow_schema is not None:
            check_declared_types(table.arrow_schema, mapping, contract)
        wanted = [raw for raw, clean in mapping.items() if clean in contract.column_types]
        unread = [clean for clean in mapping.values() if clean not in contract.column_types]
        chunks = table.chunks(columns=wanted)

    classification = contract.task is Task.CLASSIFICATION
    labels = (
        LabelNormaliser(classes)
        if classification and classes is not None and dataset.normalize_labels
        else None
    )
    cleaner = ChunkCleaner(
        contract.column_types, contract.target, dataset.missing_markers, labels=labels
    )
    cleaner.summary.columns_dropped.extend(unread)
    profile = ProfileBuilder(
        contract.column_types, exact=(contract.target,) if classification else ()
    )
    digest = hashlib.sha256(contract.fingerprint())
    schema = arrow_schema(contract)
    data_path = out_dir / DATA_FILE
    with pq.ParquetWriter(data_path, schema, compression="zstd") as writer:
        for raw in chunks:
            frame, hashes = cleaner.clean(raw)
            profile.update(frame)
            if classification and profile.distinct(contract.target) > MAX_CLASSES:
                check_classes(contract.target, profile.value_counts(contract.target), 1)
            # Row hashes in row order: the digest does not depend on where chunks split.
            digest.update(hashes.astype("<u8").tobytes())
            if len(frame):
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    cleaner.summary.malformed_rows_dropped = table.malformed_rows
    profiles = profile.result()
    class_counts = profile.value_counts(contract.target) if classification else {}
    validate_rows(
        contract=contract,
        dataset=dataset,
        summary=cleaner.summary,
        quality=cleaner.quality,
        profile=profiles,
        class_counts=class_counts,
        malformed_samples=table.malformed_samples,
        classes=classes,
    )
    return IngestionResult(
        data_path=data_path,
        data_version=digest.hexdigest()[:VERSION_LENGTH],
        contract=contract,
        contract_inferred=inferred,
        file_format=table.file_format,
        summary=cleaner.summary,
        profile=profiles,
        class_counts=class_counts,
    )


def build_manifest(
    result: IngestionResult,
    *,
    dataset: str,
    source: Mapping[str, Any],
    curated_prefix: str,
    created_at: str,
    code_version: str,
) -> dict[str, Any]:
    """The `manifest.json` of a dataset version: everything a reader needs to trust it."""
    return {
        "dataset": dataset,
        "data_version": result.data_version,
        "created_at": created_at,
        "code_version": code_version,
        "source": dict(source),
        "format": result.file_format.value,
        "files": [f"{curated_prefix}{DATA_FILE}"],
        "target": result.contract.target,
        "task": result.contract.task.value,
        "schema": {name: kind.value for name, kind in result.contract.column_types.items()},
        "contract_inferred": result.contract_inferred,
        "rows": {"in": result.rows_in, "out": result.rows_out},
        "cleaning": result.summary.model_dump(mode="json"),
        "profile": {name: p.model_dump(mode="json") for name, p in result.profile.items()},
    }


def producer_names(
    manifests: Iterable[Mapping[str, Any]], features: Iterable[str]
) -> dict[str, list[str]]:
    """Feature -> the column names the producer wrote that ingestion normalised to it (the
    `cleaning.columns_renamed` of each manifest, sorted), for the given features only: what
    serving and batch accept beside the normalised names. A feature never renamed is absent."""
    wanted = set(features)
    names: dict[str, set[str]] = {}
    for manifest in manifests:
        renamed = (manifest.get("cleaning") or {}).get("columns_renamed") or {}
        for original, name in renamed.items():
            if name in wanted and original not in wanted:
                names.setdefault(name, set()).add(original)
    return {name: sorted(originals) for name, originals in names.items()}
