"""`POST /v1/feedback`: true labels for earlier predictions, one S3 object per predicted row at
`feedback/dt=YYYY-MM-DD/<request_id>-<row>.json` (the day the feedback arrived).

All or nothing: every item is checked before any is stored, and the first bad one is a 422
naming its field. `label` must be one of the serving model's classes (a finite number for
regression); `features`, when given, are checked as a predict request's values (known features,
under their names or the producer's aliases, finite float32 numbers, strings for categories);
`row` must be below the captured request's row count when its capture is found. A request id
with no capture among the newest objects of the lookback window read (`[drift]
feedback_lookback_hours`; sampled out, not flushed yet, older, or unknown) is stored and
counted as `unmatched`. A matched row's record
also says what it was served (`served`: model, version, alias, rollout, prediction), which a
rollout's accuracy test counts (`functions.canary`).

Idempotent: the object is written with `If-None-Match: *`, so posting the same request id and
row again (the same day) stores nothing new and is counted as a duplicate.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.adapters.bucket_window import BucketWindow, SkippedLines, capture_records
from functions.adapters.storage import JSON_CONTENT_TYPE, ObjectStore
from functions.common import formats
from functions.common.layout import feedback_key
from functions.common.records import (
    FeedbackItem,
    FeedbackRecord,
    ServedRow,
    label_text,
    served_row,
)
from functions.ml.onnx_input import NamedTwiceError, by_feature_name
from functions.serving.body import batch_list
from functions.serving.errors import RequestError
from functions.serving.features import FeatureSpec, alias_names
from functions.serving.values import check_column

CAPTURE_SCAN_OBJECTS = 50
CAPTURE_SCAN_BYTES = 32 * 2**20
CAPTURE_SCAN_SECONDS = 2.0
"""The most capture the feedback route reads to find the requests it labels: the newest
`CAPTURE_SCAN_OBJECTS` objects of the lookback window, up to `CAPTURE_SCAN_BYTES`, and no
object started after `CAPTURE_SCAN_SECONDS` of reading (Firehose writes one object per buffer
flush, about one a minute under steady traffic, so this covers the last hour or so). A request
whose capture is older is stored as `unmatched`, as one sampled out is; without a bound, one
label of an unknown request would read the whole window, a week of objects, within the API's
29 s."""

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_ALREADY_STORED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _bad(message: str, field: str) -> RequestError:
    return RequestError(422, "invalid_feedback", message, field)


def feedback_items(
    document: Any,
    *,
    max_items: int,
    specs: Sequence[FeatureSpec],
    classes: Sequence[str] | None,
) -> list[FeedbackItem]:
    """The validated items of a feedback body: request_id (as the predict response gave it),
    row (0-based), label (one of `classes`; a finite number when `classes` is None, for
    regression), features (optional object of feature values, keyed by feature name)."""
    items = batch_list(document, "feedback", max_rows=max_items, item="feedback item")
    checked = []
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object", where)
        unknown = sorted(set(item) - {"request_id", "row", "label", "features"})
        if unknown:
            raise _bad(f"{where} has unknown field {unknown[0]!r}", f"{where}.{unknown[0]}")
        request_id, row = item.get("request_id"), item.get("row")
        if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
            raise _bad(
                f"{where}.request_id must be the request_id of a prediction (letters, digits, "
                "'.', '_', ':' or '-', at most 128)",
                f"{where}.request_id",
            )
        if type(row) is not int or row < 0:
            raise _bad(f"{where}.row must be a row index (an integer >= 0)", f"{where}.row")
        features = item.get("features")
        if features is not None:
            features = _features(features, specs, f"{where}.features")
        checked.append(
            FeedbackItem(
                request_id=request_id,
                row=row,
                label=_label(item.get("label"), classes, f"{where}.label"),
                features=features,
            )
        )
    return checked


def _label(label: Any, classes: Sequence[str] | None, field: str) -> Any:
    if classes is None:
        if type(label) not in (int, float) or not math.isfinite(label):
            raise _bad(f"{field} must be the true value, a finite number (regression)", field)
        return label
    text = label_text(label)
    if text not in classes:
        shown = ", ".join(map(repr, classes))
        raise _bad(
            f"{field} must be one of the model's classes ({shown}), not {label!r:.60}", field
        )
    return label


def _features(features: Any, specs: Sequence[FeatureSpec], where: str) -> dict[str, Any]:
    """`features` keyed by feature name, each value checked as in a predict request."""
    if not isinstance(features, dict):
        raise _bad(f"{where} must be an object of feature values", where)
    aliases = alias_names(tuple(specs))
    try:
        named = by_feature_name(features, aliases)
    except NamedTwiceError as error:
        raise _bad(str(error), f"{where}.{error.second}") from None
    by_name = {spec.name: spec for spec in specs}
    given = {aliases.get(key, key): key for key in features}
    for name, value in named.items():
        field = f"{where}.{given[name]}"
        if name not in by_name:
            raise _bad(
                f"{field}: {given[name]!r:.60} is not a feature; the model takes: "
                f"{', '.join(by_name)}",
                field,
            )
        try:
            check_column(
                [value],
                by_name[name],
                lambda _index, field=field: field,  # type: ignore[misc]
                reject_unseen=False,
            )
        except RequestError as error:
            raise _bad(error.message, field) from None
    return named


def check_rows(items: list[FeedbackItem], captured: Mapping[str, int]) -> int:
    """Refuse an item whose row is beyond its captured request's row count; returns how many
    items have no capture (`unmatched`)."""
    unmatched = 0
    for index, item in enumerate(items):
        rows = captured.get(item["request_id"])
        if rows is None:
            unmatched += 1
        elif item["row"] >= rows:
            raise _bad(
                f"feedback[{index}].row is {item['row']}, but request {item['request_id']!r} "
                f"predicted {rows} rows (0 to {rows - 1})",
                f"feedback[{index}].row",
            )
    return unmatched


class FeedbackStore:
    """Feedback objects in the data bucket."""

    def __init__(self, bucket: str, objects: ObjectStore, lookback_hours: int = 24 * 7) -> None:
        self.bucket = bucket
        self.objects = objects
        self.lookback_hours = lookback_hours

    def captured_rows(
        self, items: list[FeedbackItem], lookback_hours: int | None = None
    ) -> tuple[dict[str, int], dict[tuple[str, int], ServedRow]]:
        """For the items' request ids whose capture is found in the lookback window
        (`lookback_hours`, else the store's; newest capture objects first, at most
        `CAPTURE_SCAN_OBJECTS` and `CAPTURE_SCAN_BYTES` of them, read for at most
        `CAPTURE_SCAN_SECONDS`; stops once every id is found): each id's row count, and what
        each item's row was served."""
        request_ids = {item["request_id"] for item in items}
        wanted: dict[str, set[int]] = {}
        for item in items:
            wanted.setdefault(item["request_id"], set()).add(item["row"])
        window = BucketWindow(self.objects, self.bucket)
        end = datetime.now(UTC)
        hours = self.lookback_hours if lookback_hours is None else lookback_hours
        stored = window.capture_objects(end - timedelta(hours=hours), end)
        rows: dict[str, int] = {}
        served: dict[tuple[str, int], ServedRow] = {}
        found: set[str] = set()
        budget = CAPTURE_SCAN_BYTES
        deadline = time.monotonic() + CAPTURE_SCAN_SECONDS
        for capture in reversed(stored[-CAPTURE_SCAN_OBJECTS:]):
            budget -= capture.size
            if budget < 0 or time.monotonic() > deadline:
                break
            for record in capture_records(window, [capture], SkippedLines({})):
                request_id = record["request_id"]
                if request_id in request_ids and record["error"] is None:
                    # A chunk knows its request's row count; a version 1 line only its own row.
                    last = record["first_row"] + record["rows"]
                    total = max(record["request_rows"] or 0, last)
                    rows[request_id] = max(rows.get(request_id, 0), total)
                    found.add(request_id)
                    for row in wanted[request_id]:
                        if (row_served := served_row(record, row)) is not None:
                            served.setdefault((request_id, row), row_served)
            if found == request_ids:
                break
        return rows, served

    def store(self, items: list[FeedbackItem], lookback_hours: int | None = None) -> dict[str, int]:
        """Check every item's row against its capture (found within `lookback_hours`, else
        the store's window), then write each item once; returns counts of `stored`,
        `duplicates` and `unmatched` (no capture found)."""
        rows, served = self.captured_rows(items, lookback_hours)
        unmatched = check_rows(items, rows)
        received = datetime.now(UTC)
        day = received.strftime("%Y-%m-%d")
        at = received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        stored = duplicates = 0
        seen: set[tuple[str, int]] = set()
        version = formats.current(formats.FEEDBACK_RECORD)
        for item in items:
            identity = (item["request_id"], item["row"])
            if identity in seen or not self._put_once(
                feedback_key(*identity, day),
                FeedbackRecord(
                    **item,
                    received_at=at,
                    served=served.get(identity),
                    format_version=version,
                ),
            ):
                duplicates += 1
            else:
                stored += 1
            seen.add(identity)
        return {"stored": stored, "duplicates": duplicates, "unmatched": unmatched}

    def _put_once(self, key: str, document: FeedbackRecord) -> bool:
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        return self.objects.put_bytes_once(self.bucket, key, body, content_type=JSON_CONTENT_TYPE)
