"""Ingest orchestration: one raw object version in; a dataset version, a quarantined file or
nothing (folder marker) out.

Order of writes for a good drop: curated Parquet, then the manifest beside it, then the
registry item, so anyone who finds a version in the registry finds all of its files. A bad
drop is copied to `quarantine/files/`, its reason to `quarantine/reasons/` (keys from
`functions.common.layout`, where no drop can land); the raw object is never modified. A
drop the function died on (out of memory, timed out) is quarantined the same way, unread, by
`quarantine_crashed`, which the pipeline's catch invokes.

Idempotency has two layers: Powertools idempotency keyed on bucket + key + version id (or ETag
when unversioned) makes a redelivered event return the first result without doing the work
again (moto's EventBridge event ids are constant, so they cannot be the key); content
addressing (the data version is a hash of the cleaned rows) makes the same content dropped
again, after the idempotency record expired or under another key, map to the same version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.idempotency import persistence_layer
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.dataset import DatasetConfig
from functions.common.config.loading import deployed_config
from functions.common.contracts import DatasetRef, IngestSkipped, SourceObject
from functions.common.errors import ObjectNotFoundError, StorageError
from functions.common.layout import (
    DATA_FILE,
    INGEST_IDEMPOTENCY_KEY,
    MANIFEST_FILE,
    RAW_PREFIX,
    data_version_prefix,
    drops_prefix,
    quarantine_key,
    reason_key,
)
from functions.common.observability import logger, metrics
from functions.common.settings import StageSettings, stage_settings
from functions.ingest.events import CrashedDrop
from functions.ml.errors import DataRejectedError, IngestCrashedError, UnknownDatasetError
from functions.ml.ingestion import IngestionResult, build_manifest, ingest_file
from functions.ml.readers.limits import ReadLimits
from functions.ml.schema import DatasetContract, contract_from_config

IDEMPOTENCY_PARTITION = INGEST_IDEMPOTENCY_KEY
IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    """A result served from the idempotency store describes an earlier ingestion."""
    if isinstance(response, dict) and response.get("ingested"):
        return {**response, "already_ingested": True}
    return response


idempotency_config = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version_id || etag]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    response_hook=_mark_replay,
)
"""The handler registers its Lambda context here (in-progress records expire with it)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ingest_object(source: SourceObject) -> DatasetRef | IngestSkipped:
    """Ingest one raw object version.

    The drop's dataset is the configured one whose `raw/<dataset>/` folder it is under.

    Returns:
        `DatasetRef` (`ingested: true`) for a good drop, `models` the models trained on its
        dataset (config order); `already_ingested` is true when this
        object version, or a file with the same cleaned content, was ingested before.
        `IngestSkipped` (`ingested: false`, `reason: "folder_marker"`) for a key ending in
        "/" (a folder marker made by consoles): there is nothing to ingest, nothing is written.

    Raises:
        DataValidationError: the file is bad; it was copied to quarantine with its reason.
        UnknownDatasetError: the key is under no configured dataset's `raw/<dataset>/`
            (quarantined too when it is under `raw/`).
        ObjectNotFoundError: the object version no longer exists.
        StorageError, RegistryError: an AWS call failed (safe to retry).
    """
    logger.append_keys(source=source.identity)
    metrics.add_metric(name="DropsReceived", unit=MetricUnit.Count, value=1)
    if source.key.endswith("/"):
        logger.info("Folder marker: nothing to ingest", extra={"key": source.key})
        return IngestSkipped(
            reason="folder_marker",
            message=f"{source.key} is a folder marker (key ends in '/'); nothing was ingested.",
            source=source,
        )
    if _rewritten_by_erasure(source):
        logger.info("Rewritten by an erasure: nothing to ingest", extra={"key": source.key})
        return IngestSkipped(
            reason="erasure_rewrite",
            message=f"{source.key} is a copy rewritten by `mlops erase` (metadata "
            f"{ERASURE_METADATA}); its data is already in the curated versions, minus the "
            "erased rows.",
            source=source,
        )
    settings = stage_settings()
    # Built per call, not at import: the table comes from the environment, and the client must
    # be created after moto or the local cloud has started (see functions.adapters.aws).
    persistence = persistence_layer(settings.registry_table, IDEMPOTENCY_PARTITION)
    ingest_once = idempotent_function(
        _ingest_once,
        data_keyword_argument="source",
        persistence_store=persistence,
        config=idempotency_config,
        key_prefix="ingest",
    )
    ref = DatasetRef.model_validate(ingest_once(source=source))
    # From the config in use, not from the stored result: a replay trains today's models.
    return ref.model_copy(update={"models": deployed_config().models_of(ref.dataset)})


