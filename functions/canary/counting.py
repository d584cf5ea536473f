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

A feedback record (`feedback-record` version 2) whose `served` names a rollout's production or
candidate adds one labeled request to that arm (`count_feedback`): for a classifier, a miss
when its prediction is not the label; for a regressor, ln|prediction - label| (at least
`ABS_ERROR_FLOOR`) and its square.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from functions.common import formats
from functions.common.contracts import LATENCY_BUCKETS_MS, ServingStats
from functions.common.records import label_text
from functions.ml.sequential import ABS_ERROR_FLOOR, Counts

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
    labeled: int = 0
    misses: int = 0
    log_abs_error_sum: float = 0.0
    log_abs_error_sq_sum: float = 0.0


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
                    labeled=sums.labeled,
                    misses=sums.misses,
                    log_abs_error_sum=sums.log_abs_error_sum,
                    log_abs_error_sq_sum=sums.log_abs_error_sq_sum,
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
        labeled=stats.labeled,
        misses=stats.misses,
        log_abs_error_sum=stats.log_abs_error_sum,
        log_abs_error_sq_sum=stats.log_abs_error_sq_sum,
    )


def count_feedback(document: object, classifier: Callable[[str], bool | None]) -> ObjectCounts:
    """The counters one feedback record adds: one labeled request of the arm that served it,
    when `served` names a rollout's production or candidate. `classifier(model)` is True for
    a classifier, False for a regressor, None for a model not configured (nothing counted).
    A record that is not a feedback record with a usable label and prediction is `skipped`.

    Raises:
        FormatVersionError: the record was written by a newer release.
    """
    counts = ObjectCounts()
    if not isinstance(document, dict):
        counts.skipped = 1
        return counts
    record = formats.read(formats.FEEDBACK_RECORD, document)
    served = record.get("served")
    if served is None:
        return counts  # its capture was not found: nothing says which arm served it
    found = _served_key(served)
    if found is None:
        counts.skipped = 1
        return counts
    key, prediction = found
    if key[1] is None or key[2] not in ALIASES:
        return counts  # no rollout running, or a version asked for by number
    kind = classifier(key[0])
    if kind is None:
        return counts
    miss_or_error = _outcome(kind, record.get("label"), prediction)
    if miss_or_error is None:
        counts.skipped = 1
        return counts
    sums = counts.sums.setdefault((key[0], key[1], key[2], key[3]), _Sums())
    sums.labeled += 1
    if kind:
        sums.misses += int(miss_or_error)
    else:
        log = math.log(max(miss_or_error, ABS_ERROR_FLOOR))
        sums.log_abs_error_sum += log
        sums.log_abs_error_sq_sum += log * log
    return counts


def _served_key(served: object) -> tuple[tuple[str, int | None, str, int], object] | None:
    if not isinstance(served, dict):
        return None
    model, alias = served.get("model_name"), served.get("alias")
    version, rollout = _int(served.get("model_version")), served.get("rollout")
    if not isinstance(model, str) or not isinstance(alias, str) or version is None:
        return None
    if rollout is not None and _int(rollout) is None:
        return None
    return (model, rollout, alias, version), served.get("prediction")


def _outcome(classifier: bool, label: object, prediction: object) -> float | None:
    """A classifier's miss (1.0 or 0.0), a regressor's absolute error; None when the label or
    the prediction cannot be compared."""
    if classifier:
        truth, predicted = label_text(label), label_text(prediction)
        if truth is None or predicted is None:
            return None
        return float(truth != predicted)
    if not _number(label) or not _number(prediction):
        return None
    assert isinstance(label, int | float) and isinstance(prediction, int | float)
    error = abs(float(label) - float(prediction))
    return error if math.isfinite(error) else None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
