"""Capture objects' lines as capture records of the current format (`capture-record` version 2:
one record per request, or per chunk of a request: `first_row`, `rows`, feature `columns`,
`predictions`, ...), read through `functions.common.records.capture_record`, which upgrades a
version 1 line (one per row) to a one-row record in memory. Pure: no third-party imports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from functions.common import formats
from functions.common.records import capture_record

CAPTURE_RECORD_VERSION = formats.current(formats.CAPTURE_RECORD)
"""The `capture-record` format version of the records read and written here."""
PRODUCTION = "production"


def capture_records(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """The capture records of an object's lines, in the current format; blank lines, lines
    that are not JSON objects, records a reader cannot use (`capture_record`), records without
    a model name and records of a newer format are left out."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = capture_record(json.loads(line))
        except (ValueError, formats.FormatVersionError):
            continue
        if record is not None and isinstance(record.get("model_name"), str):
            yield dict(record)
