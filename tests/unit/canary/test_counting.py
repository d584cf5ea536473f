"""Counting one capture object's lines: a request once (its first chunk), only a running
rollout's production and candidate records, errors and latency as the test reads them; and
one feedback record: a labeled request of the arm that served it."""

from __future__ import annotations

import json
import math

import pytest

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.canary.counting import count_feedback, count_lines
from functions.common.formats import FormatVersionError
from functions.ml.sequential import ABS_ERROR_FLOOR
from tests.helpers.canary import MODEL, feedback, record


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


def test_a_regressor_s_label_adds_its_log_absolute_error_to_the_arm_that_served_it() -> None:
    document = feedback(7, CANDIDATE, 2, request="a", label=10.0, prediction=12.5)
    counts = count_feedback(document, lambda model: False)
    ((key, sums),) = counts.sums.items()
    assert key == (MODEL, 7, CANDIDATE, 2)
    assert (sums.labeled, sums.misses, sums.requests) == (1, 0, 0)
    assert sums.log_abs_error_sum == pytest.approx(math.log(2.5))
    assert sums.log_abs_error_sq_sum == pytest.approx(math.log(2.5) ** 2)
    exact = count_feedback(
        feedback(7, PRODUCTION, 1, request="b", label=3, prediction=3.0), lambda model: False
    )
    (floored,) = exact.sums.values()
    assert floored.log_abs_error_sum == pytest.approx(math.log(ABS_ERROR_FLOOR))


def test_a_label_that_cannot_be_compared_is_skipped_and_one_of_no_rollout_ignored() -> None:
    text_label = feedback(7, CANDIDATE, 2, request="a", label="ten", prediction=12.5)
    assert count_feedback(text_label, lambda model: False).skipped == 1
    assert count_feedback([1, 2], lambda model: True).skipped == 1
    pinned = feedback(7, "version", 2, request="a", label="yes", prediction="no")
    no_rollout = feedback(None, PRODUCTION, 1, request="a", label="yes", prediction="no")
    other_model = feedback(7, CANDIDATE, 2, request="a", label="yes", prediction="no")
    for document, kind in ((pinned, True), (no_rollout, True), (other_model, None)):
        counts = count_feedback(document, lambda model, kind=kind: kind)
        assert counts.sums == {} and counts.skipped == 0
    newer = {**text_label, "format_version": 99}
    with pytest.raises(FormatVersionError, match="feedback-record"):
        count_feedback(newer, lambda model: False)
