"""Batch inference, behind the three thin handlers of the batch state machine:

- `plan`: list `batch/in/<job>/`, count each input's rows cheaply (Parquet: the footer, read by
  ranged GETs; CSV and JSON Lines: one streamed pass that records the byte offset of every
  `rows_per_item`-th record, so each item later reads only its bytes; gzip: decompressed, and
  an item skips to its rows), pin the model version (alias `production` when the job names
  none: one job is scored by one version), and write the items (a JSON array) for the
  Distributed Map's S3 ItemReader;
- `score_item`: one item's rows read, checked and scored (`functions.batch.scoring`), written as
  `batch/out/<job>/<stem>-<start>-<end>.parquet` (input_key, row, model_version, prediction,
  `probability_<class>` per class for classifiers), rejected rows as
  `batch/out/<job>/rejects/<stem>-<start>-<end>.jsonl`, and the item's counts as
  `batch/out/<job>/_items/<item>.json`;
- `finalize`: the item results summed into `batch/out/<job>/manifest.json`; planned items
  without a result failed (after their retries) and their rows are `not_scored`.

The model is loaded through `functions.predict.model_store.load_version`, the path the predict
function uses (registry record, sha256 check, signature, onnxruntime session).
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import islice
from typing import Any, Literal

import onnxruntime as ort
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from functions.adapters.storage import JSON_CONTENT_TYPE, ObjectStore
from functions.batch.contracts import (
    BatchItem,
    BatchItemResult,
    BatchManifest,
    BatchPlan,
    BatchRequest,
    FileSummary,
    Reject,
    UnreadableFile,
    item_result_key,
    items_key,
    job_inputs,
    job_outputs,
    manifest_key,
)
from functions.batch.scoring import Checked, check_rows, score
from functions.common.config.loading import MlopsConfig, deployed_config
from functions.common.config.serving import BatchConfig
from functions.common.model_registry import PRODUCTION, ModelRegistry
from functions.common.observability import logger
from functions.common.settings import stage_settings
from functions.ml import batch as rows
from functions.ml.batch import InputFormat, RecordScan, UnreadableInput
from functions.ml.onnx_input import NamedTwiceError
from functions.predict.model_store import ServingModel, load_version
from functions.predict.validation import alias_names, feature_names

_HEAD_BYTES = 4096
JSON_LINES_CONTENT_TYPE = "application/x-ndjson"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


class NoModelError(Exception):
    """No version to score with: nothing promoted, or the named version is not registered."""


class NoInputError(Exception):
    """The job's folder holds no input file."""


@dataclass(frozen=True)
class _Adapters:
    config: MlopsConfig
    bucket: str
    objects: ObjectStore
    registry: ModelRegistry


