"""The records the predict API leaves in the data bucket for the drift monitor: one capture
record per predicted row (JSON lines through Firehose, under `capture/`) and one feedback record
per labelled row (`POST /v1/feedback`, under `feedback/`). The predict function writes them as
these types; the monitor (and the feedback route, which matches feedback to its capture) reads
them through the validators here, which keep what a reader can use and say None otherwise.

Typed dicts, not pydantic models: a record is written as the dict itself (orjson or json), one
per predicted row, so a record costs no more than its dict.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from functions.common import formats

_CAPTURE_VERSION = formats.current(formats.CAPTURE_RECORD)


class CaptureRecord(TypedDict):
    """One predicted row as captured: the request it belongs to (`request_id`, `row`), when and
    by which version it was scored, the features as the model saw them (sensitive columns
    hashed or left out) and its prediction (`probabilities` None for regression), and the
    record's `format_version` (`functions.common.formats`; absent in version 1 records)."""

    request_id: str
    row: int
    timestamp: str
    model_name: str
    model_version: int
    features: dict[str, Any]
    prediction: Any
    probabilities: list[float] | None
    format_version: int


def capture_record(document: Any) -> CaptureRecord | None:
    """A parsed capture line as a record, or None when it has no `features` object or no
    integer `model_version` (what every reader needs). Other fields are as written by the
    predict function; readers check `request_id` and `row` before matching on them.

    Raises:
        FormatVersionError: the record was written by a newer release.
    """
    if isinstance(document, dict) and document.get(formats.FIELD, 1) != _CAPTURE_VERSION:
        document = formats.read(formats.CAPTURE_RECORD, document)
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("features"), dict)
        or type(document.get("model_version")) is not int
    ):
        return None
    record: CaptureRecord = document  # type: ignore[assignment]
    return record


class FeedbackItem(TypedDict):
    """One labelled row: the prediction it labels (`request_id`, `row`), the true label, and
    the features when the sender included them."""

    request_id: str
    row: int
    label: Any
    features: dict[str, Any] | None


class FeedbackRecord(FeedbackItem):
    """A feedback item as the predict API stores it: with the time it was received and the
    record's `format_version` (`functions.common.formats`; absent in version 1 records)."""

    received_at: str
    format_version: int


_FEEDBACK_FIELDS = ("request_id", "row", "label", "features", "received_at", formats.FIELD)


def feedback_item(document: dict[str, Any]) -> FeedbackItem | None:
    """A stored feedback record, or a row of a file dropped under `feedback/` (JSON, or CSV
    whose other columns are the features), as a feedback item; None without a request_id, a
    row index (0 when absent) or a label.

    Raises:
        FormatVersionError: a stored record was written by a newer release.
    """
    if formats.FIELD in document:
        document = formats.read(formats.FEEDBACK_RECORD, document)
    request_id, label = document.get("request_id"), document.get("label")
    try:
        row = int(document.get("row", 0))
    except (TypeError, ValueError):
        return None
    if not isinstance(request_id, str) or not request_id or row < 0:
        return None
    if label is None or label == "" or (isinstance(label, float) and not math.isfinite(label)):
        return None
    features = document.get("features")
    if not isinstance(features, dict):
        # A CSV row carries the features as its other columns.
        extra = {name: value for name, value in document.items() if name not in _FEEDBACK_FIELDS}
        features = extra or None
    return FeedbackItem(request_id=request_id, row=row, label=label, features=features)
