"""Dataset versions as the ingest stage commits them: the reference the registry stores and
training reads."""

from __future__ import annotations

from functions.common.contracts import DatasetRef, SourceObject
from functions.common.layout import data_version_prefix


def dataset_ref(
    data_version: str,
    source: SourceObject,
    *,
    created_at: str,
    rows: int = 100,
    dataset: str = "churn",
) -> DatasetRef:
    """Version `data_version` of `dataset`, `rows` rows ingested from `source`, with its manifest
    and data under the curated prefix where the ingest stage writes them."""
    prefix = data_version_prefix(dataset, data_version)
    return DatasetRef(
        dataset=dataset,
        data_version=data_version,
        manifest_key=prefix + "manifest.json",
        curated_prefix=prefix,
        rows=rows,
        source=source,
        created_at=created_at,
    )
