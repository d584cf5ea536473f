"""What every state machine here is built from: a stage function's invocation with its
retries, an alert that never changes how an execution ends, a caught error cut to its type
and message, the execution's logged and traced state machine, its role's acknowledged
wildcards and the S3 event rule that starts it (the pipeline's and the batch jobs')."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.cdk.config import DeployConfig
from infra.cdk.constructs.alerts import undelivered_alarm
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.stage_function import StageFunction, retention
from infra.cdk.nag import acknowledge

# Raised by the adapters when an AWS call failed after boto3's own retries: nothing was
# committed (manifests, registry items and aliases are written last), so a rerun is safe.
TRANSIENT_ERRORS = ["StorageError", "RegistryError"]
# Lambda refusing an invocation for want of concurrency (a burst of drops): as safe to retry as
# the service exceptions `retry_on_service_exceptions` covers, and not among them.
LAMBDA_THROTTLED = "Lambda.TooManyRequestsException"


def stage_task(
    scope: Construct,
    state: str,
    stage: StageFunction,
    comment: str,
    *,
    transient_interval: Duration | None = None,
    **kwargs: Any,
) -> tasks.LambdaInvoke:
    """A stage function invocation as every state machine here makes it: Lambda service errors
    and throttles retried, the adapters' transient errors retried (first after
    `transient_interval`, default 10 s), bounded by the function's own timeout plus a margin.
    `kwargs` go to `LambdaInvoke` (result_path, output_path, ...)."""
    timeout = stage.function.timeout
    seconds = (timeout.to_seconds() if timeout else 900) + 60
    task = tasks.LambdaInvoke(
        scope,
        state,
        lambda_function=stage.function,
        payload_response_only=True,
        retry_on_service_exceptions=True,
        task_timeout=sfn.Timeout.duration(Duration.seconds(seconds)),
        comment=comment,
        **kwargs,
    )
    task.add_retry(
        errors=[LAMBDA_THROTTLED], interval=Duration.seconds(2), backoff_rate=2, max_attempts=6
    )
    task.add_retry(
        errors=TRANSIENT_ERRORS,
        interval=transient_interval or Duration.seconds(10),
        backoff_rate=2,
        max_attempts=3,
    )
    return task


def alert_task(
    scope: Construct, state: str, topic: sns.ITopic, subject: str, message: dict[str, Any]
) -> tasks.SnsPublish:
    """An alert to the SNS topic naming the execution; a notification is safe to repeat, so any
    task failure of the publish is retried. The caller chains what follows with
    `then_even_if_unsent`, so an alert that cannot be sent never changes how the execution
    ends."""
    notify = tasks.SnsPublish(
        scope,
        state,
        topic=topic,
        subject=subject,
        message=sfn.TaskInput.from_object({**message, "execution": sfn.JsonPath.execution_id}),
        result_path=sfn.JsonPath.DISCARD,
    )
    notify.add_retry(errors=[sfn.Errors.TASKS_FAILED], interval=Duration.seconds(2), max_attempts=3)
    return notify


def then_even_if_unsent(notify: tasks.SnsPublish, then: sfn.IChainable) -> sfn.Chain:
    """`notify` followed by `then`, also when the publish fails for good (a refused key, a
    deleted topic): the failure is kept at `$.notification_error`, the execution's own
    (`$.error`) is untouched."""
    notify.add_catch(then, errors=[sfn.Errors.ALL], result_path="$.notification_error")
    return notify.next(then)


def concise_error(scope: Construct, then: sfn.IChainable, *, suffix: str = "") -> sfn.IChainable:
    """The caught error (`$.error`) cut to its type and message, then `then` (the alert and
    the Fail state): a Lambda function's cause is its error document, whose `stackTrace` names
    the function's files; `$.error.Cause` becomes that document's `errorMessage` (its
    `errorType` is already `$.error.Error`). A cause that is no such document (a `States.*`
    error's sentence) is kept as it is. `suffix` ends its states' names (state names are
    unique in a state machine: a Map's iterations have their own)."""
    document = "$.error_document"
    message = f"{document}.value.errorMessage"
    keep = sfn.Pass(
        scope,
        "Keep error type and message" + suffix,
        parameters={
            "Error": sfn.JsonPath.string_at("$.error.Error"),
            "Cause": sfn.JsonPath.string_at(message),
        },
        result_path="$.error",
    ).next(then)
    read = sfn.Pass(
        scope,
        "Read error document" + suffix,
        parameters={"value": sfn.JsonPath.string_to_json(sfn.JsonPath.string_at("$.error.Cause"))},
        result_path=document,
    )
    return (
        sfn.Choice(scope, "Error from a function?" + suffix)
        .when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.error.Cause"),
                sfn.Condition.is_string("$.error.Cause"),
                sfn.Condition.string_matches("$.error.Cause", "{*"),
            ),
            read.next(
                sfn.Choice(scope, "Error message found?" + suffix)
                .when(sfn.Condition.is_string(message), keep)
                .otherwise(then)
            ),
        )
        .otherwise(then)
    )