@cache
def _adapters() -> _Adapters:
    settings = stage_settings()
    return _Adapters(
        config=deployed_config(),
        bucket=settings.data_bucket,
        objects=ObjectStore(),
        registry=ModelRegistry(settings.registry_table),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# Plan


def plan(request: BatchRequest) -> BatchPlan:
    started = time.perf_counter()
    adapters = _adapters()
    config, objects, bucket = adapters.config, adapters.objects, adapters.bucket
    version = _pinned_version(adapters, request.model_version or config.batch.model_version)
    prefix = job_inputs(request.job)
    inputs = [
        found
        for found in objects.list_objects(bucket, prefix)
        if rows.is_input(found["key"].removeprefix(prefix))
    ]
    if not inputs:
        raise NoInputError(f"no input files under s3://{bucket}/{prefix}")
    stems = rows.output_stems([found["key"].removeprefix(prefix) for found in inputs])
    items: list[dict[str, Any]] = []
    unreadable: list[UnreadableFile] = []
    total = 0
    for found in inputs:
        key, size = found["key"], found["size"]
        try:
            file_format, ranges, header = _ranges(objects, bucket, key, size, config)
        except UnreadableInput as error:
            logger.warning("Unreadable batch input", extra={"key": key, "reason": str(error)})
            unreadable.append(UnreadableFile(key=key, reason=str(error)))
            continue
        total += ranges[-1].end
        for row_range in ranges:
            items.append(
                BatchItem(
                    job=request.job,
                    item=len(items),
                    key=key,
                    format=file_format.value,
                    start=row_range.start,
                    end=row_range.end,
                    byte_start=row_range.byte_start,
                    byte_end=row_range.byte_end,
                    size=size,
                    header=header,
                    output_stem=stems[key.removeprefix(prefix)],
                    model_version=version,
                ).model_dump(mode="json")
            )
    key = items_key(request.job)
    objects.put_bytes(bucket, key, orjson.dumps(items), content_type=JSON_CONTENT_TYPE)
    result = BatchPlan(
        job=request.job,
        model_name=config.model_name,
        model_version=version,
        items_key=key,
        items=len(items),
        files=len(inputs),
        rows=total,
        unreadable=unreadable,
        planned_at=_now(),
        plan_seconds=round(time.perf_counter() - started, 3),
    )
    objects.put_json(bucket, f"{job_outputs(request.job)}_plan/plan.json", result.model_dump())
    logger.info("Batch job planned", extra=result.model_dump(exclude={"unreadable"}))
    return result


def _pinned_version(adapters: _Adapters, version: int | None) -> int:
    name = adapters.config.model_name
    if version is None:
        alias = adapters.registry.get_alias(name, PRODUCTION)
        if alias is None:
            raise NoModelError(f"model {name!r} has no production version to score with")
        return alias.version
    if adapters.registry.get_version(name, version) is None:
        raise NoModelError(f"model {name!r} has no registered version {version}")
    return version


def _ranges(
    objects: ObjectStore, bucket: str, key: str, size: int, config: MlopsConfig
) -> tuple[InputFormat, list[rows.RowRange], list[str] | None]:
    every = config.batch.rows_per_item
    head = objects.get_range(bucket, key, 0, min(size, _HEAD_BYTES))
    file_format = rows.input_format(key, head)
    if file_format is InputFormat.PARQUET:
        try:
            count = pq.ParquetFile(objects.reader(bucket, key, size)).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            raise UnreadableInput(f"not readable Parquet ({error})") from None
        return file_format, rows.row_ranges(count, every), None
    scan = RecordScan.csv(every) if file_format.delimited else RecordScan.json_lines(every)
    chunks = objects.stream(bucket, key)
    for chunk in _decompressed(chunks) if file_format.gzipped else chunks:
        scan.feed(chunk)
    scan.finish()
    header = _header(objects, bucket, key, file_format, scan, config) if scan.quoted else None
    if file_format.gzipped:
        return file_format, rows.row_ranges(scan.records, every), header
    first = scan.header_end or 0
    ranges = rows.row_ranges(scan.records, every, offsets=scan.offsets, first_byte=first, size=size)
    return file_format, ranges, header


def _decompressed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    import zlib

    inflate = zlib.decompressobj(wbits=31)
    try:
        for chunk in chunks:
            yield inflate.decompress(chunk)
        yield inflate.flush()
    except zlib.error as error:
        raise UnreadableInput(f"the gzip stream is corrupt ({error})") from None


def _header(
    objects: ObjectStore,
    bucket: str,
    key: str,
    file_format: InputFormat,
    scan: RecordScan,
    config: MlopsConfig,
) -> list[str]:
    if scan.header_end is None:
        raise UnreadableInput("the file has no header line")
    if file_format.gzipped:
        with gzip.open(io.BytesIO(objects.get_bytes(bucket, key))) as file:
            raw = file.readline()
    else:
        raw = objects.get_range(bucket, key, 0, scan.header_end)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableInput("the header is not UTF-8 text") from None
    record = next(rows.csv_records(text, delimiter=config.dataset.delimiter), [])
    return [name.strip() for name in record]


# Score


@cache
def _model(version: int) -> ServingModel:
    adapters = _adapters()
    return load_version(
        model_name=adapters.config.model_name,
        version=version,
        registry=adapters.registry,
        fetch_bytes=lambda key: adapters.objects.get_bytes(adapters.bucket, key),
        fetch_json=lambda key: adapters.objects.get_json(adapters.bucket, key),
        session_factory=lambda onnx: ort.InferenceSession(onnx, providers=["CPUExecutionProvider"]),
    )


def score_item(item: BatchItem) -> BatchItemResult:
    started = time.perf_counter()
    adapters = _adapters()
    model = _model(item.model_version)
    checked, count = _read_and_check(adapters, item, model)
    score_started = time.perf_counter()
    names = [spec.name for spec in model.specs]
    prediction = (
        score(model.session, checked.columns, len(checked.good), model.signature)
        if checked.good
        else None
    )
    score_seconds = time.perf_counter() - score_started
    base = f"{job_outputs(item.job)}{item.output_stem}-{item.start}-{item.end}"
    output_key = f"{base}.parquet"
    adapters.objects.put_bytes(
        adapters.bucket,
        output_key,
        _predictions_parquet(item, model, checked.good, prediction),
        content_type=PARQUET_CONTENT_TYPE,
    )
    rejects_key = None
    by_error: dict[str, int] = {}
    if checked.rejected:
        rejects_key = (
            f"{job_outputs(item.job)}rejects/{item.output_stem}-{item.start}-{item.end}.jsonl"
        )
        body, by_error = _rejects_jsonl(item, checked)
        adapters.objects.put_bytes(
            adapters.bucket, rejects_key, body, content_type=JSON_LINES_CONTENT_TYPE
        )
    result = BatchItemResult(
        job=item.job,
        item=item.item,
        key=item.key,
        start=item.start,
        end=item.end,
        rows=count,
        scored=len(checked.good),
        rejected=len(checked.rejected),
        rejects_by_error=by_error,
        unseen_categories=checked.unseen,
        output_key=output_key,
        rejects_key=rejects_key,
        model_version=model.version,
        seconds=round(time.perf_counter() - started, 4),
        score_seconds=round(score_seconds, 4),
    )
    adapters.objects.put_json(
        adapters.bucket, item_result_key(item.job, item.item), result.model_dump()
    )
    if count != item.end - item.start:
        logger.warning(
            "Item row count differs from the plan",
            extra={"key": item.key, "planned": item.end - item.start, "read": count},
        )
    logger.info(
        "Batch item scored",
        extra={"item": item.item, "key": item.key, "features": len(names), **by_error},
    )
    return result


def _read_and_check(
    adapters: _Adapters, item: BatchItem, model: ServingModel
) -> tuple[Checked, int]:
    """The item's rows as checked columns, and how many rows it had."""
    config = adapters.config
    features = [spec.name for spec in model.specs]
    reject_unseen = config.serving.unseen_categories == "reject"
    file_format = InputFormat(item.format)
    if file_format is InputFormat.PARQUET:
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


def _item_bytes(adapters: _Adapters, item: BatchItem, file_format: InputFormat) -> bytes:
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
    adapters: _Adapters, item: BatchItem, model: ServingModel
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


def _predictions_parquet(
    item: BatchItem, model: ServingModel, good: list[int], prediction: Any
) -> bytes:
    classes = model.classes
    count = len(good)
    arrays: dict[str, pa.Array] = {
        "input_key": pa.array([item.key] * count, pa.string()),
        "row": pa.array([item.start + offset for offset in good], pa.int64()),
        "model_version": pa.array([model.version] * count, pa.int32()),
    }
    if classes is not None:
        labels = prediction.labels.tolist() if prediction is not None else []
        arrays["prediction"] = pa.array([str(label) for label in labels], pa.string())
        for index, name in enumerate(classes):
            values = prediction.probabilities[:, index] if prediction is not None else []
            arrays[f"probability_{name}"] = pa.array(values, pa.float64())
    else:
        arrays["prediction"] = pa.array(
            prediction.labels if prediction is not None else [], pa.float64()
        )
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer, compression="zstd")
    return buffer.getvalue()


