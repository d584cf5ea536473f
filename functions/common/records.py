"""The records the predict API leaves in the data bucket for the drift monitor: one capture
record per predicted request (or per chunk of its rows; columnar, under `capture/`, delivered by
the predict function's log subscription through Firehose) and one feedback record per labelled
row (`POST /v1/feedback`, under `feedback/`). The readers here keep what a reader can use and
say None otherwise.

A capture record (format `capture-record` version 2) is columnar: `columns` maps each model
input to its values for rows `first_row .. first_row + rows - 1` of the request, `predictions`
(and `probabilities`, for classifiers) hold the same rows. A version 1 record (one per row,
`features` and `prediction`) is read as a one-row version 2 record.

Typed dicts, not pydantic models: records are written as the dicts themselves (orjson).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal, TypedDict

from functions.common import formats

CAPTURE_DISCRIMINATOR = "capture"
"""The value of a capture record's `record` field: what the log subscription filter matches."""

_CAPTURE_VERSION = formats.current(formats.CAPTURE_RECORD)


class CaptureRecord(TypedDict):
    """One predicted request (or a chunk of its rows) as captured: `request_id`, when
    (`timestamp`) and by which version and alias it was scored, on which route, the rollout it
    was part of, rows `first_row .. first_row + rows - 1` of the request's `request_rows`, the
    model inputs as columns (sensitive columns hashed or left out; null is missing), the
    predictions (and probabilities and classes of a classifier), the scoring time and, for a
    request whose scoring failed, the `error` code (then no rows)."""

    record: str
    format_version: int
    request_id: str
    timestamp: str
    model_name: str
    model_version: int
    alias: str
    route: Literal["v1", "v2"] | None
    rollout: int | None
    first_row: int
    rows: int
    request_rows: int | None
    columns: dict[str, list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[str] | None
    latency_ms: float | None
    error: str | None


def capture_record(document: Any) -> CaptureRecord | None:
    """A parsed capture line as a (version 2) record, or None when it is not one a reader can
    use: no `columns` object of lists, no integer `model_version`, or `rows` that do not match
    its columns and predictions. A version 1 line is upgraded in memory.

    Raises:
        FormatVersionError: the record was written by a newer release.
    """
    if not isinstance(document, dict):
        return None
    if document.get(formats.FIELD, 1) != _CAPTURE_VERSION:
        document = formats.read(formats.CAPTURE_RECORD, document)
    columns, predictions, rows = (
        document.get("columns"),
        document.get("predictions"),
        document.get("rows"),
    )
    if (
        not isinstance(columns, dict)
        or type(document.get("model_version")) is not int
        or type(rows) is not int
        or type(document.get("first_row")) is not int
        or not isinstance(predictions, list)
        or len(predictions) != rows
        or not all(isinstance(v, list) and len(v) == rows for v in columns.values())
    ):
        return None
    record: CaptureRecord = document  # type: ignore[assignment]
    return record


def record_rows(record: CaptureRecord) -> Iterator[tuple[int, dict[str, Any], Any]]:
    """The record's rows one by one, for readers that join on a row: (row index in the
    request, the row's features, its prediction)."""
    columns = record["columns"]
    first = record["first_row"]
    for offset, prediction in enumerate(record["predictions"]):
        yield first + offset, {name: values[offset] for name, values in columns.items()}, prediction


class FeedbackItem(TypedDict):
    """One labelled row: the prediction it labels (`request_id`, `row`), the true label, and
    the features when the sender included them."""

    request_id: str
    row: int
    label: Any
    features: dict[str, Any] | None


class ServedRow(TypedDict):
    """What a labeled row was served, from its capture record: the rollout's canary compares
    the labels of production's and the candidate's predictions (`functions.canary`)."""

    model_name: str
    model_version: int
    alias: str
    rollout: int | None
    prediction: Any


class FeedbackRecord(FeedbackItem):
    """A feedback item as the predict API stores it: with the time it was received, what the
    row was served (`served`, None when its capture was not found) and the record's
    `format_version` (`functions.common.formats`; absent in version 1 records)."""

    received_at: str
    served: ServedRow | None
    format_version: int


def label_text(label: Any) -> str | None:
    """A label or a classifier's prediction as the class name training gave it (`str` of the
    target's value; an integral float as its integer); None for anything else."""
    if isinstance(label, str | bool | int):
        return str(label)
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return None


def served_row(record: CaptureRecord, row: int) -> ServedRow | None:
    """What request row `row` was served, when `record` (one chunk of the request) holds it."""
    offset = row - record["first_row"]
    if not 0 <= offset < len(record["predictions"]):
        return None
    return ServedRow(
        model_name=record["model_name"],
        model_version=record["model_version"],
        alias=record["alias"],
        rollout=record["rollout"],
        prediction=record["predictions"][offset],
    )


_FEEDBACK_FIELDS = (
    "request_id",
    "row",
    "label",
    "features",
    "received_at",
    "served",
    formats.FIELD,
)


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
