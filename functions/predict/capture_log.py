"""Capture as log lines: one columnar capture record (format `capture-record`, see
`functions.common.records`) per predicted request, written to the function's stdout before the
response returns. Lambda sends each stdout line to the function's log group as one log event
(a `print`ed line reaches CloudWatch Logs as is, also with the JSON log format); the log
group's subscription filter (`{ $.record = "capture" }`) hands the records to Firehose, which
writes them under `capture/dt=YYYY-MM-DD/`, one per line.

No network call and no per-row object: the columns are serialised by orjson straight from
their arrays (`OPT_SERIALIZE_NUMPY`; NaN and infinities become null). A request whose record
would exceed `MAX_LINE_BYTES` is split by rows into chunks (`first_row`, `rows`,
`request_rows`), each one line under CloudWatch Logs' event size limit. Sensitive columns
(`[dataset] sensitive`) are hashed once per distinct value of the request, or left out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import orjson

from functions.common import formats
from functions.common.records import CAPTURE_DISCRIMINATOR
from functions.common.sensitive import SensitiveColumns, hash_value

LOG_EVENT_LIMIT_BYTES = 256 * 1024
"""CloudWatch Logs' maximum log event size (the message plus 26 bytes)."""
MAX_LINE_BYTES = 200 * 1024
"""A capture line's upper bound: the event limit with a safety margin."""

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
_VERSION = formats.current(formats.CAPTURE_RECORD)


_second: tuple[int, str] = (-1, "")
"""The last second `timestamp` formatted, and its text up to the milliseconds."""


def timestamp() -> str:
    """Now, as capture records write it (UTC, milliseconds truncated, `Z`:
    `2026-12-02T20:00:00.123Z`). The date and time of day are formatted once per second (a
    fifth of what `datetime.isoformat` costs a request)."""
    global _second
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    known = _second  # one read: another thread may replace it
    if known[0] != second:
        known = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{known[1]}{nanoseconds // 1_000_000:03d}Z"


def stored_columns(columns: Mapping[str, Any], sensitive: SensitiveColumns) -> dict[str, Any]:
    """The request's columns as they may be stored, ready for orjson: numeric arrays as they
    are (contiguous), other columns as lists; `hash` columns hashed (each distinct value
    once), `drop` columns left out."""
    stored: dict[str, Any] = {}
    modes = sensitive.modes
    for name, values in columns.items():
        mode = modes.get(name) if modes else None
        if mode == "drop":
            continue
        if mode == "hash":
            cache: dict[Any, str] = {}
            hashed = []
            for value in _plain(values):
                key = value if value is None or isinstance(value, str) else repr(value)
                text = cache.get(key)
                if text is None:
                    text = cache[key] = hash_value(value, sensitive.salt)
                hashed.append(text)
            stored[name] = hashed
            continue
        stored[name] = _serialisable(values)
    return stored


def _serialisable(values: Any) -> Any:
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "fiub":
            return _contiguous(values)
        return values.tolist()
    return values if isinstance(values, list) else list(values)


def _contiguous(values: np.ndarray) -> np.ndarray:
    """`values` as orjson serialises numpy arrays (C-contiguous): itself when it is already."""
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)


def _plain(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.tolist()  # type: ignore[no-any-return]
    return list(values)


def _rows(values: Any, start: int, stop: int) -> Any:
    return values[start:stop]


def record_lines(
    header: dict[str, Any],
    columns: dict[str, Any],
    predictions: Any,
    probabilities: Any,
    rows: int,
    max_bytes: int = MAX_LINE_BYTES,
    request_rows: int | None = None,
) -> list[bytes]:
    """The record of `rows` rows as newline-terminated JSON lines, each at most `max_bytes`:
    one line when it fits, else chunks of consecutive rows (`first_row`, `rows`;
    `request_rows` is the request's count, `rows` unless given). A single row over the limit
    is still one line (it cannot be split; CloudWatch Logs truncates an event over its
    limit)."""
    whole = orjson.dumps(
        {
            **header,
            "first_row": 0,
            "rows": rows,
            "request_rows": rows if request_rows is None else request_rows,
            "columns": columns,
            "predictions": predictions,
            "probabilities": probabilities,
        },
        option=_OPTIONS,
    )
    if len(whole) <= max_bytes or rows <= 1:
        return [whole]
    lines: list[bytes] = []
    # Rows per chunk from the average row size, then halved while a chunk is still too big.
    per_chunk = max(1, int(rows * max_bytes * 0.9 / len(whole)))
    start = 0
    while start < rows:
        stop = min(rows, start + per_chunk)
        line = orjson.dumps(
            {
                **header,
                "first_row": start,
                "rows": stop - start,
                "request_rows": rows,
                "columns": {name: _rows(v, start, stop) for name, v in columns.items()},
                "predictions": _rows(predictions, start, stop),
                "probabilities": (
                    None if probabilities is None else _rows(probabilities, start, stop)
                ),
            },
            option=_OPTIONS,
        )
        if len(line) > max_bytes and stop - start > 1:
            per_chunk = max(1, (stop - start) // 2)
            continue
        lines.append(line)
        start = stop
    return lines


class CaptureLog:
    """Writes capture records to `out` (the process's stdout by default, looked up at each
    write, as Lambda's runtime captures it)."""

    def __init__(self, out: IO[str] | None = None, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._out = out
        self.max_bytes = max_bytes

    def write(
        self,
        *,
        request_id: str,
        model_name: str,
        model_version: int,
        alias: str,
        route: str,
        rollout: int | None,
        columns: Mapping[str, Any],
        rows: int,
        labels: np.ndarray | None,
        probabilities: np.ndarray | None,
        classes: list[str] | None,
        latency_ms: float | None,
        sensitive: SensitiveColumns,
        error: str | None = None,
    ) -> int:
        """Write one request's record (chunked when needed); returns the lines written. An
        `error` record (scoring failed) has no rows."""
        header = {
            "record": CAPTURE_DISCRIMINATOR,
            formats.FIELD: _VERSION,
            "request_id": request_id,
            "timestamp": timestamp(),
            "model_name": model_name,
            "model_version": model_version,
            "alias": alias,
            "route": route,
            "rollout": rollout,
            "classes": classes,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "error": error,
        }
        if error is not None or labels is None:
            lines = record_lines(header, {}, [], None, 0, self.max_bytes, request_rows=rows)
        else:
            predictions = _contiguous(labels) if labels.dtype.kind in "fiub" else labels.tolist()
            probs = None if probabilities is None else _contiguous(probabilities)
            lines = record_lines(
                header,
                stored_columns(columns, sensitive),
                predictions,
                probs,
                rows,
                self.max_bytes,
            )
        self._emit(lines)
        return len(lines)

    def _emit(self, lines: list[bytes]) -> None:
        out = self._out or sys.stdout
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            out.flush()  # what the text layer holds goes first
            buffer.write(b"".join(lines))
            buffer.flush()
        else:
            out.write(b"".join(lines).decode())
            out.flush()