ERASURE_METADATA = "erasure-id"
"""Object metadata `mlops erase` sets on the raw objects it rewrites (S3 events omit it)."""


def _rewritten_by_erasure(source: SourceObject) -> bool:
    try:
        metadata = ObjectStore().metadata(source.bucket, source.key, version_id=source.version_id)
    except StorageError:
        return False  # ingestion itself reports a missing or unreadable object
    return ERASURE_METADATA in metadata


def _ingest_once(*, source: SourceObject) -> dict[str, Any]:
    return _ingestion(source).run(source).model_dump(mode="json")


def dataset_of(datasets: Mapping[str, DatasetConfig], key: str) -> DatasetConfig | None:
    """The configured dataset whose drops folder (`raw/<dataset>/`) `key` is under."""
    return next((d for d in datasets.values() if key.startswith(drops_prefix(d.name))), None)


def _ingestion(source: SourceObject) -> Ingestion:
    """The ingestion of `source` with its dataset's config, picked by the drop's
    `raw/<dataset>/` folder; under no configured dataset's folder, the default model's
    dataset (whose ingestion refuses the drop as `UnknownDatasetError`)."""
    settings = stage_settings()
    config = deployed_config()
    return Ingestion(
        dataset=dataset_of(config.datasets, source.key) or config.dataset,
        known=tuple(config.datasets),
        limits=ReadLimits.of(config.ingest),
        settings=settings,
        store=ObjectStore(),
        registry=DatasetRegistry(settings.registry_table),
    )


CRASH_ERRORS = {
    "Runtime.OutOfMemory": "ran out of its {memory_mb:,} MB of memory",
    "Sandbox.Timedout": "ran past its {timeout_seconds:,} s timeout",
}
"""The Lambda failures of the ingest function the pipeline quarantines a drop for, and what
they mean for it."""


def quarantine_crashed(crashed: CrashedDrop) -> dict[str, Any]:
    """Quarantine a drop the ingest function died on, without reading it: the raw object is
    copied to `quarantine/` with reason `ingest_crashed` (the Lambda error, its message, and
    the limits it hit), as for any bad drop. Returns where it went."""
    source = crashed.event.source_object()
    logger.append_keys(source=source.identity)
    ingest = deployed_config().ingest
    # The memory the function has (Lambda's variable), whatever the config asked for.
    memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or ingest.memory_mb)
    what = CRASH_ERRORS.get(crashed.error, "failed ({error})").format(
        error=crashed.error, memory_mb=memory_mb, timeout_seconds=ingest.timeout_seconds
    )
    error = IngestCrashedError(
        f"The ingest function {what} on this file ({crashed.error}), so it was quarantined "
        "unread. Split it into smaller files, or raise [ingest] memory_mb / timeout_seconds.",
        details={
            "lambda_error": crashed.error,
            "lambda_message": _lambda_message(crashed.cause),
            "memory_mb": memory_mb,
            "timeout_seconds": ingest.timeout_seconds,
        },
    )
    ingestion = _ingestion(source)
    metrics.add_dimension(name="dataset", value=ingestion.dataset.name)
    target = ingestion.quarantine(error, source)
    return {"quarantined": target is not None, "quarantine_key": target, "code": error.code.value}


