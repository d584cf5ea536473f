"""A batch job's status and the sentence saying why (`functions.batch.finalize.job_status`), with
`[batch] max_rejected_share` as configured."""

from __future__ import annotations

from typing import Any

import pytest

from functions.batch.finalize import job_status
from functions.common.config.base import ConfigError
from functions.common.config.loading import parse_config
from functions.common.config.serving import BatchConfig

DEFAULT = BatchConfig()


def _status(batch: BatchConfig = DEFAULT, **counts: Any) -> tuple[str, str]:
    base: dict[str, Any] = {
        "rows": 1_000,
        "scored": 1_000,
        "rejected": 0,
        "rejects_by_error": {},
        "failed_items": 0,
        "items": 4,
        "not_scored": 0,
        "unreadable": [],
        "error": None,
    }
    return job_status(**{**base, **counts}, batch=batch)


def test_every_row_scored_succeeds() -> None:
    assert _status() == ("succeeded", "all 1,000 rows scored")


def test_rejected_rows_within_the_share_make_the_job_partial() -> None:
    assert _status(scored=900, rejected=100) == (
        "partial",
        "100 of 1,000 rows rejected (share 10% <= max_rejected_share 10%)",
    )


def test_more_rejected_rows_than_the_configured_share_fail_the_job() -> None:
    assert _status(scored=899, rejected=101)[0] == "failed"
    lenient = BatchConfig(max_rejected_share=0.5)
    assert _status(lenient, scored=600, rejected=400) == (
        "partial",
        "400 of 1,000 rows rejected (share 40% <= max_rejected_share 50%)",
    )
    assert _status(lenient, scored=400, rejected=600) == (
        "failed",
        "600 of 1,000 rows rejected (share 60% > max_rejected_share 50%)",
    )


def test_no_row_scored_fails_naming_the_rejections_or_the_other_cause() -> None:
    assert _status(
        BatchConfig(max_rejected_share=1.0),
        scored=0,
        rejected=1_000,
        rejects_by_error={"invalid_type": 10, "missing_feature": 990},
    ) == (
        "failed",
        "no row was scored: 1,000 of 1,000 rows rejected (missing_feature 990, invalid_type 10)",
    )
    assert _status(rows=0, scored=0, items=0, unreadable=["batch/in/j/a.csv"]) == (
        "failed",
        "no row was scored: 1 unreadable file(s): batch/in/j/a.csv",
    )
    assert _status(rows=0, scored=0, items=1) == (
        "failed",
        "no row was scored: the files hold no rows",
    )


def test_failed_items_within_the_tolerance_make_the_job_partial_and_beyond_it_failed() -> None:
    tolerant = BatchConfig(tolerated_failure_percentage=50)
    assert _status(tolerant, scored=750, failed_items=1, not_scored=250) == (
        "partial",
        "1 of 4 items failed after their retries (250 rows not scored; "
        "tolerated_failure_percentage 50%)",
    )
    error = {"Error": "States.ExceedToleratedFailureThreshold"}
    status, reason = _status(scored=250, failed_items=3, not_scored=750, error=error)
    assert status == "failed"
    assert reason.startswith("the map failed (States.ExceedToleratedFailureThreshold); 3 of 4")


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_max_rejected_share_must_be_a_share(share: float) -> None:
    with pytest.raises(ConfigError, match="batch.max_rejected_share"):
        parse_config(
            {"dataset": {"name": "d", "target": "y"}, "batch": {"max_rejected_share": share}}
        )
