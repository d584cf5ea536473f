"""A canary rollout judged from the capture stream on the local cloud, deployed from the
synthesized app: capture objects (in the capture record contract's format, as Firehose
delivers them under capture/) raise S3 Object Created events, EventBridge invokes the canary
function as Lambda would (under its own role), and the function counts each object once and
rolls back a candidate that fails more often than production, through the registry's
transaction. `mlops models history --alias candidate` shows the sequential test's statistic,
boundaries and sample sizes. With `canary_accuracy` on, the feedback records the API stores
reach the canary function too (its rule and its read grant), and a candidate whose labeled
predictions miss more often is rolled back on them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from functions.adapters.registry.aliases import CANDIDATE
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.layout import capture_day_prefix
from infra.local import LocalCloud
from tests.helpers.canary import MODEL, jsonl, labeled_traffic, traffic
from tests.helpers.config import repo_config
from tests.helpers.drift import monitored_version
from tests.helpers.served import mlops

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(synth_with_config: Callable[[str], Path]) -> Iterator[tuple[LocalCloud, Path]]:
    cdk_out = synth_with_config(
        repo_config(
            serving={
                "candidate_share": 0.2,
                "canary_accuracy": True,
                "canary_min_effect_accuracy": 0.1,
            }
        )
    )
    state_dir = cdk_out.parent / "state"
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as started:
        yield started, state_dir


@dataclass(frozen=True)
class Rollout:
    """A new candidate version on top of production in the deployed registry."""

    local: LocalCloud
    state_dir: Path
    bucket: str
    registry: ModelRegistry
    id: int
    production: int
    candidate: int


@pytest.fixture
def rollout(cloud: tuple[LocalCloud, Path]) -> Rollout:
    """A new rollout (production set first when none is): the tests of this module run in
    any order on one deployment."""
    local, state_dir = cloud
    registry = ModelRegistry(str(local.outputs["RegistryTableName"]), local.client("dynamodb"))
    if registry.get_alias(MODEL) is None:
        first = registry.allocate_version(MODEL)
        registry.put_version(monitored_version(MODEL, first, {"accuracy": 0.8}))
        registry.promote(MODEL, first, expected_current=None, reason="first")
    number = registry.allocate_version(MODEL)
    registry.put_version(monitored_version(MODEL, number, {"accuracy": 0.8}))
    registry.promote(MODEL, number, expected_current=None, reason="canary", alias=CANDIDATE)
    candidate = registry.get_alias(MODEL, CANDIDATE)
    production = registry.get_alias(MODEL)
    assert candidate is not None and production is not None
    return Rollout(
        local,
        state_dir,
        str(local.outputs["DataBucketName"]),
        registry,
        candidate.revision,
        production.version,
        number,
    )


def test_a_failing_candidate_is_rolled_back_from_capture_objects(rollout: Rollout) -> None:
    local, bucket, registry = rollout.local, rollout.bucket, rollout.registry
    production, candidate, state_dir = rollout.production, rollout.candidate, rollout.state_dir
    s3 = local.client("s3")

    first_key = f"{capture_day_prefix('2026-12-02')}capture-stream-1-0"
    for n in range(30):  # 100 requests per object, the candidate failing 30 % of its own
        records = traffic(rollout.id, 100, share=0.2, candidate_error=0.3, seed=n, start=100 * n)
        for captured in records:
            captured["model_version"] = candidate if captured["alias"] == CANDIDATE else production
        key = f"{capture_day_prefix('2026-12-02')}capture-stream-1-{n}"
        s3.put_object(Bucket=bucket, Key=key, Body=jsonl(records))
        local.wait_idle(timeout=60)
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break
    # A redelivered object (the same key written again) is not counted twice.
    counted = {s.alias: s.requests for s in registry.serving_stats(MODEL, rollout.id)}
    s3.put_object(
        Bucket=bucket,
        Key=first_key,
        Body=s3.get_object(Bucket=bucket, Key=first_key)["Body"].read(),
    )  # noqa: E501
    local.wait_idle(timeout=60)
    assert {s.alias: s.requests for s in registry.serving_stats(MODEL, rollout.id)} == counted

    assert registry.get_alias(MODEL, CANDIDATE) is None, "the test never decided"
    assert registry.get_alias(MODEL).version == production  # type: ignore[union-attr]
    decision = registry.get_rollout_decision(MODEL, rollout.id)
    assert decision is not None and decision.outcome == "drop"
    error = next(t for t in decision.tests if t.metric == "error_rate")
    assert error.outcome == "rollback" and error.statistic >= error.upper
    assert error.candidate_n == counted["candidate"]

    shown = mlops(state_dir, "models", "history", "--alias", "candidate").output
    assert "drop" in shown and "worse error rate" in shown
    assert f"n {error.candidate_n} vs {error.production_n}" in " ".join(shown.split())


def test_a_less_accurate_candidate_is_rolled_back_from_feedback_records(
    rollout: Rollout,
) -> None:
    local, bucket, registry = rollout.local, rollout.bucket, rollout.registry
    production, candidate, state_dir = rollout.production, rollout.candidate, rollout.state_dir
    s3 = local.client("s3")

    for document in labeled_traffic(rollout.id, 400, share=0.4, candidate_miss=0.6, seed=2):
        served = document["served"]
        served["model_version"] = candidate if served["alias"] == CANDIDATE else production
        key = f"feedback/dt=2026-12-02/{document['request_id']}-{rollout.id}-0.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())
        if int(document["request_id"][1:]) % 20 == 19:
            local.wait_idle(timeout=60)
            if registry.get_alias(MODEL, CANDIDATE) is None:
                break
    local.wait_idle(timeout=60)

    assert registry.get_alias(MODEL, CANDIDATE) is None, "the accuracy test never decided"
    decision = registry.get_rollout_decision(MODEL, rollout.id)
    assert decision is not None and decision.outcome == "drop"
    accuracy = next(t for t in decision.tests if t.metric == "accuracy")
    assert accuracy.outcome == "rollback" and accuracy.candidate_n >= 30
    shown = mlops(state_dir, "models", "history", "--alias", "candidate").output
    assert "worse accuracy" in shown
