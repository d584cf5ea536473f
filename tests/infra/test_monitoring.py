"""The monitoring construct in the synthesized template: the drift schedule, the rule that turns
DriftDetected into a retraining, the optional retraining cadence, the alarms and the dashboard,
and the drift function's least-privilege role."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE
from infra.cdk.app import build_app

Resources = Callable[[str], dict[str, dict[str, Any]]]


def _one(resources: Resources, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = [(k, v) for k, v in resources(kind).items() if k.startswith(prefix)]
    return logical_id, resource


def _statements(resources: Resources, role_prefix: str) -> list[dict[str, Any]]:
    found = []
    for policy in resources("AWS::IAM::Policy").values():
        if any(r["Ref"].startswith(role_prefix) for r in policy["Properties"]["Roles"]):
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_drift_check_runs_on_the_configured_schedule(resources: Resources) -> None:
    function_id, function = _one(resources, "AWS::Lambda::Function", "MonitoringDriftFunction")
    _, rule = _one(resources, "AWS::Events::Rule", "MonitoringDriftSchedule")

    assert rule["Properties"]["ScheduleExpression"] == "rate(1 day)"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    assert "DeadLetterConfig" in target
    assert function["Properties"]["Architectures"] == ["arm64"]
    assert function["Properties"]["Timeout"] == 900


def test_drift_detected_with_a_retrain_request_starts_the_pipeline(
    resources: Resources,
) -> None:
    machine_id, _ = _one(resources, "AWS::StepFunctions::StateMachine", "PipelineStateMachine")
    _, rule = _one(resources, "AWS::Events::Rule", "MonitoringDriftRetrainRule")

    assert rule["Properties"]["EventPattern"] == {
        "source": [MONITOR_SOURCE],
        "detail-type": [DRIFT_DETECTED],
        "detail": {"retrain": {"via": ["pipeline"]}},
    }
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    assert target["InputPath"] == "$.detail.pipeline_input"


def test_alarms_on_drift_performance_failures_5xx_and_latency_notify_alerts(
    resources: Resources,
) -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    topic_id, _ = _one(resources, "AWS::SNS::Topic", "AlertsTopic")
    by_name = {
        name: alarm
        for name in (
            "DataDriftAlarm",
            "PerformanceDropAlarm",
            "DriftCheckFailedAlarm",
            "PipelineFailedAlarm",
            "ApiServerErrorAlarm",
            "ApiLatencyAlarm",
        )
        for logical_id, alarm in alarms.items()
        if logical_id.startswith(f"Monitoring{name}")
    }
    assert len(by_name) == 6
    for alarm in by_name.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    assert by_name["DataDriftAlarm"]["Properties"]["MetricName"] == "DatasetDrift"
    assert by_name["PerformanceDropAlarm"]["Properties"]["MetricName"] == "PerformanceDrop"
    assert by_name["PipelineFailedAlarm"]["Properties"]["MetricName"] == "ExecutionsFailed"
    assert by_name["DriftCheckFailedAlarm"]["Properties"]["MetricName"] == "Errors"
    assert by_name["ApiServerErrorAlarm"]["Properties"]["MetricName"] == "5XXError"
    latency = by_name["ApiLatencyAlarm"]["Properties"]
    assert latency["ExtendedStatistic"] == "p99" and latency["Threshold"] == 1000


def test_dashboard_shows_the_lifecycle(resources: Resources) -> None:
    _, dashboard = _one(resources, "AWS::CloudWatch::Dashboard", "MonitoringDashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in (
        "Predict latency",
        "API requests and errors",
        "Capture volume",
        "Drift score per feature",
        "Live performance",
        "Pipeline executions",
    ):
        assert title in body, title
    assert "FeatureDriftScore" in body and "PredictLatency" in body


def test_drift_function_reads_capture_feedback_models_and_writes_reports_only(
    resources: Resources,
) -> None:
    statements = _statements(resources, "MonitoringDriftFunctionRole")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]

    def prefixes(action: str) -> set[str]:
        found = set()
        for statement in s3:
            if action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    found.add(resource["Fn::Join"][1][-1].lstrip("/"))
        return found

    assert prefixes("s3:GetObject") == {"capture/*", "feedback/*", "models/*"}
    assert prefixes("s3:PutObject") == {"reports/*", "raw/churn/feedback/*"}
    [listing] = [s for s in s3 if "s3:ListBucket" in _as_list(s["Action"])]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["capture/*", "feedback/*"]}}
    for statement in s3:
        assert not any("Delete" in a for a in _as_list(statement["Action"]))


def test_drift_function_reads_the_models_items_and_writes_only_its_own_state(
    resources: Resources,
) -> None:
    statements = _statements(resources, "MonitoringDriftFunctionRole")
    dynamodb = [
        s for s in statements if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    grants = {}
    for statement in dynamodb:
        partitions = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        grants[tuple(partitions)] = set(_as_list(statement["Action"]))
    reads = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    assert grants == {
        ("MODEL#churn", "MONITOR#churn"): reads,
        ("MONITOR#churn",): {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    }


def test_a_retrain_cadence_adds_a_schedule_that_starts_the_pipeline(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    use_config(
        'schedule = "rate(1 day)"\n',
        'schedule = "rate(1 day)"\nretrain_schedule = "rate(7 days)"\n',
    )
    assembly = build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"}).synth()
    template = Template.from_json(assembly.get_stack_by_name("mlops-dev").template)

    [rule] = [
        r
        for k, r in template.find_resources("AWS::Events::Rule").items()
        if k.startswith("MonitoringRetrainSchedule")
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(7 days)"
    [target] = rule["Properties"]["Targets"]
    assert json.loads(target["Input"]) == {
        "retrain": {"reason": "scheduled retrain (rate(7 days))"}
    }


def test_drift_function_name_is_an_output(template_json: dict[str, Any]) -> None:
    assert "DriftFunctionName" in template_json["Outputs"]


def test_a_drift_run_failing_every_attempt_lands_in_its_queue_and_alarms(
    resources: Resources,
) -> None:
    function_id, _ = _one(resources, "AWS::Lambda::Function", "MonitoringDriftFunction")
    queue_id, queue = _one(resources, "AWS::SQS::Queue", "MonitoringFailedDriftChecks")
    [config] = resources("AWS::Lambda::EventInvokeConfig").values()
    topic_id, _ = _one(resources, "AWS::SNS::Topic", "AlertsTopic")
    _, alarm = _one(resources, "AWS::CloudWatch::Alarm", "MonitoringDriftCheckRetriesExhausted")

    assert config["Properties"]["FunctionName"] == {"Ref": function_id}
    assert config["Properties"]["MaximumRetryAttempts"] == 2
    assert config["Properties"]["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}
    }
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    sends = [
        s
        for s in _statements(resources, "MonitoringDriftFunctionRole")
        if "sqs:SendMessage" in _as_list(s["Action"])
    ]
    assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    properties = alarm["Properties"]
    assert properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert properties["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
    ]
    assert properties["AlarmActions"] == [{"Ref": topic_id}]
    assert properties["Threshold"] == 1 and properties["EvaluationPeriods"] == 1
