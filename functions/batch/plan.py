"""`plan`: a batch job's inputs listed and counted, its model version pinned, its map items
written (see `functions.batch`)."""

from __future__ import annotations

import gzip
import io
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from functions.adapters.registry.aliases import PRODUCTION
from functions.adapters.storage import JSON_CONTENT_TYPE, ObjectStore
from functions.batch.contracts import (
    BatchItem,
    BatchPlan,
    BatchRequest,
    UnreadableFile,
)
from functions.batch.stage import Adapters, now, stage_adapters
from functions.common import formats
from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig
from functions.common.layout import items_key, job_inputs, plan_key
from functions.common.observability import logger
from functions.ml import batch as rows
from functions.ml.batch import RecordScan, UnreadableInput
from functions.ml.readers.delimited import other_delimiter
from functions.ml.readers.formats import FileFormat

_HEAD_BYTES = 4096


class NoModelError(Exception):
    """No version to score with: nothing promoted, or the named version is not registered."""


class NoInputError(Exception):
    """The job's folder holds no input file."""


def plan(request: BatchRequest) -> BatchPlan:
    started = time.perf_counter()
    adapters = stage_adapters()
    objects, bucket = adapters.objects, adapters.bucket
    try:
        config = adapters.model_config(request.model or adapters.config.default_model)
    except ConfigError as error:
        raise NoModelError(str(error)) from None
    model = config.model_name
    version = _pinned_version(adapters, model, request.model_version or config.batch.model_version)
    prefix = job_inputs(model, request.job)
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
                    model=model,
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
    key = items_key(model, request.job)
    objects.put_bytes(bucket, key, orjson.dumps(items), content_type=JSON_CONTENT_TYPE)
    result = BatchPlan(
        job=request.job,
        model_name=model,
        model_version=version,
        items_key=key,
        items=len(items),
        files=len(inputs),
        rows=total,
        unreadable=unreadable,
        planned_at=now(),
        plan_seconds=round(time.perf_counter() - started, 3),
    )
    objects.put_json(
        bucket,
        plan_key(model, request.job),
        formats.stamp(formats.BATCH_PLAN, result.model_dump()),
    )
    logger.info("Batch job planned", extra=result.model_dump(exclude={"unreadable"}))
    return result


def _pinned_version(adapters: Adapters, name: str, version: int | None) -> int:
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
) -> tuple[FileFormat, list[rows.RowRange], list[str] | None]:
    every = config.batch.rows_per_item
    head = objects.get_range(bucket, key, 0, min(size, _HEAD_BYTES))
    file_format = rows.input_format(key, head)
    if file_format is FileFormat.PARQUET:
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
    file_format: FileFormat,
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
    delimiter = config.dataset.delimiter
    record = next(rows.csv_records(text, delimiter=delimiter), [])
    found = other_delimiter([text.rstrip("\r\n")], delimiter) if len(record) == 1 else None
    if found is not None:
        raise UnreadableInput(
            f"the file is separated by {found!r}, but dataset.delimiter is {delimiter!r}"
        )
    return [name.strip() for name in record]