def _rejects_jsonl(item: BatchItem, checked: Checked) -> tuple[bytes, dict[str, int]]:
    lines = []
    by_error: dict[str, int] = {}
    for offset in sorted(checked.rejected):
        problems = checked.rejected[offset]
        first = problems[0]
        by_error[first.error] = by_error.get(first.error, 0) + 1
        reject = Reject(
            input_key=item.key,
            row=item.start + offset,
            field=first.field,
            error=first.error,
            reason=first.reason,
            problems=[problem.as_dict() for problem in problems],
        )
        lines.append(orjson.dumps(reject.model_dump()))
    return b"\n".join(lines) + b"\n", by_error


# Finalize


def finalize(
    plan_result: BatchPlan, error: dict[str, Any] | None, execution: str | None
) -> BatchManifest:
    adapters = _adapters()
    objects, bucket, job = adapters.objects, adapters.bucket, plan_result.job
    items = [
        BatchItem.model_validate(item) for item in objects.get_json(bucket, plan_result.items_key)
    ]
    results: dict[int, BatchItemResult] = {}
    for found in objects.list_objects(bucket, f"{job_outputs(job)}_items/"):
        result = BatchItemResult.model_validate(objects.get_json(bucket, found["key"]))
        results[result.item] = result
    failed = [item for item in items if item.item not in results]
    per_file: dict[str, dict[str, Any]] = {}
    for item in items:
        summary = per_file.setdefault(
            item.key,
            {
                "key": item.key,
                "rows": 0,
                "scored": 0,
                "rejected": 0,
                "not_scored": 0,
                "items": 0,
                "failed_items": 0,
                "outputs": [],
                "rejects": [],
            },
        )
        summary["rows"] += item.end - item.start
        summary["items"] += 1
        done = results.get(item.item)
        if done is None:
            summary["failed_items"] += 1
            summary["not_scored"] += item.end - item.start
            continue
        summary["scored"] += done.scored
        summary["rejected"] += done.rejected
        summary["outputs"].append(done.output_key)
        if done.rejects_key:
            summary["rejects"].append(done.rejects_key)
    by_error: dict[str, int] = {}
    unseen: dict[str, int] = {}
    for result in results.values():
        for name, count in result.rejects_by_error.items():
            by_error[name] = by_error.get(name, 0) + count
        for name, count in result.unseen_categories.items():
            unseen[name] = unseen.get(name, 0) + count
    files = [FileSummary(**summary) for summary in per_file.values()]
    scored = sum(file.scored for file in files)
    rejected = sum(file.rejected for file in files)
    finished = datetime.now(UTC)
    wall = (finished - datetime.fromisoformat(plan_result.planned_at)).total_seconds()
    wall = max(wall, plan_result.plan_seconds)
    not_scored = sum(file.not_scored for file in files)
    status, reason = job_status(
        rows=sum(file.rows for file in files),
        scored=scored,
        rejected=rejected,
        rejects_by_error=by_error,
        failed_items=len(failed),
        items=len(items),
        not_scored=not_scored,
        unreadable=[file.key for file in plan_result.unreadable],
        error=error,
        batch=adapters.config.batch,
    )
    manifest = BatchManifest(
        job=job,
        status=status,
        status_reason=reason,
        model_name=plan_result.model_name,
        model_version=plan_result.model_version,
        execution=execution,
        files=plan_result.files,
        rows=sum(file.rows for file in files),
        scored=scored,
        rejected=rejected,
        not_scored=not_scored,
        items=len(items),
        failed_items=failed,
        rejects_by_error=by_error,
        unseen_categories=unseen,
        unreadable=plan_result.unreadable,
        per_file=files,
        error=error,
        planned_at=plan_result.planned_at,
        finished_at=finished.isoformat(timespec="milliseconds"),
        timings={
            "plan_seconds": plan_result.plan_seconds,
            "score_seconds": round(sum(result.seconds for result in results.values()), 3),
            "wall_seconds": round(wall, 3),
            "rows_per_second": round((scored + rejected) / wall, 1) if wall > 0 else 0.0,
        },
    )
    objects.put_bytes(
        bucket,
        manifest_key(job),
        json.dumps(manifest.model_dump(mode="json"), indent=2).encode(),
        content_type=JSON_CONTENT_TYPE,
    )
    logger.info(
        "Batch job finalized",
        extra={"job": job, "status": status, "reason": reason, "scored": scored},
    )
    return manifest


