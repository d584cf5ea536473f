"""`score_item`: one map item read, checked and scored with the pinned version, its
predictions, rejects and counts written (see `functions.batch`)."""

from __future__ import annotations

import io
import time
from functools import cache
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from functions.batch.contracts import (
    BatchItem,
    BatchItemResult,
    Reject,
)
from functions.batch.reading import read_and_check
from functions.batch.scoring import Checked, score
from functions.batch.stage import stage_adapters
from functions.common import formats
from functions.common.layout import item_result_key, rejected_key, scored_key
from functions.common.observability import logger
from functions.serving.model import ServingModel, load_version

JSON_LINES_CONTENT_TYPE = "application/x-ndjson"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


@cache
def _model(name: str, version: int) -> ServingModel:
    adapters = stage_adapters()
    return load_version(
        model_name=name,
        version=version,
        registry=adapters.registry,
        fetch_bytes=lambda key: adapters.objects.get_bytes(adapters.bucket, key),
        fetch_json=lambda key: adapters.objects.get_json(adapters.bucket, key),
    )


def score_item(item: BatchItem) -> BatchItemResult:
    started = time.perf_counter()
    adapters = stage_adapters()
    model = _model(item.model, item.model_version)
    checked, count = read_and_check(adapters, item, model)
    score_started = time.perf_counter()
    names = [spec.name for spec in model.specs]
    prediction = (
        score(model.session, checked.columns, len(checked.good), model.signature)
        if checked.good
        else None
    )
    score_seconds = time.perf_counter() - score_started
    output_key = scored_key(item.model, item.job, item.output_stem, item.start, item.end)
    adapters.objects.put_bytes(
        adapters.bucket,
        output_key,
        _predictions_parquet(item, model, checked.good, prediction),
        content_type=PARQUET_CONTENT_TYPE,
    )
    rejects_key = None
    by_error: dict[str, int] = {}
    if checked.rejected:
        rejects_key = rejected_key(item.model, item.job, item.output_stem, item.start, item.end)
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
        adapters.bucket,
        item_result_key(item.model, item.job, item.item),
        formats.stamp(formats.BATCH_ITEM_RESULT, result.model_dump()),
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
        lines.append(orjson.dumps(formats.stamp(formats.BATCH_REJECT, reject.model_dump())))
    return b"\n".join(lines) + b"\n", by_error
