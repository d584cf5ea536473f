"""`finalize`: the map items' results summed into the job's manifest, with the job's status
and the sentence saying why (see `functions.batch`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from functions.adapters.storage import JSON_CONTENT_TYPE
from functions.batch.contracts import (
    BatchItem,
    BatchItemResult,
    BatchManifest,
    BatchPlan,
    FileSummary,
)
from functions.batch.stage import stage_adapters
from functions.common import formats
from functions.common.config.serving import BatchConfig
from functions.common.layout import item_results_prefix, manifest_key
from functions.common.observability import logger


def finalize(
    plan_result: BatchPlan, error: dict[str, Any] | None, execution: str | None
) -> BatchManifest:
    adapters = stage_adapters()
    objects, bucket, job = adapters.objects, adapters.bucket, plan_result.job
    model = plan_result.model_name
    items = [
        BatchItem.model_validate(item) for item in objects.get_json(bucket, plan_result.items_key)
    ]
    results: dict[int, BatchItemResult] = {}
    for found in objects.list_objects(bucket, item_results_prefix(model, job)):
        result = BatchItemResult.model_validate(
            formats.read(formats.BATCH_ITEM_RESULT, objects.get_json(bucket, found["key"]))
        )
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
        batch=adapters.model_config(model).batch,
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
        manifest_key(model, job),
        json.dumps(
            formats.stamp(formats.BATCH_MANIFEST, manifest.model_dump(mode="json")), indent=2
        ).encode(),
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
