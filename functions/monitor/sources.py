"""What a drift check reads from the data bucket: the capture objects Firehose wrote in a time
window (`capture/dt=YYYY-MM-DD/...`, JSON lines from the predict function) and the labelled
feedback received in it (`feedback/`: one JSON object per row from `POST /v1/feedback`, or
files dropped by users: `.json`, `.jsonl` or `.csv` with `request_id`, `row`, `label` and,
optionally, feature columns).

Objects are chosen by their LastModified time, in `(start, end]`: consecutive checks whose
windows touch read every object exactly once, however late Firehose flushed its buffer. Bodies
are streamed line by line, never held whole.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from functions.adapters.storage import ObjectStore

CAPTURE_PREFIX = "capture/"
FEEDBACK_PREFIX = "feedback/"
_DAY = "dt="
_FEEDBACK_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime
    size: int


@dataclass
class Feedback:
    """One labelled row: the prediction it labels (`request_id`, `row`), the true label, and
    the features when the sender included them."""

    request_id: str
    row: int
    label: Any
    features: dict[str, Any] | None
    key: str


@dataclass
class SkippedLines:
    """Lines that could not be used, by reason (reported with the check, never silent)."""

    counts: dict[str, int]

    def add(self, reason: str, count: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + count


class BucketWindow:
    """Objects of the data bucket modified in `(start, end]`."""

    def __init__(self, objects: ObjectStore, bucket: str) -> None:
        self.objects = objects
        self.bucket = bucket

    def capture_objects(self, start: datetime, end: datetime) -> list[StoredObject]:
        """Capture objects modified in the window, oldest first. Firehose names the day
        partition by arrival time, so the day before `start` is listed too."""
        found: list[StoredObject] = []
        day = (start - timedelta(days=1)).date()
        while day <= end.date():
            found.extend(self._list(f"{CAPTURE_PREFIX}{_DAY}{day.isoformat()}/", start, end))
            day += timedelta(days=1)
        return sorted(found, key=lambda o: (o.modified, o.key))

    def feedback_objects(self, start: datetime, end: datetime) -> list[StoredObject]:
        """Feedback objects modified in the window: the API's day partitions, and every file
        dropped elsewhere under `feedback/`."""
        found: list[StoredObject] = []
        for prefix in self._child_prefixes(FEEDBACK_PREFIX):
            name = prefix.removeprefix(FEEDBACK_PREFIX)
            if name.startswith(_DAY):
                day = name.removeprefix(_DAY).rstrip("/")
                if not start.date().isoformat() <= day <= end.date().isoformat():
                    continue
            found.extend(self._list(prefix, start, end))
        found.extend(self._list(FEEDBACK_PREFIX, start, end, delimiter="/"))
        return sorted(
            (o for o in found if o.key.lower().endswith(_FEEDBACK_SUFFIXES)),
            key=lambda o: (o.modified, o.key),
        )

    def lines(self, key: str) -> Iterator[bytes]:
        """The object's lines, streamed."""
        return self.objects.lines(self.bucket, key)

    def _child_prefixes(self, prefix: str) -> list[str]:
        return self.objects.child_prefixes(self.bucket, prefix)

    def _list(
        self, prefix: str, start: datetime, end: datetime, delimiter: str | None = None
    ) -> list[StoredObject]:
        return [
            StoredObject(item["key"], item["modified"], item["size"])
            for item in self.objects.list_modified(self.bucket, prefix, delimiter=delimiter)
            if start < item["modified"] <= end and not item["key"].endswith("/")
        ]


def capture_records(
    window: BucketWindow, objects: list[StoredObject], skipped: SkippedLines
) -> Iterator[dict[str, Any]]:
    """The capture records of `objects` (one JSON object per line); unreadable lines are
    counted in `skipped`."""
    for stored in objects:
        for line in window.lines(stored.key):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                skipped.add("capture line is not JSON")
                continue
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("features"), dict)
                or type(record.get("model_version")) is not int
            ):
                skipped.add("capture record without features or model_version")
                continue
            yield record


def feedback_rows(
    window: BucketWindow, objects: list[StoredObject], skipped: SkippedLines
) -> list[Feedback]:
    """Every usable feedback row of `objects`; the last one received wins for a
    (request_id, row) sent twice."""
    found: dict[tuple[str, int], Feedback] = {}
    for stored in objects:
        for item in _feedback_items(window, stored.key, skipped):
            feedback = _feedback(item, stored.key)
            if feedback is None:
                skipped.add("feedback without request_id, row or label")
                continue
            found[(feedback.request_id, feedback.row)] = feedback
    return list(found.values())


def _feedback_items(
    window: BucketWindow, key: str, skipped: SkippedLines
) -> Iterator[dict[str, Any]]:
    if key.lower().endswith(".csv"):
        text = io.TextIOWrapper(io.BytesIO(b"\n".join(window.lines(key))), encoding="utf-8")
        try:
            yield from csv.DictReader(text)
        except (csv.Error, UnicodeDecodeError):
            skipped.add("feedback file is not readable CSV")
        return
    for line in window.lines(key):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            skipped.add("feedback line is not JSON")
            continue
        if isinstance(item, dict):
            yield item
        else:
            skipped.add("feedback line is not a JSON object")


def _feedback(item: dict[str, Any], key: str) -> Feedback | None:
    request_id, label = item.get("request_id"), item.get("label")
    try:
        row = int(item.get("row", 0))
    except (TypeError, ValueError):
        return None
    if not isinstance(request_id, str) or not request_id or row < 0:
        return None
    if label is None or label == "" or (isinstance(label, float) and not math.isfinite(label)):
        return None
    features = item.get("features")
    if not isinstance(features, dict):
        # A CSV row carries the features as its other columns.
        extra = {
            name: value
            for name, value in item.items()
            if name not in ("request_id", "row", "label", "features", "received_at")
        }
        features = extra or None
    return Feedback(request_id, row, label, features, key)
