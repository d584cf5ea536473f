"""`POST /v1/feedback`: true labels for earlier predictions, one S3 object per predicted row at
`feedback/dt=YYYY-MM-DD/<request_id>-<row>.json` (the day the feedback arrived).

Idempotent: the object is written with `If-None-Match: *`, so posting the same request id and
row again (the same day) stores nothing new and is counted as a duplicate.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from functions.common.errors import StorageError
from functions.common.storage import JSON_CONTENT_TYPE, ObjectStore
from functions.predict.validation import RequestError, batch_list

FEEDBACK_PREFIX = "feedback/"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_ALREADY_STORED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def feedback_key(request_id: str, row: int, day: str) -> str:
    return f"{FEEDBACK_PREFIX}dt={day}/{request_id}-{row}.json"


def _bad(message: str, field: str) -> RequestError:
    return RequestError(422, "invalid_feedback", message, field)


def feedback_items(document: Any, *, max_items: int) -> list[dict[str, Any]]:
    """The validated items of a feedback body: request_id (as the predict response gave it),
    row (0-based), label (a string, number or boolean), features (optional object)."""
    items = batch_list(document, "feedback", max_rows=max_items, item="feedback item")
    checked = []
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object", where)
        unknown = sorted(set(item) - {"request_id", "row", "label", "features"})
        if unknown:
            raise _bad(f"{where} has unknown field {unknown[0]!r}", f"{where}.{unknown[0]}")
        request_id, row, label = item.get("request_id"), item.get("row"), item.get("label")
        if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            raise _bad(
                f"{where}.request_id must be the request_id of a prediction (letters, digits, "
                "'.', '_', ':' or '-', at most 128)",
                f"{where}.request_id",
            )
        if type(row) is not int or row < 0:
            raise _bad(f"{where}.row must be a row index (an integer >= 0)", f"{where}.row")
        if not isinstance(label, str | int | float) or (
            isinstance(label, float) and not math.isfinite(label)
        ):
            raise _bad(
                f"{where}.label must be the true label (a string, number or boolean)",
                f"{where}.label",
            )
        features = item.get("features")
        if features is not None and not isinstance(features, dict):
            raise _bad(f"{where}.features must be an object", f"{where}.features")
        checked.append({"request_id": request_id, "row": row, "label": label, "features": features})
    return checked


class FeedbackStore:
    """Feedback objects in the data bucket."""

    def __init__(self, bucket: str, objects: ObjectStore) -> None:
        self.bucket = bucket
        self.objects = objects

    def store(self, items: list[dict[str, Any]]) -> dict[str, int]:
        """Write each item once; returns counts of `stored` and `duplicates`."""
        received = datetime.now(UTC)
        day = received.strftime("%Y-%m-%d")
        at = received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        stored = duplicates = 0
        seen: set[tuple[str, int]] = set()
        for item in items:
            identity = (item["request_id"], item["row"])
            if identity in seen or not self._put_once(
                feedback_key(*identity, day), {**item, "received_at": at}
            ):
                duplicates += 1
            else:
                stored += 1
            seen.add(identity)
        return {"stored": stored, "duplicates": duplicates}

    def _put_once(self, key: str, document: dict[str, Any]) -> bool:
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        try:
            self.objects.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=JSON_CONTENT_TYPE,
                IfNoneMatch="*",
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code in _ALREADY_STORED:
                return False
            raise StorageError(f"put s3://{self.bucket}/{key} failed: {code}: {exc}") from exc
        return True
