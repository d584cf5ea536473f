"""`mlops dlq ...` against a moto server reached as the local cloud: dead letters as EventBridge
and Lambda write them (the event and its message attributes; the on-failure record), read
without being taken from the queue, and redriven to the rule's target with the input the
target builds, each deleted only once its re-delivery succeeded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.dead_letters import QUEUES
from infra.cli.main import app
from infra.local.eventbridge import execution_name

REGION = "us-east-1"
BUCKET = "mlops-dev-data"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::123456789012:role/events"


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def s3_event(key: str, version: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"id-{key}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-01T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": 3, "etag": "e", "version-id": version},
        },
    }


@dataclass
class Stack:
    endpoint: str
    urls: dict[str, str]
    pipeline: str
    rule_arn: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def dead_letter(self, queue: str, event: Any, **attributes: str) -> None:
        self.client("sqs").send_message(
            QueueUrl=self.urls[queue],
            MessageBody=json.dumps(event),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            },
        )

    def undelivered(self, event: Any, target: str | None = None) -> None:
        self.dead_letter(
            "drops",
            event,
            RULE_ARN=self.rule_arn,
            TARGET_ARN=target or self.pipeline,
            ERROR_CODE="THROTTLING",
            ERROR_MESSAGE="Rate exceeded",
            EXHAUSTED_RETRY_CONDITION="MaximumRetryAttempts",
            RETRY_ATTEMPTS="8",
        )

    def waiting(self, queue: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.urls[queue], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=self.pipeline)["executions"]
        return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


@pytest.fixture
def stack(local_state: Any) -> Stack:
    """The four queues in the stack outputs, and the raw/ drop rule targeting the pipeline
    with an input transformer, as a template could configure it."""
    endpoint = local_state.endpoint
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    urls = {q.name: sqs.create_queue(QueueName=f"dlq-{q.name}")["QueueUrl"] for q in QUEUES}
    sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name=REGION)
    pipeline = sfn.create_state_machine(name="pipeline", definition=DEFINITION, roleArn=ROLE)[
        "stateMachineArn"
    ]
    events = boto3.client("events", endpoint_url=endpoint, region_name=REGION)
    rule_arn = events.put_rule(
        Name="raw-drop", EventPattern=json.dumps({"source": ["aws.s3"]}), State="ENABLED"
    )["RuleArn"]
    events.put_targets(
        Rule="raw-drop",
        Targets=[
            {
                "Id": "Target0",
                "Arn": pipeline,
                "RoleArn": ROLE,
                "InputTransformer": {
                    "InputPathsMap": {"key": "$.detail.object.key"},
                    "InputTemplate": '{"drop": <key>, "rule": "<aws.events.rule-name>"}',
                },
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq-drops"},
            }
        ],
    )
    local_state.write_outputs({q.output: urls[q.name] for q in QUEUES})
    return Stack(endpoint, urls, pipeline, rule_arn)


def test_list_counts_every_queue_and_show_reads_without_taking(stack: Stack) -> None:
    stack.undelivered(s3_event("raw/churn/a.csv", "v1"))
    stack.undelivered(s3_event("raw/churn/b.csv", "v1"))

    listed = json.loads(mlops("dlq", "list", "--json").stdout)
    shown = mlops("dlq", "show", "drops")
    as_json = json.loads(mlops("dlq", "show", "drops", "--json").stdout)

    assert [q["queue"] for q in listed] == [
        "drops",
        "batch-starts",
        "monitoring-events",
        "failed-drift-checks",
    ]
    assert [q["visible"] for q in listed] == [2, 0, 0, 0]
    assert listed[0]["oldest_age_seconds"] is not None and listed[0]["oldest_of"] == 2
    assert shown.exit_code == 0, shown.output
    for word in ("s3://mlops-dev-data/raw/churn/a.csv#v1", "THROTTLING", "Rate exceeded"):
        assert word in shown.output
    assert stack.rule_arn in shown.output
    assert {letter["what"] for letter in as_json} == {
        "s3://mlops-dev-data/raw/churn/a.csv#v1",
        "s3://mlops-dev-data/raw/churn/b.csv#v1",
    }
    assert as_json[0]["event"]["detail"]["object"]["version-id"] == "v1"
    assert as_json[0]["retry_attempts"] == "8"
    assert stack.waiting("drops") == 2, "show leaves the messages visible in the queue"
    table = mlops("dlq", "list").stdout
    assert "drops" in table and "failed-drift-checks" in table


def test_redrive_starts_the_target_with_the_input_the_rule_builds_and_deletes_the_message(
    stack: Stack,
) -> None:
    event = s3_event("raw/churn/a.csv", "v1")
    stack.undelivered(event)

    dry = mlops("dlq", "redrive", "drops", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would redrive 1 of 1" in dry.output
    assert stack.executions() == [] and stack.waiting("drops") == 1

    result = mlops("dlq", "redrive", "drops")

    assert result.exit_code == 0, result.output
    assert "redrove 1 of 1" in result.output
    [execution] = stack.executions()
    assert json.loads(execution["input"]) == {"drop": "raw/churn/a.csv", "rule": "raw-drop"}
    assert execution["name"] == execution_name("raw-drop", event)
    assert stack.waiting("drops") == 0

    # The same event dead-lettered again (a second failed delivery): the execution of that
    # name exists, so it is delivered, not started twice.
    stack.undelivered(event)
    again = mlops("dlq", "redrive", "drops")
    assert again.exit_code == 0, again.output
    assert len(stack.executions()) == 1 and stack.waiting("drops") == 0


def test_a_message_that_cannot_be_redriven_stays_and_is_named(stack: Stack) -> None:
    gone = stack.pipeline.replace(":pipeline", ":retired")
    stack.undelivered(s3_event("raw/churn/old.csv", "v1"), target=gone)
    stack.undelivered(s3_event("raw/churn/new.csv", "v1"))

    result = mlops("dlq", "redrive", "drops")

    assert result.exit_code == 1
    assert "redrove 1 of 2" in result.stdout
    [error] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "raw/churn/old.csv" in error and "stays in drops" in error
    assert f"rule raw-drop no longer targets {gone}" in error
    assert "Traceback" not in result.output
    assert stack.waiting("drops") == 1
    [left] = json.loads(mlops("dlq", "show", "drops", "--json").stdout)
    assert left["target_arn"] == gone


def test_an_on_failure_record_shows_the_function_the_condition_and_the_error(
    stack: Stack,
) -> None:
    schedule = {
        "id": "e1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2026-12-01T01:30:00Z",
        "detail": {},
    }
    function = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-drift:$LATEST"
    record = {
        "version": "1.0",
        "timestamp": "2026-12-01T01:31:00.000Z",
        "requestContext": {
            "requestId": "r1",
            "functionArn": function,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": schedule,
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "StorageError", "errorMessage": "capture unreadable"},
    }
    stack.dead_letter("failed-drift-checks", record)

    [letter] = json.loads(mlops("dlq", "show", "failed-drift-checks", "--json").stdout)
    shown = mlops("dlq", "show", "failed-drift-checks").stdout
    dry = mlops("dlq", "redrive", "failed-drift-checks", "--dry-run").stdout

    assert letter["what"] == "Scheduled Event from aws.events at 2026-12-01T01:30:00Z"
    assert letter["target_arn"] == function
    assert letter["condition"] == "RetriesExhausted" and letter["invoke_count"] == 3
    assert (letter["error_code"], letter["error_message"]) == ("StorageError", "capture unreadable")
    assert letter["event"] == schedule
    for word in ("RetriesExhausted", "StorageError", "capture unreadable", "mlops-dev-drift"):
        assert word in shown
    assert f"Invoke {function} asynchronously" in dry


def test_an_unknown_queue_exits_2_naming_the_queues(stack: Stack) -> None:
    result = CliRunner().invoke(app, ["dlq", "redrive", "dead"])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no dead-letter queue 'dead': one of drops, batch-starts, monitoring-events, "
        "failed-drift-checks"
    )