def _lambda_message(cause: str) -> str:
    """Lambda's `errorMessage` from the cause Step Functions passes (JSON), else the cause."""
    try:
        document = json.loads(cause)
    except ValueError:
        return cause
    return str(document.get("errorMessage", cause)) if isinstance(document, dict) else cause


@dataclass(kw_only=True)
class Ingestion:
    """The steps of one ingestion, with its adapters passed in."""

    dataset: DatasetConfig
    settings: StageSettings
    store: ObjectStore
    registry: DatasetRegistry
    known: tuple[str, ...] = ()
    """Every configured dataset (their drops folders are named when a drop is under none)."""
    limits: ReadLimits | None = None

    @property
    def bucket(self) -> str:
        return self.settings.data_bucket

    def run(self, source: SourceObject) -> DatasetRef:
        metrics.add_dimension(name="dataset", value=self.dataset.name)
        try:
            self._check_prefix(source)
            with TemporaryDirectory(prefix="ingest-") as workdir:
                local, source = self._download(source, Path(workdir))
                result = self._validate(local, source, Path(workdir) / "out")
                return self._publish(result, source)
        except DataRejectedError as error:
            self.quarantine(error, source)
            raise

    def _check_prefix(self, source: SourceObject) -> None:
        expected = drops_prefix(self.dataset.name)
        if source.key.startswith(expected):
            return
        parts = source.key.split("/")
        found = parts[1] if source.key.startswith(RAW_PREFIX) and len(parts) > 2 else None
        where = f"dataset {found!r}" if found else "no dataset folder"
        prefixes = [drops_prefix(name) for name in self.known] or [expected]
        details: dict[str, Any] = {"expected_prefix": expected, "dataset": found}
        if len(prefixes) > 1:
            details["expected_prefixes"] = prefixes
        raise UnknownDatasetError(
            f"{source.key} is under {where}; this pipeline ingests only drops under "
            f"{' or '.join(prefixes)}.",
            details=details,
        )

    def _download(self, source: SourceObject, workdir: Path) -> tuple[Path, SourceObject]:
        destination = workdir / "source"
        try:
            self.store.download(
                source.bucket, source.key, destination, version_id=source.version_id
            )
        except ObjectNotFoundError:
            # Classic S3 notifications URL-encode keys ("a b.csv" -> "a+b.csv"); accept an
            # encoded key too rather than fail on it.
            decoded = unquote_plus(source.key)
            if decoded == source.key:
                raise
            self.store.download(source.bucket, decoded, destination, version_id=source.version_id)
            source = source.model_copy(update={"key": decoded})
        logger.info("Downloaded drop", extra={"bytes": destination.stat().st_size})
        return destination, source

    def _contract(self) -> DatasetContract | None:
        declared = contract_from_config(self.dataset)
        if declared is not None:
            return declared
        frozen = self.registry.get_contract(self.dataset.name)
        return DatasetContract.from_json(frozen) if frozen else None

    def _validate(self, local: Path, source: SourceObject, out_dir: Path) -> IngestionResult:
        """Clean and check the file against the frozen contract and class set; the first
        good version freezes them (a concurrent first drop that froze others first wins, and
        this file is checked again against those)."""
        out_dir.mkdir()
        classes = self.registry.get_classes(self.dataset.name)

        def run(contract: DatasetContract | None) -> IngestionResult:
            return ingest_file(
                local,
                name=source.key,
                dataset=self.dataset,
                contract=contract,
                out_dir=out_dir,
                limits=self.limits,
                classes=classes,
            )

        result = run(self._contract())
        if result.contract_inferred:
            frozen = self.registry.freeze_contract(
                self.dataset.name,
                result.contract.to_json(),
                source_key=source.key,
                created_at=now(),
                code_version=self.settings.code_version,
            )
            if frozen == result.contract.to_json():
                logger.info("Froze the inferred dataset contract", extra={"contract": frozen})
            else:
                result = run(DatasetContract.from_json(frozen))
        if classes is None and result.classes:
            classes = self.registry.freeze_classes(
                self.dataset.name,
                result.classes,
                data_version=result.data_version,
                created_at=now(),
                code_version=self.settings.code_version,
            )
            if classes == result.classes:
                logger.info("Froze the class set of the target", extra={"classes": classes})
            else:
                result = run(result.contract)
        return result

    def _publish(self, result: IngestionResult, source: SourceObject) -> DatasetRef:
        name = self.dataset.name
        self._record_metrics(result)
        existing = self.registry.get_version(name, result.data_version)
        if existing is not None:
            logger.info(
                "Same content as an existing dataset version; nothing written",
                extra={"data_version": result.data_version, "first_source": existing.source.key},
            )
            return existing.model_copy(update={"already_ingested": True})
        prefix = data_version_prefix(name, result.data_version)
        created_at = now()
        manifest = build_manifest(
            result,
            dataset=name,
            source=source.model_dump(mode="json"),
            curated_prefix=prefix,
            created_at=created_at,
            code_version=self.settings.code_version,
        )
        self.store.upload_file(result.data_path, self.bucket, prefix + DATA_FILE)
        self.store.put_json(
            self.bucket, prefix + MANIFEST_FILE, formats.stamp(formats.DATASET_MANIFEST, manifest)
        )
        ref, created = self.registry.register_version(
            DatasetRef(
                dataset=name,
                data_version=result.data_version,
                manifest_key=prefix + MANIFEST_FILE,
                curated_prefix=prefix,
                rows=result.rows_out,
                source=source,
                created_at=created_at,
            ),
            code_version=self.settings.code_version,
        )
        metrics.add_metric(name="DatasetVersionsCreated", unit=MetricUnit.Count, value=int(created))
        logger.info(
            "Dataset version registered" if created else "Dataset version already registered",
            extra={"data_version": ref.data_version, "rows": ref.rows, "prefix": prefix},
        )
        return ref

    def _record_metrics(self, result: IngestionResult) -> None:
        summary = result.summary
        for name, value in (
            ("RowsIn", summary.rows_in),
            ("RowsOut", summary.rows_out),
            ("DuplicateRowsDropped", summary.duplicate_rows_dropped),
            ("RowsMissingTargetDropped", summary.rows_missing_target_dropped),
            ("MalformedRowsDropped", summary.malformed_rows_dropped),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        logger.info(
            "Drop validated and cleaned",
            extra={
                "format": result.file_format.value,
                "data_version": result.data_version,
                "cleaning": summary.model_dump(mode="json"),
            },
        )

    def quarantine(self, error: DataRejectedError, source: SourceObject) -> str | None:
        """Copy the raw object version to its quarantine key and write its reason record to its
        reason key (`functions.common.layout`); returns the quarantine key (None: the key is
        outside raw/, nothing is copied)."""
        reason = {
            **error.as_dict(),
            "error": type(error).__name__,
            "dataset": self.dataset.name,
            "source": source.model_dump(mode="json"),
            "quarantined_at": now(),
            "code_version": self.settings.code_version,
        }
        # Nothing else was measured on this path, so the check can be a dimension of the lot.
        metrics.add_dimension(name="check", value=error.code.value)
        metrics.add_metric(name="FilesQuarantined", unit=MetricUnit.Count, value=1)
        if not source.key.startswith(RAW_PREFIX):
            logger.warning("Rejected a key outside raw/; not copied", extra={"reason": reason})
            return None
        target = quarantine_key(source.key)
        reason["quarantine_key"] = target
        self.store.copy(
            source.bucket,
            source.key,
            target,
            version_id=source.version_id,
            destination_bucket=self.bucket,
        )
        self.store.put_json(
            self.bucket, reason_key(source.key), formats.stamp(formats.QUARANTINE_REASON, reason)
        )
        logger.warning("Drop quarantined", extra={"reason": reason})
        return target
