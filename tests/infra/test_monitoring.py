"""The monitoring construct in the synthesized template: the drift schedules and the drift checks
state machine (a Map over the models, a failed check caught and notified per model), the rule
that turns DriftDetected into a retraining, the optional retraining cadences, the alarms and the
dashboard, and the drift function's least-privilege role (exactly the configured models)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE
from infra.cdk.app import build_app
from tests.helpers.config import with_challenger

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


def _definition(machine: dict[str, Any]) -> dict[str, Any]:
    body = machine["Properties"]["DefinitionString"]
    text = "".join(p if isinstance(p, str) else "<ref>" for p in body["Fn::Join"][1])
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_drift_checks_run_on_the_configured_schedule_through_a_map_over_the_models(
    resources: Resources,
) -> None:
    function_id, function = _one(resources, "AWS::Lambda::Function", "MonitoringDriftFunction")
    machine_id, machine = _one(
        resources, "AWS::StepFunctions::StateMachine", "MonitoringDriftChecksStateMachine"
    )
    _, rule = _one(resources, "AWS::Events::Rule", "MonitoringDriftSchedule")

    assert rule["Properties"]["ScheduleExpression"] == "rate(1 day)"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {"models": ["churn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    assert "DeadLetterConfig" in target
    assert function["Properties"]["Architectures"] == ["arm64"]
    assert function["Properties"]["Timeout"] == 900

    definition = _definition(machine)
    each = definition["States"][definition["StartAt"]]
    assert each["Type"] == "Map" and each["ItemsPath"] == "$.models"
    assert each["ItemSelector"] == {"model.$": "$$.Map.Item.Value"}
    processor = each["ItemProcessor"]
    check = processor["States"][processor["StartAt"]]
    assert check["Parameters"] == {"source": "aws.states", "model.$": "$.model"}
    # Each invocation is bounded by the function's own timeout (plus a margin).
    assert check["TimeoutSeconds"] == 900 + 60
    [catch] = check["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
    # The caught failure is notified (naming the model) and becomes that model's outcome.
    states = processor["States"]
    notify = states["Notify"]
    assert notify["Parameters"]["Message"]["model.$"] == "$.model"
    assert states[notify["Next"]]["Parameters"] == {
        "model.$": "$.model",
        "status": "failed",
        "error.$": "$.error",
    }


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
            "ChurnDataDriftAlarm",
            "ChurnPerformanceDropAlarm",
            "ChurnEstimatedPerformanceDropAlarm",
            "DriftCheckFailedAlarm",
            "PipelineFailedAlarm",
            "ApiServerErrorAlarm",
            "ApiLatencyAlarm",
        )
        for logical_id, alarm in alarms.items()
        if logical_id.startswith(f"Monitoring{name}")
    }
    assert len(by_name) == 7
    for alarm in by_name.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    drift = by_name["ChurnDataDriftAlarm"]["Properties"]
    assert drift["MetricName"] == "DatasetDrift"
    assert {"Name": "model", "Value": "churn"} in drift["Dimensions"]
    assert by_name["ChurnPerformanceDropAlarm"]["Properties"]["MetricName"] == "PerformanceDrop"
    # The label-free estimate alarms before any label arrives, per model.
    estimated = by_name["ChurnEstimatedPerformanceDropAlarm"]["Properties"]
    assert estimated["MetricName"] == "EstimatedPerformanceDrop"
    assert {"Name": "model", "Value": "churn"} in estimated["Dimensions"]
    assert {"Name": "service", "Value": "monitor"} in estimated["Dimensions"]
    assert estimated["Threshold"] >= 1 and estimated["ComparisonOperator"].startswith("Greater")
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
        "estimated (no labels)",
        "Pipeline executions",
    ):
        assert title in body, title
    assert "FeatureDriftScore" in body and "PredictLatency" in body
    assert "EstimatedAccuracy" in body


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

    assert prefixes("s3:GetObject") == {"capture/*", "feedback/*", "models/churn/*"}
    assert prefixes("s3:PutObject") == {
        "reports/drift/churn/*",
        "raw/churn/feedback/*",
        "lineage/*",
    }
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


def test_many_models_get_their_own_schedules_alarms_and_exactly_their_grants(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    config = use_config(
        "\ncooldown_hours = 24", '\ncooldown_hours = 24\nretrain_schedule = "rate(7 days)"', 1
    )
    config.write_text(
        with_challenger(
            config.read_text(),
            drift='schedule = "rate(6 hours)"\nretrain_schedule = "rate(14 days)"',
        )
    )
    assembly = build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"}).synth()
    template = Template.from_json(assembly.get_stack_by_name("mlops-dev").template)
    rules = template.find_resources("AWS::Events::Rule")
    machine_id = next(
        k
        for k in template.find_resources("AWS::StepFunctions::StateMachine")
        if k.startswith("MonitoringDriftChecks")
    )

    # The shared schedule checks the models that keep it; churn-rf has its own rule.
    schedules = {
        k: r["Properties"] for k, r in rules.items() if k.startswith("MonitoringDriftSchedule")
    }
    by_models = {
        tuple(json.loads(p["Targets"][0]["Input"])["models"]): p for p in schedules.values()
    }
    assert set(by_models) == {("churn",), ("churn-rf",)}
    assert by_models[("churn",)]["ScheduleExpression"] == "rate(1 day)"
    assert by_models[("churn-rf",)]["ScheduleExpression"] == "rate(6 hours)"
    assert all(p["Targets"][0]["Arn"] == {"Ref": machine_id} for p in schedules.values())
    assert any(k.startswith("MonitoringDriftScheduleChurnRf") for k in schedules)

    # A retraining cadence per model, each naming its model.
    cadences = {
        json.loads(r["Properties"]["Targets"][0]["Input"])["retrain"]["model"]: r["Properties"]
        for k, r in rules.items()
        if k.startswith("MonitoringRetrainSchedule")
    }
    assert cadences["churn"]["ScheduleExpression"] == "rate(7 days)"
    assert json.loads(cadences["churn-rf"]["Targets"][0]["Input"]) == {
        "retrain": {"reason": "scheduled retrain (rate(14 days))", "model": "churn-rf"}
    }

    # A drift alarm and a performance alarm per model, on that model's metric.
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    drift_alarms = {
        d["Value"]: a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "DatasetDrift"
        for d in a["Properties"]["Dimensions"]
        if d["Name"] == "model"
    }
    assert set(drift_alarms) == {"churn", "churn-rf"}
    assert "mlops drift show --model churn-rf" in drift_alarms["churn-rf"]["AlarmDescription"]

    # The drift function's grants name exactly the two models.
    resources = template.to_json()["Resources"]

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in resources.items() if v["Type"] == kind}

    statements = _statements(of_type, "MonitoringDriftFunctionRole")
    partitions = sorted(
        tuple(s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"])
        for s in statements
        if "Condition" in s and "ForAllValues:StringEquals" in s["Condition"]
    )
    assert partitions == [
        ("MODEL#churn", "MODEL#churn-rf", "MONITOR#churn", "MONITOR#churn-rf"),
        ("MONITOR#churn", "MONITOR#churn-rf"),
    ]
    objects = {
        resource["Fn::Join"][1][-1].lstrip("/")
        for s in statements
        if any(a.startswith("s3:") and a != "s3:ListBucket" for a in _as_list(s["Action"]))
        for resource in _as_list(s["Resource"])
    }
    assert objects == {
        "capture/*",
        "feedback/*",
        "models/churn/*",
        "models/churn-rf/*",
        "reports/drift/churn/*",
        "reports/drift/churn-rf/*",
        "raw/churn/feedback/*",
        "lineage/*",
    }


def test_drift_function_and_checks_state_machine_are_outputs(
    template_json: dict[str, Any],
) -> None:
    assert {"DriftFunctionName", "DriftChecksStateMachineArn"} <= set(template_json["Outputs"])


def test_a_drift_run_failing_every_attempt_lands_in_its_queue_and_alarms(
    resources: Resources,
) -> None:
    function_id, _ = _one(resources, "AWS::Lambda::Function", "MonitoringDriftFunction")
    queue_id, queue = _one(resources, "AWS::SQS::Queue", "MonitoringFailedDriftChecks")
    [config] = [
        c
        for c in resources("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
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