def _share(value: float) -> str:
    return f"{value * 100:.3g}%"


def job_status(
    *,
    rows: int,
    scored: int,
    rejected: int,
    rejects_by_error: dict[str, int],
    failed_items: int,
    items: int,
    not_scored: int,
    unreadable: list[str],
    error: dict[str, Any] | None,
    batch: BatchConfig,
) -> tuple[Literal["succeeded", "partial", "failed"], str]:
    """A job's status and the sentence that says why.

    failed: the map failed (more items failed than `tolerated_failure_percentage`), no row was
    scored, or more than `max_rejected_share` of the rows were rejected; partial: rows were
    rejected (within the share), items failed (within the tolerance) or files were
    unreadable; succeeded: every row of every file scored."""
    others = []
    if failed_items:
        others.append(
            f"{failed_items:,} of {items:,} items failed after their retries "
            f"({not_scored:,} rows not scored; tolerated_failure_percentage "
            f"{batch.tolerated_failure_percentage:g}%)"
        )
    if unreadable:
        others.append(f"{len(unreadable)} unreadable file(s): {', '.join(unreadable)[:300]}")
    if error:
        rejects = [f"{rejected:,} of {rows:,} rows rejected"] if rejected else []
        return "failed", "; ".join(
            [f"the map failed ({error.get('Error', 'error')})", *rejects, *others]
        )
    if not scored:
        by_error = ", ".join(
            f"{name} {count:,}"
            for name, count in sorted(rejects_by_error.items(), key=lambda item: -item[1])
        )
        causes = [f"{rejected:,} of {rows:,} rows rejected ({by_error})"] if rejected else []
        causes += others
        return "failed", "no row was scored: " + ("; ".join(causes) or "the files hold no rows")
    share = rejected / rows
    too_many = share > batch.max_rejected_share
    if rejected:
        others.insert(
            0,
            f"{rejected:,} of {rows:,} rows rejected (share {_share(share)} "
            f"{'>' if too_many else '<='} max_rejected_share {_share(batch.max_rejected_share)})",
        )
    if too_many:
        return "failed", "; ".join(others)
    if others:
        return "partial", "; ".join(others)
    return "succeeded", f"all {rows:,} rows scored"