def record_execution(scope: Construct) -> sfn.Pass:
    """The first state: the execution's id at `$.execution.id`, so every stage sees which
    execution it runs in (run records, alias history, batch jobs)."""
    return sfn.Pass(
        scope,
        "Record execution",
        parameters={"id": sfn.JsonPath.execution_id},
        result_path="$.execution",
    )


def logged_state_machine(
    scope: Construct,
    deploy: DeployConfig,
    definition: sfn.IChainable,
    *,
    timeout: Duration,
    include_execution_data: bool,
    comment: str,
) -> sfn.StateMachine:
    """A standard, traced state machine logging every event to its own log group
    (`ExecutionLogs`, kept for the stage's log retention), with or without the state data."""
    log_group = logs.LogGroup(
        scope,
        "ExecutionLogs",
        retention=retention(deploy.stage_config.log_retention_days),
        removal_policy=deploy.removal_policy,
    )
    return sfn.StateMachine(
        scope,
        "StateMachine",
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        state_machine_type=sfn.StateMachineType.STANDARD,
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group,
            level=sfn.LogLevel.ALL,
            include_execution_data=include_execution_data,
        ),
        comment=comment,
    )


def acknowledge_invokes(
    scope: Construct, role: iam.IRole, stages: Iterable[StageFunction], what: str
) -> None:
    """The state machine role's wildcards cdk-nag flags: X-Ray and log delivery (no
    resource-level permissions), and invoke on each of `stages` with its version qualifier."""
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing (xray:PutTraceSegments and friends) and CloudWatch Logs delivery "
        "(logs:CreateLogDelivery and friends) support no resource-level permissions.",
    )
    stack = Stack.of(scope)
    for stage in stages:
        function_id = stack.resolve(
            stack.get_logical_id(stage.function.node.default_child)  # type: ignore[arg-type]
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            f"Invoke is granted on this {what} and its versions/aliases only (the "
            "':*' suffix is the version qualifier CDK adds for LambdaInvoke).",
        )


def start_rule(
    scope: Construct,
    construct_id: str,
    *,
    undelivered: sqs.IQueue,
    undelivered_means: str,
    description: str,
    event_pattern: events.EventPattern,
    state_machine: sfn.IStateMachine,
    platform: Platform,
) -> events.Rule:
    """An EventBridge rule starting `state_machine`, retried for a day; events it cannot
    deliver go to their own queue, `undelivered` (an `alerts.undelivered_queue`), whose alarm
    says what a waiting message `means`."""
    undelivered_alarm(
        scope, undelivered.node.id, undelivered, platform=platform, means=undelivered_means
    )
    return events.Rule(
        scope,
        construct_id,
        description=description,
        event_pattern=event_pattern,
        targets=[
            targets.SfnStateMachine(
                state_machine,
                dead_letter_queue=undelivered,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
            )
        ],
    )
