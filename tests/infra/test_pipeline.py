"""The trigger, the state machine and the ingest function, as CloudFormation will create them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Template

from functions.common.config.loading import CONFIG_JSON_ENV, MlopsConfig, load_config

Resources = Callable[[str], dict[str, dict[str, Any]]]


def _definition(resources: Resources, refs: bool = False) -> dict[str, Any]:
    """The pipeline's definition; references to other resources read "ARN" (`refs`: the
    referenced logical id)."""
    (machine,) = [
        m
        for k, m in resources("AWS::StepFunctions::StateMachine").items()
        if k.startswith("Pipeline")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(
        part if isinstance(part, str) else (str(next(iter(part.values()))[0]) if refs else "ARN")
        for part in parts
    )
    return json.loads(text)


def _iteration(definition: dict[str, Any]) -> dict[str, Any]:
    """The states of one model's iteration (the Map's item processor)."""
    processor = definition["States"]["Train each model"]["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "INLINE"}
    assert processor["StartAt"] == "Train"
    states: dict[str, Any] = processor["States"]
    return states


def _every_state(definition: dict[str, Any]) -> dict[str, Any]:
    """The top-level states and an iteration's (state names are unique across both)."""
    top, inner = definition["States"], _iteration(definition)
    assert not set(top) & set(inner)
    return {**top, **inner}


