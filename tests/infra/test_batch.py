"""The batch inference state machine, its trigger and its functions' permissions, as
CloudFormation will create them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from functions.common.config.loading import load_config

Resources = Callable[[str], dict[str, dict[str, Any]]]


def _definition(resources: Resources) -> dict[str, Any]:
    (machine,) = [
        m for k, m in resources("AWS::StepFunctions::StateMachine").items() if k.startswith("Batch")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return dict(json.loads("".join(p if isinstance(p, str) else "ARN" for p in parts)))


def test_a_distributed_map_reads_the_planned_items_from_s3_with_the_configured_limits(
    resources: Resources,
) -> None:
    batch = load_config().batch
    states = _definition(resources)["States"]

    score = states["Score"]
    assert score["Type"] == "Map"
    assert score["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    reader = score["ItemReader"]
    assert reader["Resource"].endswith(":states:::s3:getObject")
    assert reader["ReaderConfig"] == {"InputType": "JSON"}
    assert reader["Parameters"]["Key.$"] == "$.plan.items_key"
    assert score["MaxConcurrency"] == batch.max_concurrency
    # Written even when 0 (CDK would leave a 0 out).
    assert score["ToleratedFailurePercentage"] == batch.tolerated_failure_percentage
    (item,) = score["ItemProcessor"]["States"].values()
    assert item["Type"] == "Task" and item["OutputPath"] is None
    assert score["ResultPath"] is None


def test_plan_map_finalize_and_every_failure_notifies_then_fails(resources: Resources) -> None:
    definition = _definition(resources)
    states = definition["States"]

    assert states[definition["StartAt"]]["Next"] == "Plan"
    assert states["Plan"]["Next"] == "Score" and states["Score"]["Next"] == "Finalize"
    # A failed map still gets a manifest, which says so.
    assert states["Score"]["Catch"][0]["Next"] == "Finalize"
    for name in ("Plan", "Finalize"):
        assert states[name]["Catch"][0]["Next"] == "Error from a function?"
        assert any("StorageError" in r["ErrorEquals"] for r in states[name]["Retry"])
    choice = states["Job failed?"]
    # A failed map's error, or the reason Finalize judged the job failed, is what Notify sends.
    function_error = "Error from a function?"
    assert [c["Next"] for c in choice["Choices"]] == [function_error, "Job judged failed"]
    judged = states["Job judged failed"]
    assert judged["Parameters"]["Cause.$"] == "$.manifest.status_reason"
    assert judged["ResultPath"] == "$.error" and judged["Next"] == function_error
    assert states[function_error]["Default"] == "Notify"
    assert states["Notify"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"


def test_a_start_marker_under_batch_in_starts_the_job(resources: Resources) -> None:
    (rule,) = [r for k, r in resources("AWS::Events::Rule").items() if k.startswith("Batch")]
    pattern = rule["Properties"]["EventPattern"]

    # batch/in/<model>/<job>/_START: a marker of the layout before model folders starts nothing.
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "batch/in/*/*/_START"}]
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"]["Ref"].startswith("BatchStateMachine")
    assert "DeadLetterConfig" in target


def _statements(resources: Resources, role_prefix: str) -> Iterator[dict[str, Any]]:
    for policy in resources("AWS::IAM::Policy").values():
        roles = [r["Ref"] for r in policy["Properties"]["Roles"]]
        if any(r.startswith(role_prefix) for r in roles):
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def _prefixes(resources: Resources, role_prefix: str, action: str) -> set[str]:
    found = set()
    for statement in _statements(resources, role_prefix):
        actions = statement["Action"]
        if action not in (actions if isinstance(actions, list) else [actions]):
            continue
        targets = statement["Resource"]
        for resource in targets if isinstance(targets, list) else [targets]:
            found.add(resource["Fn::Join"][1][-1].lstrip("/"))
    return found


def test_batch_functions_read_inputs_and_models_and_write_only_outputs(
    resources: Resources,
) -> None:
    # Exactly the configured model's folders (the repo's config: one model, churn).
    assert _prefixes(resources, "BatchScoreFunctionRole", "s3:GetObject") == {
        "batch/in/churn/*",
        "models/churn/*",
    }
    assert _prefixes(resources, "BatchPlanFunctionRole", "s3:GetObject") == {"batch/in/churn/*"}
    assert _prefixes(resources, "BatchFinalizeFunctionRole", "s3:GetObject") == {
        "batch/out/churn/*"
    }
    # The plan and finalize steps emit the job's lineage run events; the scorers do not.
    for role, lineage in (("Plan", {"lineage/*"}), ("Score", set()), ("Finalize", {"lineage/*"})):
        assert _prefixes(resources, f"Batch{role}FunctionRole", "s3:PutObject") == {
            "batch/out/churn/*",
            *lineage,
        }
        for statement in _statements(resources, f"Batch{role}FunctionRole"):
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            assert not any(a.startswith("s3:Delete") for a in actions)
    # The map's item reader: the items file only, under the models' batch/out/ folders.
    assert _prefixes(resources, "BatchStateMachineRole", "s3:GetObject") == {"batch/out/churn/*"}
    # The pinned version: the model's own registry partition, nothing else of the table.
    for role in ("Plan", "Score"):
        partitions = [
            statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
            for statement in _statements(resources, f"Batch{role}FunctionRole")
            if "dynamodb:GetItem" in statement["Action"]
        ]
        assert partitions == [["MODEL#churn"]], role


def test_batch_functions_run_from_the_training_image(resources: Resources) -> None:
    functions = [f for k, f in resources("AWS::Lambda::Function").items() if k.startswith("Batch")]
    commands = {f["Properties"]["ImageConfig"]["Command"][0] for f in functions}

    assert commands == {
        "functions.batch.handler.plan_handler",
        "functions.batch.handler.score_handler",
        "functions.batch.handler.finalize_handler",
    }
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions)
