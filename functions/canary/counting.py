"""What one capture object adds to the rollouts' counters: pure code over its JSON lines (the
capture record contract, `capture-record` version 2), no AWS.

A request is counted once, from its first chunk (`first_row` 0; a request too large for one
log event is split into chunks that repeat `latency_ms` and `error`). Only records of a running
rollout count (`rollout` set) and only aliases `production` and `candidate`: versions asked for
by number are not part of a rollout, shadow predictions are never under `capture/`. Each
counted request adds 1 to `requests`, 1 to `errors` when its `error` is set (a 5xx scoring
failure), and its `latency_ms` to the latency sum and histogram; a successful request with a
positive `latency_ms` is also one observation of the latency test (ln of it, and its square).

Records without a rollout (none was running, or version 1 records, which carry none) and records
of other aliases are not counted. Lines that are not JSON capture records, or that lack what
counting needs, are skipped and counted in `skipped`, never guessed.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from functions.common.contracts import LATENCY_BUCKETS_MS, ServingStats
from functions.ml.sequential import Counts

RECORD = "capture"
ALIASES = ("production", "candidate")
MIN_FORMAT_VERSION = 2

Key = tuple[str, int, str, int]
"""(model, rollout, alias, version)"""


@dataclass
class _Sums:
    requests: int = 0
    errors: int = 0
    latency_ms_sum: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_count: int = 0
    log_latency_sum: float = 0.0
    log_latency_sq_sum: float = 0.0


@dataclass
class ObjectCounts:
    """The counters one capture object adds, per (model, rollout, alias, version)."""

    sums: dict[Key, _Sums] = field(default_factory=dict)
    skipped: int = 0
    """Lines that are no countable capture record (unreadable, older format, fields missing)."""

    def by_model(self) -> dict[str, dict[int, list[ServingStats]]]:
        """Per model, per rollout: each alias and version's `ServingStats`."""
        grouped: dict[str, dict[int, list[ServingStats]]] = {}
        for (model, rollout, alias, version), sums in sorted(self.sums.items()):
            grouped.setdefault(model, {}).setdefault(rollout, []).append(
                ServingStats(
                    alias=alias,
                    version=version,
                    requests=sums.requests,
                    errors=sums.errors,
                    latency_ms_sum=sums.latency_ms_sum,
                    latency_histogram=list(sums.histogram),
                    latency_count=sums.latency_count,
                    log_latency_sum=sums.log_latency_sum,
                    log_latency_sq_sum=sums.log_latency_sq_sum,
                )
            )
        return grouped


def _int(value: object) -> int | None:
    return value if type(value) is int else None


def _countable(record: object) -> tuple[Key, object, object] | None:
    """(key, error, latency_ms) of a record to count, None for one to skip."""
    if not isinstance(record, dict) or record.get("record", RECORD) != RECORD:
        return None
    version = _int(record.get("format_version"))
    model, alias = record.get("model_name"), record.get("alias")
    rollout, served = _int(record.get("rollout")), _int(record.get("model_version"))
    if version is None or version < MIN_FORMAT_VERSION or not isinstance(model, str):
        return None
    if rollout is None or served is None or alias not in ALIASES:
        return None
    assert isinstance(alias, str)
    return (model, rollout, alias, served), record.get("error"), record.get("latency_ms")


def count_lines(lines: Iterable[bytes | str]) -> ObjectCounts:
    """The counters of a capture object's lines (blank lines ignored)."""
    counts = ObjectCounts()
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            counts.skipped += 1
            continue
        if isinstance(record, dict) and (
            record.get("rollout") is None or record.get("alias") not in ALIASES
        ):
            continue  # no rollout running, or a version asked for by number: not counted
        found = _countable(record)
        if found is None:
            counts.skipped += 1
            continue
        if _int(record.get("first_row")) not in (0, None):
            continue  # a later chunk of a request counted at its first
        key, error, latency = found
        _add(counts.sums.setdefault(key, _Sums()), error, latency)
    return counts


def _add(sums: _Sums, error: object, latency: object) -> None:
    sums.requests += 1
    failed = error is not None
    sums.errors += failed
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        milliseconds = float(latency)
        if math.isfinite(milliseconds) and milliseconds >= 0:
            sums.latency_ms_sum += milliseconds
            sums.histogram[bisect_left(LATENCY_BUCKETS_MS, milliseconds)] += 1
            if not failed and milliseconds > 0:
                log = math.log(milliseconds)
                sums.latency_count += 1
                sums.log_latency_sum += log
                sums.log_latency_sq_sum += log * log


def counts_of(stats: ServingStats | None) -> Counts:
    """The sequential test's view of one arm's stored counters."""
    if stats is None:
        return Counts()
    return Counts(
        requests=stats.requests,
        errors=stats.errors,
        latency_count=stats.latency_count,
        log_latency_sum=stats.log_latency_sum,
        log_latency_sq_sum=stats.log_latency_sq_sum,
    )