def test_rule_starts_the_pipeline_for_objects_created_under_raw(
    template: Template, resources: Resources
) -> None:
    (rule,) = [
        r for k, r in resources("AWS::Events::Rule").items() if k.startswith("PipelineRawDropRule")
    ]
    props = rule["Properties"]
    pattern = props["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "raw/"}]
    (bucket_ref,) = pattern["detail"]["bucket"]["name"]
    assert bucket_ref["Ref"].startswith("DataLakeData")
    (target,) = props["Targets"]
    assert target["Arn"]["Ref"].startswith("PipelineStateMachine")
    assert "DeadLetterConfig" in target, "undeliverable drops must not be lost"


def test_ingest_retries_lambda_service_errors_and_failures_notify_then_fail(
    resources: Resources,
) -> None:
    states = _definition(resources)["States"]
    ingest = states["Ingest"]
    retried = {error for retry in ingest["Retry"] for error in retry["ErrorEquals"]}
    assert {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    } <= retried
    assert "IdempotencyAlreadyInProgressError" in retried
    assert {"StorageError", "RegistryError"} <= retried
    assert "DataValidationError" not in retried, "a bad file must not be retried"
    assert not retried & {"Runtime.OutOfMemory", "Sandbox.Timedout"}, "a crash would recur"
    crashed, catch = ingest["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    assert catch["Next"] == "Error from a function?"
    assert states["Notify"]["Resource"].endswith(":states:::sns:publish")
    assert states["Notify"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"
    assert states["Failed"]["ErrorPath"] == "$.error.Error"
    assert states["Failed"]["CausePath"] == "$.error.Cause"


def test_alerts_and_causes_carry_a_functions_error_type_and_message_only(
    resources: Resources,
) -> None:
    states = _definition(resources)["States"]
    function_error = states["Error from a function?"]
    assert function_error["Default"] == "Notify"
    [document] = function_error["Choices"]
    assert document["Next"] == "Read error document"
    read = states["Read error document"]
    assert read["Parameters"] == {"value.$": "States.StringToJson($.error.Cause)"}
    message = states[read["Next"]]
    assert message["Default"] == "Notify"
    keep = states[message["Choices"][0]["Next"]]
    assert keep["Parameters"] == {
        "Error.$": "$.error.Error",
        "Cause.$": "$.error_document.value.errorMessage",
    }
    assert keep["ResultPath"] == "$.error" and keep["Next"] == "Notify"


def test_a_drop_that_kills_ingest_is_quarantined_unread_then_fails_the_execution(
    resources: Resources,
) -> None:
    states = _definition(resources, refs=True)["States"]
    crashed = states["Ingest"]["Catch"][0]
    # Before States.ALL: Step Functions takes the first catcher that matches.
    assert crashed == {
        "ErrorEquals": ["Runtime.OutOfMemory", "Sandbox.Timedout"],
        "ResultPath": "$.error",
        "Next": "Quarantine crashed drop",
    }
    quarantine = states["Quarantine crashed drop"]
    assert quarantine["Resource"] == states["Ingest"]["Resource"]
    assert quarantine["Resource"].startswith("PipelineIngestFunction")
    assert quarantine["Parameters"] == {
        "crashed": {"event.$": "$", "error.$": "$.error.Error", "cause.$": "$.error.Cause"}
    }
    assert quarantine["ResultPath"] == "$.quarantine"
    assert quarantine["Next"] == "Error from a function?"
    (failed,) = quarantine["Catch"]
    assert failed["ErrorEquals"] == ["States.ALL"] and failed["Next"] == "Error from a function?"


def test_every_task_retries_and_is_caught(resources: Resources) -> None:
    states = _every_state(_definition(resources))
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state.get("Retry"), f"task {name} has no retry"
            # The alert publishes themselves have nowhere better to report to.
            if not state["Resource"].endswith(":states:::sns:publish"):
                assert state.get("Catch"), f"task {name} failures would skip the alert"
                # A burst of drops may find Lambda out of concurrency: retried, not failed.
                retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
                assert "Lambda.TooManyRequestsException" in retried, name


def test_state_machine_logs_everything_and_traces(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True},
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_every_stage_runs_from_the_training_image_on_arm64(resources: Resources) -> None:
    functions = {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: r["Properties"]
        for r in resources("AWS::Lambda::Function").values()
        if r["Properties"].get("PackageType") == "Image"
    }
    batch = {name for name in functions if name.startswith("batch-")}  # tests/infra/test_batch.py
    functions = {name: props for name, props in functions.items() if name not in batch}
    assert set(functions) == {"ingest", "train", "evaluate", "register", "monitor"}
    images = {props["Code"]["ImageUri"]["Fn::Sub"] for props in functions.values()}
    assert len(images) == 1, "one training image serves every stage"
    for stage, props in functions.items():
        assert props["Architectures"] == ["arm64"]
        assert props["ImageConfig"]["Command"] == [f"functions.{stage}.handler.lambda_handler"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["CODE_VERSION"] == "abc123def456"
        assert env["STAGE"] == "dev"
        deployed = MlopsConfig.model_validate_json(env[CONFIG_JSON_ENV])
        assert deployed == load_config("mlops.toml").for_stage("dev")
    assert functions["ingest"]["EphemeralStorage"]["Size"] >= 2048
    assert functions["train"]["Timeout"] == 900


def test_registry_table_has_keys_ttl_pitr_and_encryption(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )


def test_alerts_topic_is_encrypted_with_a_rotating_key_and_tls_only(
    template: Template, resources: Resources
) -> None:
    (topic,) = resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("AlertsKey")
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    (policy,) = resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_stack_outputs_are_the_documented_contract(template_json: dict[str, Any]) -> None:
    assert set(template_json["Outputs"]) == {
        "DataBucketName",
        "PipelineStateMachineArn",
        "RegistryTableName",
        "AlertsTopicArn",
        "ApiUrl",
        "DriftFunctionName",
        "DriftChecksStateMachineArn",
        "ErasureRoleArn",
        "BatchStateMachineArn",
        "DropsDeadLetterQueueUrl",
        "BatchStartsDeadLetterQueueUrl",
        "MonitoringEventsDeadLetterQueueUrl",
        "FailedDriftChecksQueueUrl",
    }


def test_an_event_with_nothing_to_ingest_ends_the_pipeline_quietly(resources: Resources) -> None:
    states = _definition(resources)["States"]
    assert states["Ingest"]["Next"] == "Anything ingested?"
    choice = states["Anything ingested?"]
    (skip,) = choice["Choices"]
    assert skip == {
        "Variable": "$.dataset.ingested",
        "BooleanEquals": False,
        "Next": "Nothing to ingest",
    }
    assert states["Nothing to ingest"]["Type"] == "Succeed"
    assert choice["Default"] == "Models of the dataset"


def test_a_drop_trains_every_model_of_its_dataset_and_a_retrain_its_model(
    resources: Resources,
) -> None:
    definition = _definition(resources)
    states = definition["States"]
    first = states[definition["StartAt"]]
    assert first["Parameters"] == {"id.$": "$$.Execution.Id"}
    assert first["ResultPath"] == "$.execution"
    start = states[first["Next"]]
    (retrain,) = start["Choices"]
    assert retrain == {"Variable": "$.retrain", "IsPresent": True, "Next": "Model named?"}
    assert start["Default"] == "Ingest"
    named = states["Model named?"]
    assert named["Choices"] == [
        {"Variable": "$.retrain.model", "IsPresent": True, "Next": "The requested model"}
    ]
    assert named["Default"] == "The default model"
    # What each iteration gets: the models to train and what started the execution.
    assert states["Models of the dataset"]["Parameters"] == {
        "models.$": "$.dataset.models",
        "trigger": {"dataset.$": "$.dataset"},
    }
    assert states["The requested model"]["Parameters"] == {
        "models.$": "States.Array($.retrain.model)",
        "trigger": {"retrain.$": "$.retrain"},
    }
    assert states["The default model"]["Parameters"] == {
        "models": ["churn"],
        "trigger": {"retrain.$": "$.retrain"},
    }
    for name in ("Models of the dataset", "The requested model", "The default model"):
        assert states[name]["ResultPath"] == "$.targets"
        assert states[name]["Next"] == "Train each model"
    models = states["Train each model"]
    assert models["ItemsPath"] == "$.targets.models"
    assert models["ItemSelector"] == {
        "model.$": "$$.Map.Item.Value",
        "execution.$": "$.execution",
        "trigger.$": "$.targets.trigger",
    }
    assert models["MaxConcurrency"] == 5  # [train] reserved_concurrency
    assert models["ResultSelector"] == {"outcomes.$": "$", "statuses.$": "$[*].status"}
    assert models["ResultPath"] == "$.models"
    assert "Catch" not in models, "an iteration catches its own failures"


def test_each_model_is_trained_evaluated_and_gated_in_its_own_iteration(
    resources: Resources,
) -> None:
    states = _iteration(_definition(resources))
    changed = states[states["Train"]["Next"]]
    (unchanged,) = changed["Choices"]
    assert unchanged == {"Variable": "$.training.skipped", "IsPresent": True, "Next": "Skipped"}
    assert changed["Default"] == "Evaluate"
    assert states["Evaluate"]["Next"] == "Gate passed?"
    gate = states["Gate passed?"]
    (passed,) = gate["Choices"]
    assert passed == {"Variable": "$.evaluation.passed", "BooleanEquals": True, "Next": "Register"}
    assert gate["Default"] == "Notify rejection"
    assert states["Register"]["Next"] == "Promoted"
    for name, path in [
        ("Train", "$.training"),
        ("Evaluate", "$.evaluation"),
        ("Register", "$.registered"),
    ]:
        assert states[name]["ResultPath"] == path
        assert states[name]["TimeoutSeconds"] > 0, f"{name} has no task timeout"
        (catch,) = states[name]["Catch"]
        assert catch == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "Error from a function? (model)",
        }
    # Every way out of an iteration records its status, and none is a Fail state.
    ends = {name: state for name, state in states.items() if state.get("End")}
    assert {name: (s["Result"], s["ResultPath"]) for name, s in ends.items()} == {
        "Promoted": ("promoted", "$.status"),
        "Rejected": ("rejected", "$.status"),
        "Skipped": ("skipped", "$.status"),
        "Model failed": ("failed", "$.status"),
    }
    assert not [name for name, state in states.items() if state["Type"] in ("Fail", "Succeed")]


def test_a_failed_model_is_notified_with_its_name_and_fails_the_execution_at_the_end(
    resources: Resources,
) -> None:
    definition = _definition(resources)
    inner = _iteration(definition)
    notify = inner["Notify model failure"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    message = notify["Parameters"]["Message"]
    assert message["model.$"] == "$.model"
    assert (message["error.$"], message["cause.$"]) == ("$.error.Error", "$.error.Cause")
    assert notify["Next"] == "Model failed"
    assert notify["Catch"][0]["Next"] == "Model failed", "an unsent alert ends it all the same"
    states = definition["States"]
    assert states["Train each model"]["Next"] == "Any model failed?"
    summary = states["Any model failed?"]
    assert summary["Parameters"]["failed.$"] == (
        "States.ArrayContains($.models.statuses, 'failed')"
    )
    assert "$.targets.models" in summary["Parameters"]["cause.$"]
    every = states[summary["Next"]]
    assert every["Choices"] == [
        {"Variable": "$.summary.failed", "BooleanEquals": True, "Next": "Several models?"}
    ]
    several = states["Several models?"]
    assert several["Choices"] == [
        {"Variable": "$.models.outcomes[1]", "IsPresent": True, "Next": "Models failed"}
    ]
    # One model trained: the execution fails with that model's own error.
    assert states[several["Default"]] == {
        "Type": "Fail",
        "ErrorPath": "$.models.outcomes[0].error.Error",
        "CausePath": "$.models.outcomes[0].error.Cause",
    }
    assert states["Models failed"] == {
        "Type": "Fail",
        "Error": "ModelsFailed",
        "CausePath": "$.summary.cause",
    }
    assert states[every["Default"]]["Type"] == "Succeed"


def test_a_rejected_candidate_ends_its_iteration_as_rejected_after_an_alert(
    resources: Resources,
) -> None:
    states = _iteration(_definition(resources))
    notify = states["Notify rejection"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    assert notify["Parameters"]["Message"]["failed_criteria.$"] == "$.evaluation.failed"
    assert notify["Parameters"]["Message"]["model.$"] == "$.training.model_name"
    assert notify["Next"] == "Rejected"
    assert states["Rejected"] == {
        "Type": "Pass",
        "Result": "rejected",
        "ResultPath": "$.status",
        "End": True,
    }
    assert states["Promoted"]["Result"] == "promoted"


def test_a_portfolio_pipeline_trains_as_many_rounds_as_its_largest_dataset_needs(
    portfolio_template: dict[str, Any],
) -> None:
    (machine,) = [
        r
        for k, r in portfolio_template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine" and k.startswith("Pipeline")
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    definition = json.loads("".join(p if isinstance(p, str) else "ARN" for p in parts))
    # churn has three models, at most five at once: one round of two hours.
    assert definition["TimeoutSeconds"] == 2 * 3600
    assert definition["States"]["The default model"]["Parameters"]["models"] == ["churn"]


def test_pipeline_functions_reserve_concurrency_from_the_config(resources: Resources) -> None:
    # A drop storm must not take the account's (default 1,000) concurrency from serving:
    # each pipeline function runs at most its reserve, the repo's mlops.toml keeps the defaults.
    reserved = {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: r["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for r in resources("AWS::Lambda::Function").values()
        if "Environment" in r["Properties"]
    }
    assert reserved["ingest"] == 10
    for stage in ("train", "evaluate", "register"):
        assert reserved[stage] == 5, stage
