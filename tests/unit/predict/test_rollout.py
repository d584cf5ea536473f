"""The rollout's rules: when a rollout is judged, and what promotes or drops a candidate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.common.contracts import ServingStats
from functions.predict.rollout import (
    ERROR_RATE_TOLERANCE,
    LATENCY_RATIO,
    RolloutPolicy,
    StatsBuffer,
    due,
    judge,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RolloutPolicy(share=0.1, min_requests=100, max_minutes=60)


def stats(alias: str, requests: int, errors: int = 0, latency_ms: float = 10.0) -> ServingStats:
    return ServingStats(
        alias=alias,
        version=2 if alias == "candidate" else 1,
        requests=requests,
        errors=errors,
        latency_ms_sum=latency_ms * requests,
    )


@pytest.mark.parametrize(
    ("requests", "minutes", "expected"),
    [(99, 59, False), (100, 0, True), (0, 60, True), (5, 61, True)],
)
def test_judged_after_enough_requests_or_time(requests: int, minutes: int, expected: bool) -> None:
    at = START + timedelta(minutes=minutes)
    assert due(stats("candidate", requests), started_at=START, at=at, policy=POLICY) is expected


def test_an_equal_candidate_is_promoted() -> None:
    verdict = judge(stats("candidate", 100, 1), stats("production", 900, 9))
    assert verdict.outcome == "promote"
    assert verdict.reason.startswith("rollout: candidate version 2 promoted")


def test_error_rate_within_the_tolerance_is_no_worse() -> None:
    within = int(100 * (0.02 + ERROR_RATE_TOLERANCE))
    assert judge(stats("candidate", 100, within), stats("production", 100, 2)).outcome == "promote"
    verdict = judge(stats("candidate", 100, within + 1), stats("production", 100, 2))
    assert verdict.outcome == "drop" and "error rate 4.0% vs 2.0%" in verdict.reason


def test_a_slower_candidate_is_dropped() -> None:
    limit = 10.0 * LATENCY_RATIO
    assert judge(stats("candidate", 50, latency_ms=limit), stats("production", 50)).outcome == (
        "promote"
    )
    verdict = judge(stats("candidate", 50, latency_ms=limit + 0.1), stats("production", 50))
    assert verdict.outcome == "drop" and "mean latency 12.10 ms vs 10.00 ms" in verdict.reason


def test_a_candidate_that_served_nothing_is_dropped() -> None:
    assert judge(None, stats("production", 10)).outcome == "drop"
    assert judge(stats("candidate", 0), None).outcome == "drop"


def test_without_production_numbers_only_the_error_rate_counts() -> None:
    assert judge(stats("candidate", 100, 1, latency_ms=500), None).outcome == "promote"
    assert judge(stats("candidate", 100, 2), None).outcome == "drop"


def test_the_buffer_sums_per_version_and_empties() -> None:
    buffer = StatsBuffer()
    buffer.add(3, "candidate", 2, 4.0, failed=False)
    buffer.add(3, "candidate", 2, 30.0, failed=True)
    buffer.add(3, "production", 1, 2000.0, failed=False)

    drained = {(rollout, s.alias): s for rollout, s in buffer.drain()}

    candidate = drained[(3, "candidate")]
    assert (candidate.requests, candidate.errors, candidate.latency_ms_sum) == (2, 1, 34.0)
    assert candidate.latency_histogram == [1, 0, 0, 1, 0, 0, 0, 0, 0]  # <= 5, <= 50 ms
    assert drained[(3, "production")].latency_histogram[-1] == 1
    assert buffer.pending == 0 and buffer.drain() == []
