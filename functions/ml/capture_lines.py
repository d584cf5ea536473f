"""Capture objects' lines as capture records of format `capture-record` version 2 (one record
per request, or per chunk of a request: `first_row`, `rows`, feature `columns`, `predictions`,
...). A version 1 line (one per row: `row`, `features`, `prediction`) reads as a one-row
version 2 record: `first_row` its row, `rows` 1, alias `production`, `request_rows`, `route`,
`rollout`, `latency_ms` and `error` null. Pure: the standard library only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

CAPTURE_RECORD_VERSION = 2
"""The `capture-record` format version of the records read and written here."""
PRODUCTION = "production"


def capture_records(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """The capture records of an object's lines, as version 2 records; blank lines, lines
    that are not JSON objects and records of a newer format are left out."""
    for line in lines:
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        record = as_version_2(document)
        if record is not None:
            yield record


def as_version_2(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """A capture record as version 2: a version 1 record (one row, `features`, `prediction`)
    becomes a one-row record; None for a newer version or a record without a model."""
    version = document.get("format_version", 1)
    if version == CAPTURE_RECORD_VERSION:
        record = dict(document)
    elif version == 1 and isinstance(document.get("features"), dict):
        row = document.get("row")
        probabilities = document.get("probabilities")
        record = {
            "record": "capture",
            "format_version": CAPTURE_RECORD_VERSION,
            "request_id": document.get("request_id"),
            "timestamp": document.get("timestamp"),
            "model_name": document.get("model_name"),
            "model_version": document.get("model_version"),
            "alias": PRODUCTION,
            "route": None,
            "rollout": None,
            "first_row": row if type(row) is int else 0,
            "rows": 1,
            "request_rows": None,
            "columns": {name: [value] for name, value in document["features"].items()},
            "predictions": [document.get("prediction")],
            "probabilities": None if probabilities is None else [probabilities],
            "classes": None,
            "latency_ms": None,
            "error": None,
        }
    else:
        return None
    if not isinstance(record.get("model_name"), str) or not isinstance(record.get("columns"), dict):
        return None
    return record
