"""The shadow scorer in the synthesized template: built only when a model has `[serving]
shadow = true`; a capture object invokes it through EventBridge (dead-letter queue, retries,
on-failure queue, alarms), on the serving layer, with a role that reads capture/ and the
shadowed model and writes only shadow/<model>/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from infra.cdk.checks import cfn_lint, checkov, checkov_skips
from tests.infra.test_runbook import LINK, _alarm_sections

STACK = "mlops-dev"


def _of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _shadow_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, function)] = [
        (k, v)
        for k, v in _of(template, "AWS::Lambda::Function").items()
        if k.startswith("ShadowShadowFunction")
    ]
    return logical_id, function


def test_no_shadow_scorer_without_a_shadowed_model(template_json: dict[str, Any]) -> None:
    assert not [k for k in template_json["Resources"] if k.startswith("Shadow")]


def test_the_scorer_runs_on_the_serving_layer(
    shadow_template: dict[str, Any], template_json: dict[str, Any]
) -> None:
    _, function = _shadow_function(shadow_template)
    properties = function["Properties"]
    assert properties["Handler"] == "functions.shadow.handler.lambda_handler"
    assert properties["Runtime"] == "python3.13"
    [layer] = properties["Layers"]
    assert layer["Ref"].startswith("ServingServingLayer")


def test_a_capture_object_invokes_it_with_retries_and_dead_letters(
    shadow_template: dict[str, Any],
) -> None:
    function_id, _ = _shadow_function(shadow_template)
    [rule] = [
        v for k, v in _of(shadow_template, "AWS::Events::Rule").items() if k.startswith("Shadow")
    ]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "capture/"}]}
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 8}
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith(
        "ShadowUndeliveredShadowEvents"
    )
    [invoke] = [
        v
        for v in _of(shadow_template, "AWS::Lambda::EventInvokeConfig").values()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert invoke["Properties"]["MaximumRetryAttempts"] == 2
    destination = invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination["Fn::GetAtt"][0].startswith("ShadowFailedShadowScoring")


def test_every_shadow_alarm_links_to_its_runbook_section(
    shadow_template: dict[str, Any], template_json: dict[str, Any]
) -> None:
    alarms = {
        k: v["Properties"]
        for k, v in _of(shadow_template, "AWS::CloudWatch::Alarm").items()
        if k not in template_json["Resources"]
    }
    assert {re.sub(r"[0-9A-F]{8}$", "", k) for k in alarms} == {
        "ShadowUndeliveredShadowEventsAlarm",
        "ShadowFailedShadowScoringAlarm",
        "ShadowShadowScoringErrorsAlarm",
    }
    sections = _alarm_sections()
    for properties in alarms.values():
        link = LINK.search(properties["AlarmDescription"])
        assert link and link["anchor"] in sections


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _of(template, "AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role_prefix) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _prefixes(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    return [
        r["Fn::Join"][1][-1].lstrip("/")
        for r in resources
        if isinstance(r, dict) and "Fn::Join" in r
    ]


def test_its_role_reads_capture_and_the_model_and_writes_only_its_records(
    shadow_template: dict[str, Any],
) -> None:
    statements = _statements(shadow_template, "ShadowShadowFunctionRole")
    actions = lambda s: s["Action"] if isinstance(s["Action"], list) else [s["Action"]]  # noqa: E731
    writes = [p for s in statements if "s3:PutObject" in actions(s) for p in _prefixes(s)]
    reads = [p for s in statements if "s3:GetObject" in actions(s) for p in _prefixes(s)]
    assert writes == ["shadow/churn/*"]
    assert sorted(reads) == ["capture/*", "models/churn/*"]
    assert not [s for s in statements if any(a.startswith("s3:Delete") for a in actions(s))]
    dynamodb = {a for s in statements for a in actions(s) if a.startswith("dynamodb:")}
    assert dynamodb and all(
        a.startswith(("dynamodb:Get", "dynamodb:Query", "dynamodb:BatchGet", "dynamodb:Condition"))
        for a in dynamodb
    ), dynamodb
    assert "events:PutEvents" not in json.dumps(statements)


def test_the_shadow_template_is_cfn_lint_and_checkov_clean(
    shadow_template: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / f"{STACK}.template.json"
    path.write_text(json.dumps(shadow_template))
    errors = [f for f in cfn_lint([path]) if f.level == "Error"]
    assert not errors, [(f.rule, f.resource, f.message) for f in errors]
    skips = checkov_skips()
    unskipped = [f for f in checkov([path]) if not (f.rule in skips and skips[f.rule].covers(f))]
    assert not unskipped, [(f.rule, f.resource, f.message) for f in unskipped]
