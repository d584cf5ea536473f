"""A canary rollout judged from the capture stream on the local cloud, deployed from the
synthesized app: capture objects (in the capture record contract's format, as Firehose
delivers them under capture/) raise S3 Object Created events, EventBridge invokes the canary
function as Lambda would (under its own role), and the function counts each object once and
rolls back a candidate that fails more often than production, through the registry's
transaction. `mlops models history --alias candidate` shows the sequential test's statistic,
boundaries and sample sizes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from functions.adapters.registry.aliases import CANDIDATE
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.layout import capture_day_prefix
from infra.local import LocalCloud
from tests.helpers.canary import MODEL, jsonl, traffic
from tests.helpers.config import repo_config
from tests.helpers.drift import monitored_version
from tests.helpers.served import mlops

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(synth_with_config: Callable[[str], Path]) -> Iterator[tuple[LocalCloud, Path]]:
    cdk_out = synth_with_config(repo_config(serving={"candidate_share": 0.2}))
    state_dir = cdk_out.parent / "state"
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as started:
        yield started, state_dir


def test_a_failing_candidate_is_rolled_back_from_capture_objects(
    cloud: tuple[LocalCloud, Path],
) -> None:
    local, state_dir = cloud
    bucket = str(local.outputs["DataBucketName"])
    registry = ModelRegistry(str(local.outputs["RegistryTableName"]), local.client("dynamodb"))
    for _ in (1, 2):
        registry.put_version(
            monitored_version(MODEL, registry.allocate_version(MODEL), {"accuracy": 0.8})
        )
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=None, reason="canary", alias=CANDIDATE)
    rollout = registry.get_alias(MODEL, CANDIDATE).revision  # type: ignore[union-attr]
    s3 = local.client("s3")

    first_key = f"{capture_day_prefix('2026-12-02')}capture-stream-1-0"
    for n in range(30):  # 100 requests per object, the candidate failing 30 % of its own
        records = traffic(rollout, 100, share=0.2, candidate_error=0.3, seed=n, start=100 * n)
        key = f"{capture_day_prefix('2026-12-02')}capture-stream-1-{n}"
        s3.put_object(Bucket=bucket, Key=key, Body=jsonl(records))
        local.wait_idle(timeout=60)
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break
    # A redelivered object (the same key written again) is not counted twice.
    counted = {s.alias: s.requests for s in registry.serving_stats(MODEL, rollout)}
    s3.put_object(
        Bucket=bucket,
        Key=first_key,
        Body=s3.get_object(Bucket=bucket, Key=first_key)["Body"].read(),
    )  # noqa: E501
    local.wait_idle(timeout=60)
    assert {s.alias: s.requests for s in registry.serving_stats(MODEL, rollout)} == counted

    assert registry.get_alias(MODEL, CANDIDATE) is None, "the test never decided"
    assert registry.get_alias(MODEL).version == 1  # type: ignore[union-attr]
    decision = registry.get_rollout_decision(MODEL, rollout)
    assert decision is not None and decision.outcome == "drop"
    error = next(t for t in decision.tests if t.metric == "error_rate")
    assert error.outcome == "rollback" and error.statistic >= error.upper
    assert error.candidate_n == counted["candidate"]

    shown = mlops(state_dir, "models", "history", "--alias", "candidate").output
    assert "drop" in shown and "worse error rate" in shown
    assert f"n {error.candidate_n} vs {error.production_n}" in " ".join(shown.split())
