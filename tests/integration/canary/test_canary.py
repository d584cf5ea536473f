"""The canary function against moto: capture objects (written here in the capture record
contract's format, `capture-record` version 2, as Firehose delivers them) are counted into the
rollout's counters once, and the rollout is concluded by the sequential test through the
registry's transaction, its statistics in the alias history and the decision item."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.model_registry import ModelRegistry
from functions.canary import handler
from functions.canary.logic import DECIDED_BY
from functions.common.config.loading import load_config
from functions.common.contracts import ModelVersion
from tests.helpers.canary import feedback, jsonl, labeled_traffic, record, traffic
from tests.helpers.cloud import Cloud
from tests.helpers.lambda_context import lambda_context

REPO = Path(__file__).resolve().parents[3]
MODEL = "churn"


@pytest.fixture
def canary_config(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def configure(**serving: Any) -> None:
        config = load_config(REPO / "mlops.toml")
        updated = config.model_copy(
            update={
                "serving": config.serving.model_copy(update={"candidate_share": 0.2, **serving})
            }
        )
        monkeypatch.setenv("MLOPS_CONFIG_JSON", updated.to_json())

    configure()
    return configure


def _version(number: int) -> ModelVersion:
    return ModelVersion(
        model_name=MODEL,
        version=number,
        prefix=f"models/{MODEL}/{number}/",
        onnx_key=f"models/{MODEL}/{number}/model.onnx",
        onnx_sha256="ab" * 32,
        run_id=f"r{number}",
        data_version="aaaa",
        data_versions=["aaaa"],
        metrics={"roc_auc": 0.8},
        created_at=f"2026-12-0{number}T00:00:00.000Z",
        model_card_key=f"reports/{MODEL}/{number}/model_card.html",
        promoted=False,
    )


@pytest.fixture
def rollout(cloud: Cloud, canary_config: Callable[..., None]) -> Iterator[int]:
    """Version 1 in production, version 2 the candidate: returns the rollout id."""
    registry = ModelRegistry(cloud.table)
    for number in (1, 2):
        registry.put_version(_version(number))
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=None, reason="canary", alias=CANDIDATE)
    state = registry.get_alias(MODEL, CANDIDATE)
    assert state is not None
    yield state.revision


def put_object(cloud: Cloud, key: str, records: list[dict[str, Any]]) -> str:
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=jsonl(records))
    return key


def deliver(cloud: Cloud, key: str) -> dict[str, Any]:
    """What EventBridge passes the function for an S3 Object Created event."""
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": cloud.bucket}, "object": {"key": key, "size": 1}},
    }
    return handler.lambda_handler(event, lambda_context("canary"))


def test_an_object_is_counted_once_per_alias_and_version_even_when_redelivered(
    cloud: Cloud, rollout: int
) -> None:
    records = [
        record(rollout, PRODUCTION, 1, request="a", latency_ms=4.0),
        record(rollout, PRODUCTION, 1, request="a", latency_ms=4.0, first_row=2),  # 2nd chunk
        record(rollout, CANDIDATE, 2, request="b", latency_ms=30.0),
        record(rollout, CANDIDATE, 2, request="c", latency_ms=None, error="scoring_failed"),
        record(None, PRODUCTION, 1, request="d"),  # before the rollout: not counted
        record(rollout, "version", 1, request="e"),  # asked for by number: not in the rollout
    ]
    key = put_object(cloud, "capture/dt=2026-12-02/stream-1-2026-12-02-20-00-00-abc", records)
    lines = cloud.body(key) + b"not json\n"
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=lines)

    first = deliver(cloud, key)
    again = deliver(cloud, key)  # EventBridge delivers at least once

    assert first["counted"] == {MODEL: True} and first["skipped"] == 1
    assert again["counted"] == {MODEL: False}
    stats = {s.alias: s for s in ModelRegistry(cloud.table).serving_stats(MODEL, rollout)}
    production, candidate = stats[PRODUCTION], stats[CANDIDATE]
    assert (production.requests, production.errors, production.latency_count) == (1, 0, 1)
    assert production.log_latency_sum == pytest.approx(math.log(4.0))
    assert (candidate.requests, candidate.errors, candidate.latency_count) == (2, 1, 1)
    assert candidate.log_latency_sq_sum == pytest.approx(math.log(30.0) ** 2)
    assert candidate.latency_histogram[3] == 1  # 30 ms: the (25, 50] bucket
    assert first["decisions"] == [] and ModelRegistry(cloud.table).get_alias(MODEL, CANDIDATE)


def test_a_failing_candidate_is_rolled_back_with_its_statistic_in_the_history(
    cloud: Cloud, rollout: int, promotions: Callable[[], list[dict[str, Any]]]
) -> None:
    registry = ModelRegistry(cloud.table)
    summaries = []
    for n in range(40):  # objects of 100 requests until the test decides
        records = traffic(rollout, 100, share=0.2, candidate_error=0.3, seed=n, start=100 * n)
        summaries.append(deliver(cloud, put_object(cloud, f"capture/dt=2026-12-02/o-{n}", records)))
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break

    decided = [d for s in summaries for d in s["decisions"]]
    assert len(decided) == 1 and decided[0]["outcome"] == "drop"
    assert registry.get_alias(MODEL).version == 1  # type: ignore[union-attr]
    drop = registry.history(MODEL, CANDIDATE)[-1]
    assert (drop.kind, drop.from_version, drop.execution) == ("drop", 2, DECIDED_BY)
    assert drop.reason.startswith("rollout: candidate version 2 dropped: worse error rate")
    assert "llr" in drop.reason and "n " in drop.reason
    decision = registry.get_rollout_decision(MODEL, rollout)
    assert decision is not None and decision.outcome == "drop" and not decision.expired
    error = next(t for t in decision.tests if t.metric == "error_rate")
    assert error.outcome == "rollback" and error.statistic >= error.upper
    assert error.candidate_n == decision.candidate.requests > 0
    assert decision.production is not None and error.production_n == decision.production.requests
    assert promotions() == []
    # Objects after the decision are of no rollout: counted for nothing, nothing judged.
    late = deliver(
        cloud,
        put_object(
            cloud,
            "capture/dt=2026-12-02/late",
            traffic(None, 10, share=0, candidate_error=0, seed=99),
        ),
    )  # type: ignore[arg-type]  # noqa: E501
    assert late["decisions"] == [] and late["counted"] == {}


def test_an_equal_candidate_is_promoted_and_announced(
    cloud: Cloud, rollout: int, promotions: Callable[[], list[dict[str, Any]]]
) -> None:
    registry = ModelRegistry(cloud.table)
    for n in range(200):
        records = traffic(rollout, 200, share=0.2, candidate_error=0.0, seed=n, start=200 * n)
        deliver(cloud, put_object(cloud, f"capture/dt=2026-12-02/o-{n}", records))
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break

    assert registry.get_alias(MODEL).version == 2  # type: ignore[union-attr]
    promotion = registry.history(MODEL)[-1]
    assert (promotion.kind, promotion.from_version, promotion.to_version) == ("promote", 1, 2)
    assert promotion.reason.startswith("rollout: candidate version 2 promoted: no worse")
    decision = registry.get_rollout_decision(MODEL, rollout)
    assert decision is not None and {t.outcome for t in decision.tests} == {"promote"}
    (event,) = [e for e in promotions() if e["alias"] == PRODUCTION]
    assert (event["version"], event["previous_version"]) == (2, 1)


@pytest.mark.parametrize(("served", "outcome"), [(5, "drop"), (50, "promote")])
def test_time_up_concludes_by_the_candidate_s_requests(
    cloud: Cloud,
    rollout: int,
    canary_config: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    served: int,
    outcome: str,
) -> None:
    canary_config(candidate_max_minutes=30, candidate_min_requests=20)
    later = datetime.now(UTC) + timedelta(minutes=31)
    monkeypatch.setattr("functions.canary.logic.utcnow", lambda: later)
    records = [record(rollout, CANDIDATE, 2, request=f"c{i}") for i in range(served)]
    records += [record(rollout, PRODUCTION, 1, request=f"p{i}") for i in range(10)]

    summary = deliver(cloud, put_object(cloud, "capture/dt=2026-12-02/o", records))

    (decision,) = summary["decisions"]
    assert decision["outcome"] == outcome and decision["expired"] is True
    registry = ModelRegistry(cloud.table)
    assert registry.get_alias(MODEL, CANDIDATE) is None
    assert registry.get_alias(MODEL).version == (2 if outcome == "promote" else 1)  # type: ignore[union-attr]
    assert "time up" in registry.history(MODEL, CANDIDATE)[-1].reason


def test_without_candidate_share_nothing_is_judged(
    cloud: Cloud, rollout: int, canary_config: Callable[..., None]
) -> None:
    canary_config(candidate_share=0.0)
    records = traffic(rollout, 100, share=0.5, candidate_error=1.0, seed=1)
    summary = deliver(cloud, put_object(cloud, "capture/dt=2026-12-02/o", records))
    assert summary["decisions"] == [] and summary["counted"] == {MODEL: True}
    assert ModelRegistry(cloud.table).get_alias(MODEL, CANDIDATE) is not None


def test_an_event_of_another_bucket_or_prefix_is_refused(cloud: Cloud, rollout: int) -> None:
    other = {"detail": {"bucket": {"name": "elsewhere"}, "object": {"key": "capture/x"}}}
    with pytest.raises(handler.BadEventError, match="names no object of bucket"):
        handler.lambda_handler(other, lambda_context("canary"))
    with pytest.raises(ValueError, match="is neither a capture object"):
        deliver(cloud, "raw/churn/x.csv")


def put_feedback(cloud: Cloud, document: dict[str, Any]) -> str:
    key = f"feedback/dt=2026-12-02/{document['request_id']}-{document['row']}.json"
    cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=json.dumps(document).encode())
    return key


def test_a_feedback_record_counts_one_labeled_request_of_its_arm_once(
    cloud: Cloud, rollout: int, canary_config: Callable[..., None]
) -> None:
    canary_config(canary_accuracy=True)
    missed = put_feedback(
        cloud, feedback(rollout, CANDIDATE, 2, request="a", label="yes", prediction="no")
    )
    right = put_feedback(
        cloud, feedback(rollout, PRODUCTION, 1, request="b", label=1, prediction=1.0)
    )
    unmatched = {**feedback(None, PRODUCTION, 1, request="c", label="no", prediction="no")}
    unmatched["served"] = None

    assert deliver(cloud, missed)["counted"] == {MODEL: True}
    assert deliver(cloud, missed)["counted"] == {MODEL: False}  # redelivered
    deliver(cloud, right)
    assert deliver(cloud, put_feedback(cloud, unmatched))["counted"] == {}
    cloud.s3.put_object(Bucket=cloud.bucket, Key="feedback/dt=2026-12-02/x.json", Body=b"a,b\n")
    assert deliver(cloud, "feedback/dt=2026-12-02/x.json")["skipped"] == 1

    stats = {s.alias: s for s in ModelRegistry(cloud.table).serving_stats(MODEL, rollout)}
    assert (stats[CANDIDATE].labeled, stats[CANDIDATE].misses) == (1, 1)
    assert (stats[PRODUCTION].labeled, stats[PRODUCTION].misses) == (1, 0)
    assert stats[CANDIDATE].requests == 0  # labels are not requests: capture counts those


def test_feedback_is_not_counted_unless_the_model_tests_accuracy(
    cloud: Cloud, rollout: int
) -> None:
    key = put_feedback(
        cloud, feedback(rollout, CANDIDATE, 2, request="a", label="yes", prediction="no")
    )
    assert deliver(cloud, key)["counted"] == {}
    assert ModelRegistry(cloud.table).serving_stats(MODEL, rollout) == []


def test_a_less_accurate_candidate_is_rolled_back_on_its_labels(
    cloud: Cloud, rollout: int, canary_config: Callable[..., None]
) -> None:
    canary_config(canary_accuracy=True, canary_min_effect_accuracy=0.1)
    registry = ModelRegistry(cloud.table)
    # Healthy traffic: error rate and latency say "no worse", so the rollout waits for labels.
    for n in range(3):
        records = traffic(rollout, 400, share=0.3, candidate_error=0.0, seed=n, start=400 * n)
        summary = deliver(cloud, put_object(cloud, f"capture/dt=2026-12-02/o-{n}", records))
        assert summary["decisions"] == []
    decision = None
    for document in labeled_traffic(rollout, 600, share=0.3, candidate_miss=0.5, seed=1):
        decided = deliver(cloud, put_feedback(cloud, document))["decisions"]
        if decided:
            decision = decided[0]
            break

    assert decision is not None, "the accuracy test never decided"
    assert decision["outcome"] == "drop"
    assert registry.get_alias(MODEL, CANDIDATE) is None
    assert registry.get_alias(MODEL).version == 1  # type: ignore[union-attr]
    stored = registry.get_rollout_decision(MODEL, rollout)
    assert stored is not None
    accuracy = next(t for t in stored.tests if t.metric == "accuracy")
    assert accuracy.outcome == "rollback" and accuracy.statistic >= accuracy.upper
    assert accuracy.candidate_n == stored.candidate.labeled >= 30
    assert "worse accuracy" in registry.history(MODEL, CANDIDATE)[-1].reason
