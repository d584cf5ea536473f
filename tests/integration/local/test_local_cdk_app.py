"""A throwaway CDK app (cdk_app/app.py) with the real stack's shapes, synthesized and run on
the local cloud: S3 drop -> EventBridge -> Step Functions -> zip Lambda, Catch -> SNS -> Fail,
and a schedule rule -> container-image Lambda."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import LocalCloud
from tests.helpers.synth import synth_in_child

APP = Path(__file__).parent / "cdk_app"


@pytest.fixture(scope="module")
def probe_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "cdk.out"
    result = synth_in_child([str(APP / "app.py")], out)
    if result.returncode != 0:
        pytest.fail(f"the probe CDK app did not synthesize:\n{result.stderr[-3000:]}")
    return out


@pytest.fixture
def cloud(probe_cdk_out: Path) -> Iterator[LocalCloud]:
    with LocalCloud.start(probe_cdk_out, code_root=APP / "image") as started:
        yield started


@pytest.mark.slow
def test_a_good_drop_runs_the_zip_function_and_succeeds(cloud: LocalCloud) -> None:
    bucket = cloud.outputs["DataBucketName"]
    cloud.client("s3").put_object(Bucket=bucket, Key="raw/good.csv", Body=b"a,b\n1,2\n")
    [execution] = cloud.wait_for_executions(1)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"])["validation"] == {"key": "raw/good.csv", "bytes": 8}
    item = cloud.client("dynamodb").get_item(
        TableName=cloud.outputs["RegistryTableName"], Key={"pk": {"S": "raw/good.csv"}}
    )
    assert item["Item"]["size"] == {"N": "8"}


@pytest.mark.slow
def test_a_bad_drop_is_caught_notified_and_fails_with_the_exception_name(
    cloud: LocalCloud,
) -> None:
    bucket = cloud.outputs["DataBucketName"]
    cloud.client("s3").put_object(Bucket=bucket, Key="raw/bad.csv", Body=b"bad data")
    [execution] = cloud.wait_for_executions(1)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidDropError"
    [alert] = cloud.sent_notifications()
    assert json.loads(alert["Message"]) == {"error": "InvalidDropError", "key": "raw/bad.csv"}


@pytest.mark.slow
def test_the_schedule_runs_the_image_function_from_its_command(cloud: LocalCloud) -> None:
    assert cloud.deployment is not None
    [nightly] = [
        logical_id
        for logical_id in cloud.deployment.of_type("AWS::Events::Rule")
        if logical_id.startswith("Nightly")
    ]
    cloud.fire_schedule(nightly)
    cloud.wait_idle()
    bucket = cloud.outputs["DataBucketName"]
    summary = cloud.client("s3").get_object(Bucket=bucket, Key="reports/summary.json")
    assert json.loads(summary["Body"].read()) == {"job": "summary", "objects": 0}
    assert cloud.deliveries[-1].outcome == "invoked"
    # The function's role has only the AWS managed AWSLambdaBasicExecutionRole for its logs:
    # IAM enforcement evaluates it, so the invocation's log lines are kept.
    group = f"/aws/lambda/{cloud.function_name('Summarize')}"
    events = cloud.client("logs").filter_log_events(logGroupName=group)["events"]
    assert events, f"no log events in {group}"


@pytest.mark.slow
def test_a_cloud_s_grants_go_to_the_tally_in_force_when_it_stops(probe_cdk_out: Path) -> None:
    # The e2e suite checks its own stack's unused grants: another suite's cloud in the same
    # session must not add the probe app's grants to that tally.
    from infra.local.authz import usage

    before = (set(usage.TALLY.granted), set(usage.TALLY.used))
    mine = usage.Tally()
    with usage.tallying(mine):
        with LocalCloud.start(probe_cdk_out, code_root=APP / "image") as cloud:
            bucket = cloud.outputs["DataBucketName"]
            cloud.client("s3").put_object(Bucket=bucket, Key="raw/good.csv", Body=b"a,b\n1,2\n")
            [execution] = cloud.wait_for_executions(1)
            assert execution["status"] == "SUCCEEDED", execution
    used = {grant.holder for grant in mine.used}
    assert any(holder.startswith("role ValidateServiceRole") for holder in used), used
    assert mine.unused, "the probe app grants more than one good drop uses"
    assert (usage.TALLY.granted, usage.TALLY.used) == before
