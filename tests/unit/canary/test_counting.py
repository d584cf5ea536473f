"""Counting one capture object's lines: a request once (its first chunk), only a running
rollout's production and candidate records, errors and latency as the test reads them."""

from __future__ import annotations

import json
import math

from functions.canary.counting import count_lines
from tests.helpers.canary import MODEL, record


def lines(*records: dict[str, object]) -> list[bytes]:
    return [json.dumps(r).encode() for r in records]


def test_a_request_counts_once_and_failures_have_no_latency_observation() -> None:
    counts = count_lines(
        [
            *lines(
                record(3, "candidate", 2, request="a", latency_ms=10.0),
                record(3, "candidate", 2, request="a", latency_ms=10.0, first_row=500),
                record(3, "candidate", 2, request="b", latency_ms=5.0, error="scoring_failed"),
                record(3, "production", 1, request="c", latency_ms=0.0),
            ),
            b"",
            b"   ",
        ]
    )
    grouped = counts.by_model()[MODEL][3]
    candidate = next(s for s in grouped if s.alias == "candidate")
    production = next(s for s in grouped if s.alias == "production")
    assert (candidate.requests, candidate.errors, candidate.latency_count) == (2, 1, 1)
    assert candidate.latency_ms_sum == 15.0  # a failure's scoring time is in the sum
    assert candidate.log_latency_sum == math.log(10.0)
    assert (production.requests, production.latency_count) == (1, 0)  # 0 ms: no log
    assert counts.skipped == 0


def test_what_is_not_a_countable_record_is_skipped_not_guessed() -> None:
    older = {**record(3, "candidate", 2, request="a"), "format_version": 1}
    nameless = dict(record(3, "candidate", 2, request="b"))
    del nameless["model_name"]
    bad_version = {**record(3, "candidate", 2, request="c"), "model_version": "2"}
    other = {"record": "shadow", "rollout": 3, "alias": "candidate"}
    counts = count_lines([b"{not json", *lines(older, nameless, bad_version, other)])
    assert counts.skipped == 5 and counts.by_model() == {}


def test_records_of_no_rollout_or_of_pinned_versions_are_not_counted() -> None:
    counts = count_lines(
        lines(
            record(None, "production", 1, request="a"),
            record(3, "version", 1, request="b"),
            record(3, "shadow", 1, request="c"),
        )
    )
    assert counts.by_model() == {} and counts.skipped == 0
