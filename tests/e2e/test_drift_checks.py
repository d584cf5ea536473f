"""The scheduled drift checks of two models on the local cloud, deployed from the synthesized
app: the schedule starts the drift checks state machine, whose Map checks each model with its
own drift invocation. One model's check fails (its monitor state was written by a newer
release): the failure is caught in its iteration and notified naming the model, and the other
model is still checked, its report written under its own prefix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.layout import capture_day_prefix, monitor_key, version_prefix
from functions.ml import sample_data
from infra.local import LocalCloud
from tests.helpers.config import CHALLENGER, repo_config, with_challenger
from tests.helpers.drift import churn_reference, monitored_version
from tests.helpers.openlineage import stored_events

pytestmark = pytest.mark.slow

MODEL = "churn"
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]


@pytest.fixture(scope="module")
def cloud(synth_with_config: Callable[[str], Path]) -> Iterator[LocalCloud]:
    cdk_out = synth_with_config(with_challenger(repo_config()))
    state_dir = cdk_out.parent / "state"
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as started:
        yield started


def _register(cloud: LocalCloud, model: str) -> None:
    """Version 1 of `model` with its reference profile, as the register stage leaves it."""
    bucket = str(cloud.outputs["DataBucketName"])
    prefix = version_prefix(model, 1)
    train = sample_data.churn_frame(2_000, seed=1, duplicate_share=0.0)
    profile = churn_reference(train, sample_rows=1_000, predictions=400)
    cloud.client("s3").put_object(
        Bucket=bucket, Key=prefix + "reference_profile.json", Body=json.dumps(profile)
    )
    registry = ModelRegistry(str(cloud.outputs["RegistryTableName"]), cloud.client("dynamodb"))
    registry.put_version(
        monitored_version(model, registry.allocate_version(model), {"accuracy": 0.8})
    )


def _capture(cloud: LocalCloud, model: str, rows: int) -> None:
    """Served rows of `model`, as Firehose writes them under capture/."""
    frame = sample_data.churn_frame(rows, seed=5, first_id=9_000_000, duplicate_share=0.0)
    lines = []
    for index, record in enumerate(frame[FEATURES].astype(object).to_dict("records")):
        features = {k: (None if v != v else v) for k, v in record.items()}
        line = {
            "request_id": f"{model}-{index // 50}",
            "row": index % 50,
            "timestamp": "2026-12-01T00:00:00.000Z",
            "model_name": model,
            "model_version": 1,
            "features": features,
            "prediction": "no",
        }
        lines.append(json.dumps(line, default=str))
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    cloud.client("s3").put_object(
        Bucket=str(cloud.outputs["DataBucketName"]),
        Key=f"{capture_day_prefix(day)}{model}.jsonl",
        Body="\n".join(lines).encode(),
    )


def test_one_models_failed_check_is_notified_and_the_other_model_is_still_checked(
    cloud: LocalCloud,
) -> None:
    for model, rows in ((MODEL, 300), (CHALLENGER, 200)):
        _register(cloud, model)
        _capture(cloud, model, rows)
    # The challenger's monitor state, as a newer release would have written it.
    cloud.client("dynamodb").put_item(
        TableName=str(cloud.outputs["RegistryTableName"]),
        Item={
            "pk": {"S": monitor_key(CHALLENGER)},
            "sk": {"S": "STATE"},
            "kind": {"S": "monitor"},
            "format_version": {"N": "99"},
            "last_check_id": {"S": "from-the-future"},
        },
    )
    checks = str(cloud.outputs["DriftChecksStateMachineArn"])
    rules = cloud.deployment.of_type("AWS::Events::Rule") if cloud.deployment else {}
    [schedule] = [logical for logical in rules if logical.startswith("MonitoringDriftSchedule")]
    time.sleep(1.1)  # the checks' window ends a whole second before they start

    cloud.fire_schedule(schedule)
    [execution] = cloud.wait_for_executions(1, 600, checks)

    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["input"]) == {"models": [MODEL, CHALLENGER]}
    outcomes = {o["model"]: o for o in json.loads(execution["output"])["checks"]}
    assert outcomes[MODEL]["status"] == "checked"
    assert outcomes[MODEL]["verdict"] == "no_drift"
    assert outcomes[CHALLENGER]["status"] == "failed"
    assert outcomes[CHALLENGER]["error"]["Error"] == "FormatVersionError"
    assert "newer release" in outcomes[CHALLENGER]["error"]["Cause"]
    # The checked model's report is under its own prefix; the failed one wrote nothing.
    s3 = cloud.client("s3")
    bucket = str(cloud.outputs["DataBucketName"])
    result = json.loads(
        s3.get_object(Bucket=bucket, Key=outcomes[MODEL]["result_key"])["Body"].read()
    )
    assert result["model_name"] == MODEL and result["window"]["rows"] == 300
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"reports/drift/{CHALLENGER}/")
    assert listed.get("KeyCount", 0) == 0
    # One alert, naming the model and the error.
    alerts = [
        json.loads(n["Message"])
        for n in cloud.sent_notifications()
        if "drift check failed" in str(n["Subject"])
    ]
    assert [(a["model"], a["error"]) for a in alerts] == [(CHALLENGER, "FormatVersionError")]
    assert alerts[0]["execution"] == execution["executionArn"]
    # Each check is an OpenLineage run: the window and the served version's profile in, the
    # report out; the failed one ends FAIL with its error.
    checked = stored_events(s3, bucket, f"{MODEL}.drift-check")
    assert sorted(e["eventType"] for e in checked) == ["COMPLETE", "START"]
    (complete,) = [e for e in checked if e["eventType"] == "COMPLETE"]
    assert [d["name"] for d in complete["outputs"]] == [
        outcomes[MODEL]["result_key"].rsplit("/", 1)[0] + "/"
    ]
    inputs = {d["name"] for d in complete["inputs"]}
    assert "capture/" in inputs and version_prefix(MODEL, 1) + "reference_profile.json" in inputs
    failed = stored_events(s3, bucket, f"{CHALLENGER}.drift-check")
    assert sorted(e["eventType"] for e in failed) == ["FAIL", "START"]
    (fail,) = [e for e in failed if e["eventType"] == "FAIL"]
    assert fail["run"]["facets"]["errorMessage"]["message"].startswith("FormatVersionError")
