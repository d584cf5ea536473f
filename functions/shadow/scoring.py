"""Alias `shadow`'s predictions of captured requests, record by record. Pure: numpy only.

Capture records are read by `functions.ml.capture_lines` (version 2; version 1 lines as
one-row version 2 records). A record is scored when it is production's answer to a request:
records with `error` set (the request failed: nothing was predicted), of alias `candidate`
(a rollout's other arm) or `version` (a version asked for by number) are skipped, and so are
records of other models. Its shadow record has the capture record's shape, with alias
`shadow`, the shadow's version, its predictions and its own `latency_ms` (conversion and
`session.run`, as a capture record's). The columns are checked as the predict API checks a
request (`functions.serving.values`), with unseen categories accepted.

A record that cannot be scored faithfully gets a shadow record with `error` set, rows 0 and no
predictions, so the report counts it: `sensitive_feature` (the shadow model takes a column
that capture stores hashed or not at all), `missing_feature` (the capture has no column for
one of its inputs: production does not use it), `invalid_value` (a captured value the shadow
model's signature refuses).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.ml.capture_lines import CAPTURE_RECORD_VERSION, PRODUCTION
from functions.ml.onnx_input import predict_columns
from functions.serving.errors import RequestError
from functions.serving.features import FeatureSpec
from functions.serving.values import check_columns

SHADOW = "shadow"
SKIPPED_ALIASES = frozenset({"candidate", "version"})
"""Captured answers that are not production's: never shadowed."""
SENSITIVE_FEATURE = "sensitive_feature"
MISSING_FEATURE = "missing_feature"
INVALID_VALUE = "invalid_value"


def shadowed(record: Mapping[str, Any]) -> bool:
    """Whether the record is production's answer to a request (what the shadow scores)."""
    return (
        record.get("error") is None
        and record.get("alias", PRODUCTION) not in SKIPPED_ALIASES
        and isinstance(record.get("rows"), int)
        and record["rows"] > 0
    )


@dataclass(frozen=True)
class ShadowModel:
    """What scoring needs of the shadow version: its version, signature, feature specs and
    an onnxruntime session; `sensitive` the features capture stores hashed or not at all."""

    version: int
    signature: Mapping[str, Any]
    specs: tuple[FeatureSpec, ...]
    session: Any
    sensitive: frozenset[str] = frozenset()

    @property
    def classes(self) -> list[str] | None:
        classes = self.signature.get("classes")
        return list(classes) if classes is not None else None


@dataclass
class Counts:
    """Records of the object, by what became of them."""

    scored: int = 0
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def shadow_records(
    records: Iterable[Mapping[str, Any]],
    model: ShadowModel,
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> tuple[list[dict[str, Any]], Counts]:
    """The shadow record of each of `records` it should score (`shadowed`), in order, and
    what became of every record (skipped ones counted by reason)."""
    out: list[dict[str, Any]] = []
    counts = Counts()
    sensitive = sorted(spec.name for spec in model.specs if spec.name in model.sensitive)
    for record in records:
        if not shadowed(record):
            counts.skip("error" if record.get("error") is not None else str(record.get("alias")))
            continue
        if sensitive:
            out.append(_failed(record, model, SENSITIVE_FEATURE))
            counts.skip(SENSITIVE_FEATURE)
            continue
        shadow = score_record(record, model, timer=timer)
        out.append(shadow)
        if shadow["error"] is None:
            counts.scored += 1
            counts.rows += shadow["rows"]
        else:
            counts.skip(shadow["error"])
    return out, counts


def score_record(
    record: Mapping[str, Any],
    model: ShadowModel,
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The shadow's record for one capture record: its predictions of the record's columns,
    or `error` set (`missing_feature`, `invalid_value`) when they cannot be scored."""
    columns = record["columns"]
    rows = int(record["rows"])
    absent = [spec.name for spec in model.specs if not _column(columns.get(spec.name), rows)]
    if absent:
        return _failed(record, model, MISSING_FEATURE)
    started = timer()
    try:
        checked, _unseen = check_columns(
            ((spec, list(columns[spec.name]), _field(spec.name)) for spec in model.specs),
            reject_unseen=False,
        )
    except RequestError:
        return _failed(record, model, INVALID_VALUE)
    prediction = predict_columns(model.session, checked, model.signature)
    labels = prediction.labels.tolist()
    probabilities = (
        prediction.probabilities.tolist() if prediction.probabilities is not None else None
    )
    latency_ms = (timer() - started) * 1000
    return {
        **_identity(record, model),
        "rows": rows,
        "columns": dict(columns),
        "predictions": labels,
        "probabilities": probabilities,
        "classes": model.classes,
        "latency_ms": round(latency_ms, 4),
        "error": None,
    }


def _column(values: Any, rows: int) -> bool:
    return isinstance(values, list) and len(values) == rows


def _field(name: str) -> Callable[[int], str]:
    return lambda index: f"columns.{name}[{index}]"


def _identity(record: Mapping[str, Any], model: ShadowModel) -> dict[str, Any]:
    return {
        "record": "capture",
        "format_version": CAPTURE_RECORD_VERSION,
        "request_id": record.get("request_id"),
        "timestamp": record.get("timestamp"),
        "model_name": record["model_name"],
        "model_version": model.version,
        "alias": SHADOW,
        "route": record.get("route"),
        "rollout": None,
        "first_row": record.get("first_row", 0),
        "request_rows": record.get("request_rows"),
        "production_version": record.get("model_version"),
    }


def _failed(record: Mapping[str, Any], model: ShadowModel, error: str) -> dict[str, Any]:
    return {
        **_identity(record, model),
        "rows": 0,
        "columns": {},
        "predictions": [],
        "probabilities": None,
        "classes": model.classes,
        "latency_ms": None,
        "error": error,
    }


def jsonl(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Records as JSON lines (NaN and infinities written as null, as capture writes them)."""
    return b"".join(
        json.dumps(_finite(record), separators=(",", ":")).encode() + b"\n" for record in records
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
