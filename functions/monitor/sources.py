"""The labelled feedback a drift check reads from the data bucket (`feedback/`: one JSON object
per row from `POST /v1/feedback`, or files dropped by users: `.json`, `.jsonl` or `.csv` with
`request_id`, `row`, `label` and, optionally, feature columns), found through the window of
`functions.adapters.bucket_window`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from functions.adapters.bucket_window import BucketWindow, SkippedLines, StoredObject
from functions.common.formats import FormatVersionError
from functions.common.records import feedback_item


@dataclass
class Feedback:
    """One labelled row: the prediction it labels (`request_id`, `row`), the true label, and
    the features when the sender included them."""

    request_id: str
    row: int
    label: Any
    features: dict[str, Any] | None
    key: str


def feedback_rows(
    window: BucketWindow, objects: list[StoredObject], skipped: SkippedLines
) -> list[Feedback]:
    """Every usable feedback row of `objects`; the last one received wins for a
    (request_id, row) sent twice."""
    found: dict[tuple[str, int], Feedback] = {}
    for stored in objects:
        for item in _feedback_items(window, stored.key, skipped):
            try:
                feedback = _feedback(item, stored.key)
            except FormatVersionError as exc:
                skipped.add(str(exc))
                continue
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
    for item in window.json_lines(key, skipped, "feedback line is not JSON"):
        if isinstance(item, dict):
            yield item
        else:
            skipped.add("feedback line is not a JSON object")


def _feedback(item: dict[str, Any], key: str) -> Feedback | None:
    checked = feedback_item(item)
    return None if checked is None else Feedback(**checked, key=key)
