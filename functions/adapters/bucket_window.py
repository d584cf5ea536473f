"""What a reader of the predict function's records finds in the data bucket: the capture
objects Firehose wrote in a time window (`capture/dt=YYYY-MM-DD/...`, JSON lines: the
predict function's columnar capture records, through its log subscription) and the
feedback objects received in it (`feedback/`: the API's records, or files dropped by users).

Objects are chosen by their LastModified time, in `(start, end]`: consecutive checks whose
windows touch read every object exactly once, however late Firehose flushed its buffer. Bodies
are streamed line by line, never held whole. The drift monitor reads both; the feedback route
of the predict API reads capture to match feedback to its request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from functions.adapters.storage import ObjectStore
from functions.common.formats import FormatVersionError
from functions.common.layout import DAY_PARTITION, FEEDBACK_PREFIX, capture_day_prefix
from functions.common.records import CaptureRecord, capture_record

_FEEDBACK_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime
    size: int


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
            found.extend(self._list(capture_day_prefix(day.isoformat()), start, end))
            day += timedelta(days=1)
        return sorted(found, key=lambda o: (o.modified, o.key))

    def feedback_objects(self, start: datetime, end: datetime) -> list[StoredObject]:
        """Feedback objects modified in the window: the API's day partitions, and every file
        dropped elsewhere under `feedback/`."""
        found: list[StoredObject] = []
        for prefix in self._child_prefixes(FEEDBACK_PREFIX):
            name = prefix.removeprefix(FEEDBACK_PREFIX)
            if name.startswith(DAY_PARTITION):
                day = name.removeprefix(DAY_PARTITION).rstrip("/")
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

    def json_lines(self, key: str, skipped: SkippedLines, not_json: str) -> Iterator[Any]:
        """The object's lines parsed as JSON, streamed; a blank line is passed over, a line
        that is not JSON is counted in `skipped` under the reason `not_json`."""
        for line in self.lines(key):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except (ValueError, UnicodeDecodeError):
                skipped.add(not_json)

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
) -> Iterator[CaptureRecord]:
    """The capture records of `objects` (one JSON object per line: a request's columnar record,
    or a chunk of its rows; version 1 lines upgraded); unreadable lines are counted in
    `skipped`."""
    for stored in objects:
        for document in window.json_lines(stored.key, skipped, "capture line is not JSON"):
            try:
                record = capture_record(document)
            except FormatVersionError as exc:
                skipped.add(str(exc))
                continue
            if record is None:
                skipped.add("capture record without columns, rows or model_version")
                continue
            yield record
