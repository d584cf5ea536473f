"""EventBridge deliveries to Lambda and Step Functions: asynchronous, named after the object
version, transformed as configured, dead-lettered on failure; schedules fire on demand."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from infra.local import LocalCloud, faults
from infra.local.event_input import render_template, target_input
from infra.local.eventbridge import find_rule

PASS_MACHINE = {"Pass": {"Type": "Pass", "End": True}}


def test_an_s3_drop_is_delivered_after_put_object_returns(
    drop_cloud: Callable[..., LocalCloud], cfn: Any, probe: ModuleType
) -> None:
    cloud = drop_cloud(
        {
            "Slow": cfn.function("slow", env={"SLEEP_SECONDS": "1"}),
            "Rule": cfn.s3_rule("Data", cfn.function_target("Slow")),
        },
    )
    started = time.monotonic()
    cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key="raw/a.csv", Body=b"x")
    assert time.monotonic() - started < 0.8
    assert probe.RECEIVED == []
    cloud.wait_idle(timeout=10)
    [event] = probe.RECEIVED
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["object"]["key"] == "raw/a.csv"
    assert event["time"].endswith("Z")  # ISO 8601 as EventBridge sends it, not moto's float


def test_executions_are_named_after_the_object_version_and_started_once_per_version(
    drop_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = drop_cloud(
        {
            "Machine": cfn.state_machine(PASS_MACHINE, "Pass"),
            "Rule": cfn.s3_rule("Data", {"Arn": {"Ref": "Machine"}}),
        },
        {"Rule": {"Value": {"Ref": "Rule"}}},
    )
    bucket = cloud.outputs["Bucket"]
    s3 = cloud.client("s3")
    first = s3.put_object(Bucket=bucket, Key="raw/churn/day 1.csv", Body=b"a")
    second = s3.put_object(Bucket=bucket, Key="raw/churn/day 1.csv", Body=b"b")
    s3.put_object(Bucket=bucket, Key="curated/ignored.csv", Body=b"c")
    cloud.wait_idle()

    names = {e["name"] for e in cloud.executions()}
    expected = {
        cloud.execution_name_for_object(bucket, "raw/churn/day 1.csv", response["VersionId"])
        for response in (first, second)
    }
    assert names == expected
    assert all(name.startswith("s3-raw-churn-day-1-csv-") for name in names)

    # moto's S3 events carry a constant id: a redelivery must not start a second execution.
    [redelivered] = [e for e in cloud.executions() if e["name"] == sorted(names)[0]]
    execution = cloud.wait_for_execution(redelivered["executionArn"])
    find_rule(cloud.outputs["Rule"]).send_to_targets(json.loads(execution["input"]))
    cloud.wait_idle()
    assert len(cloud.executions()) == 2
    assert cloud.deliveries[-1].outcome == "duplicate"


def test_input_transformer_shapes_what_the_target_receives(
    drop_cloud: Callable[..., LocalCloud], cfn: Any, probe: ModuleType
) -> None:
    transformer = {
        "InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
        "InputTemplate": '{"source": {"bucket": <bucket>, "key": <key>}, "note": "got <key>"}',
    }
    cloud = drop_cloud(
        {
            "Record": cfn.function("record"),
            "Rule": cfn.s3_rule(
                "Data", cfn.function_target("Record", InputTransformer=transformer)
            ),
        },
    )
    bucket = cloud.outputs["Bucket"]
    cloud.client("s3").put_object(Bucket=bucket, Key='raw/"quoted".csv', Body=b"x")
    cloud.wait_idle()
    assert probe.RECEIVED == [
        {"source": {"bucket": bucket, "key": 'raw/"quoted".csv'}, "note": 'got raw/"quoted".csv'}
    ]


def test_a_schedule_rule_fires_only_on_demand(
    drop_cloud: Callable[..., LocalCloud], cfn: Any, probe: ModuleType
) -> None:
    cloud = drop_cloud(
        {
            "Record": cfn.function("record"),
            "Nightly": cfn.schedule_rule(cfn.function_target("Record", Input='{"job": "drift"}')),
            "Raw": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "ScheduleExpression": "cron(0 3 * * ? *)",
                    "Targets": [{"Id": "Raw", "Arn": {"Fn::GetAtt": ["Record", "Arn"]}}],
                },
            },
        },
    )
    cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key="raw/a.csv", Body=b"x")
    cloud.client("events").put_events(
        Entries=[{"Source": "app", "DetailType": "Something", "Detail": "{}"}]
    )
    cloud.wait_idle()
    assert probe.RECEIVED == []

    event = cloud.fire_schedule("Nightly")
    cloud.wait_idle()
    assert probe.RECEIVED == [{"job": "drift"}]
    assert event["detail-type"] == "Scheduled Event"

    probe.RECEIVED.clear()
    cloud.fire_schedule("Raw")
    cloud.wait_idle()
    [scheduled] = probe.RECEIVED
    assert scheduled["source"] == "aws.events"
    assert scheduled["resources"] == [find_rule(cloud.deployment.physical_id("Raw")).arn]  # type: ignore[union-attr]


def test_an_sns_target_receives_the_event(drop_cloud: Callable[..., LocalCloud], cfn: Any) -> None:
    cloud = drop_cloud(
        {
            "Alerts": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Rule": cfn.s3_rule("Data", {"Arn": {"Ref": "Alerts"}, "InputPath": "$.detail"}),
        },
        {"AlertsTopicArn": {"Value": {"Ref": "Alerts"}}},
    )
    cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key="raw/a.csv", Body=b"x")
    cloud.wait_idle()
    [notification] = cloud.sent_notifications()
    assert json.loads(notification["Message"])["object"]["key"] == "raw/a.csv"


def test_a_failed_delivery_is_logged_and_dead_lettered(
    drop_cloud: Callable[..., LocalCloud], cfn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cloud = drop_cloud(
        {
            "Gone": cfn.function("echo"),
            "Undelivered": cfn.queue(),
            "Rule": cfn.s3_rule("Data", cfn.function_target("Gone", dead_letter="Undelivered")),
        },
        {
            "Queue": {"Value": {"Ref": "Undelivered"}},
            "Function": {"Value": {"Ref": "Gone"}},
            "Rule": {"Value": {"Ref": "Rule"}},
        },
    )
    cloud.client("lambda").delete_function(FunctionName=cloud.outputs["Function"])
    with caplog.at_level(logging.ERROR, logger="infra.local.eventbridge"):
        cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key="raw/a.csv", Body=b"x")
        cloud.wait_idle()
    [record] = caplog.records
    assert "Target0" in record.getMessage()
    assert cloud.deliveries[-1].outcome == "failed"
    [message] = cloud.client("sqs").receive_message(
        QueueUrl=cloud.outputs["Queue"], MessageAttributeNames=["All"]
    )["Messages"]
    assert json.loads(message["Body"])["detail"]["object"]["key"] == "raw/a.csv"
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"].endswith(":rule/" + cloud.outputs["Rule"].split("|")[-1])
    assert attributes["TARGET_ARN"].endswith(":function:" + cloud.outputs["Function"])
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert set(attributes) == {
        "RULE_ARN",
        "TARGET_ARN",
        "ERROR_CODE",
        "ERROR_MESSAGE",
        "EXHAUSTED_RETRY_CONDITION",
        "RETRY_ATTEMPTS",
    }


def test_a_fault_on_the_rule_s_start_execution_dead_letters_the_event_as_throttled(
    drop_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = drop_cloud(
        {
            "Machine": cfn.state_machine(PASS_MACHINE, "Pass"),
            "Undelivered": cfn.queue(),
            "Rule": cfn.s3_rule("Data", cfn.target({"Ref": "Machine"}, dead_letter="Undelivered")),
        },
        {"Queue": {"Value": {"Ref": "Undelivered"}}},
    )
    with faults.inject("sfn.StartExecution", "ThrottlingException", match="raw/b.csv"):
        for key in ("raw/a.csv", "raw/b.csv"):
            cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key=key, Body=b"x")
        cloud.wait_idle()

    [message] = cloud.client("sqs").receive_message(
        QueueUrl=cloud.outputs["Queue"], MessageAttributeNames=["All"]
    )["Messages"]
    assert json.loads(message["Body"])["detail"]["object"]["key"] == "raw/b.csv"
    assert message["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "THROTTLING"
    assert "ThrottlingException" in message["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
    [started] = cloud.executions()
    assert "raw-a-csv" in started["name"]


def test_an_event_invoke_runs_asynchronously_and_ends_in_the_on_failure_destination(
    start_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = start_cloud(
        {
            "Role": cfn.role(),
            "Fail": cfn.function("fail"),
            "FailedRuns": cfn.queue(),
            "AsyncConfig": cfn.on_failure_config("Fail", "FailedRuns"),
        },
        {"Function": {"Value": {"Ref": "Fail"}}, "FailedRuns": {"Value": {"Ref": "FailedRuns"}}},
    )
    response = cloud.client("lambda").invoke(
        FunctionName=cloud.outputs["Function"], InvocationType="Event", Payload=b'{"n": 1}'
    )
    cloud.wait_idle()

    assert response["StatusCode"] == 202
    assert "FunctionError" not in response
    sqs = cloud.client("sqs")
    [message] = sqs.receive_message(QueueUrl=cloud.outputs["FailedRuns"])["Messages"]
    record = json.loads(message["Body"])
    assert record["requestPayload"] == {"n": 1}
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responsePayload"]["errorType"] == "QuotaExceededError"


def test_a_function_failing_every_attempt_sends_its_on_failure_record_not_a_dead_letter(
    drop_cloud: Callable[..., LocalCloud], cfn: Any
) -> None:
    cloud = drop_cloud(
        {
            "Fail": cfn.function("fail"),
            "Undelivered": cfn.queue(),
            "FailedRuns": cfn.queue(),
            "AsyncConfig": cfn.on_failure_config("Fail", "FailedRuns"),
            "Rule": cfn.s3_rule("Data", cfn.function_target("Fail", dead_letter="Undelivered")),
        },
        {
            "Undelivered": {"Value": {"Ref": "Undelivered"}},
            "FailedRuns": {"Value": {"Ref": "FailedRuns"}},
        },
    )
    cloud.client("s3").put_object(Bucket=cloud.outputs["Bucket"], Key="raw/a.csv", Body=b"x")
    cloud.wait_idle()
    sqs = cloud.client("sqs")
    [message] = sqs.receive_message(QueueUrl=cloud.outputs["FailedRuns"])["Messages"]
    record = json.loads(message["Body"])

    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"]["detail"]["object"]["key"] == "raw/a.csv"
    assert record["responsePayload"]["errorType"] == "QuotaExceededError"
    assert cloud.deliveries[-1].outcome == "invoked"
    assert "Messages" not in sqs.receive_message(QueueUrl=cloud.outputs["Undelivered"])


EVENT = {
    "source": "aws.s3",
    "time": "2026-01-01T00:00:00Z",
    "detail": {"bucket": {"name": "b"}, "object": {"key": "raw/x.csv", "size": 3}},
}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({}, EVENT),
        ({"Input": '{"fixed": true}'}, {"fixed": True}),
        ({"InputPath": "$.detail.object"}, {"key": "raw/x.csv", "size": 3}),
        (
            {
                "InputTransformer": {
                    "InputPathsMap": {"size": "$.detail.object.size", "obj": "$.detail.object"},
                    "InputTemplate": '{"size": <size>, "text": "<size> bytes", "obj": <obj>}',
                }
            },
            {"size": 3, "text": "3 bytes", "obj": {"key": "raw/x.csv", "size": 3}},
        ),
        (
            {
                "InputTransformer": {
                    "InputPathsMap": {"key": "$.detail.object.key"},
                    "InputTemplate": "New drop <key> in <aws.events.rule-name>",
                }
            },
            "New drop raw/x.csv in my-rule",
        ),
    ],
)
def test_target_input_follows_eventbridge_rules(target: dict[str, Any], expected: Any) -> None:
    rule_arn = "arn:aws:events:us-east-1:123456789012:rule/my-rule"
    assert target_input(target, EVENT, rule_arn) == expected


def test_a_missing_path_renders_as_null() -> None:
    assert render_template('{"v": <v>}', {"v": None}) == {"v": None}
