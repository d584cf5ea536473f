"""The pipeline: a raw drop (EventBridge, S3 Object Created under raw/) starts a Step Functions
state machine: Ingest -> ... ; any failure -> Notify (SNS) -> Fail. Later issues add the
train, evaluate, gate and register steps between Ingest and Done."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.data_lake import CURATED_PREFIX, QUARANTINE_PREFIX, RAW_PREFIX, DataLake
from infra.constructs.registry import Registry
from infra.constructs.stage_function import FunctionSpec, StageFunction, retention
from infra.nag import acknowledge

# Raised by the ingest function while another delivery of the same object version is being
# ingested (Powertools idempotency): waiting and retrying returns the first one's result.
IDEMPOTENCY_IN_PROGRESS = "IdempotencyAlreadyInProgressError"
TRANSIENT_ERRORS = ["StorageError", "RegistryError"]


class Pipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deploy: DeployConfig,
        data_lake: DataLake,
        registry: Registry,
        alerts: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        bucket = data_lake.bucket
        base_environment = {
            "DATA_BUCKET": bucket.bucket_name,
            "REGISTRY_TABLE": registry.table.table_name,
            "STAGE": deploy.stage,
            "CODE_VERSION": deploy.commit,
        }
        ingest_config = deploy.config.ingest
        self.ingest = StageFunction(
            self,
            "IngestFunction",
            deploy=deploy,
            base_environment=base_environment,
            spec=FunctionSpec(
                name="ingest",
                handler="functions.ingest.handler.lambda_handler",
                memory_mb=ingest_config.memory_mb,
                timeout_seconds=ingest_config.timeout_seconds,
                ephemeral_storage_mb=ingest_config.ephemeral_storage_mb,
            ),
        )
        role = self.ingest.role
        data_lake.grant_read_objects(role, RAW_PREFIX)
        data_lake.grant_write_objects(role, CURATED_PREFIX)
        data_lake.grant_write_objects(role, QUARANTINE_PREFIX)
        registry.table.grant_read_write_data(role)

        self.state_machine = self._state_machine(deploy, alerts)
        self.rule = self._trigger(data_lake)

    def _state_machine(self, deploy: DeployConfig, alerts: sns.ITopic) -> sfn.StateMachine:
        notify = tasks.SnsPublish(
            self,
            "Notify",
            topic=alerts,
            subject=f"{deploy.stack_name}: pipeline failed",
            message=sfn.TaskInput.from_object(
                {
                    "pipeline": deploy.stack_name,
                    "execution": sfn.JsonPath.execution_id,
                    "error": sfn.JsonPath.string_at("$.error.Error"),
                    "cause": sfn.JsonPath.string_at("$.error.Cause"),
                    "source": sfn.JsonPath.object_at("$.detail"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        # A notification is safe to repeat, so any task failure of the publish is retried.
        notify.add_retry(
            errors=[sfn.Errors.TASKS_FAILED], interval=Duration.seconds(2), max_attempts=3
        )
        failed = sfn.Fail(self, "Failed", error_path="$.error.Error", cause_path="$.error.Cause")
        on_failure = notify.next(failed)

        ingest = tasks.LambdaInvoke(
            self,
            "Ingest",
            lambda_function=self.ingest.function,
            payload_response_only=True,
            retry_on_service_exceptions=True,
            result_path="$.dataset",
            comment="Validate, clean and version the dropped file (bad files: quarantine)",
        )
        ingest.add_retry(
            errors=[IDEMPOTENCY_IN_PROGRESS],
            interval=Duration.seconds(5),
            backoff_rate=2,
            max_attempts=6,
        )
        # Raised by the adapters when an AWS call failed after boto3's own retries: nothing
        # was committed (the manifest and registry item are written last), so a rerun is safe.
        ingest.add_retry(
            errors=TRANSIENT_ERRORS,
            interval=Duration.seconds(10),
            backoff_rate=2,
            max_attempts=3,
        )
        ingest.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")

        # A folder marker (key ending in "/") is an event with nothing to ingest.
        anything_ingested = (
            sfn.Choice(self, "Anything ingested?")
            .when(
                sfn.Condition.boolean_equals("$.dataset.ingested", False),
                sfn.Succeed(self, "Nothing to ingest"),
            )
            .otherwise(sfn.Succeed(self, "Done"))
        )
        definition = ingest.next(anything_ingested)
        log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            retention=retention(deploy.stage_config.log_retention_days),
            removal_policy=deploy.removal_policy,
        )
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(2),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment=f"{deploy.stack_name} lifecycle pipeline",
        )
        acknowledge(
            state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing (xray:PutTraceSegments and friends) and CloudWatch Logs delivery "
            "(logs:CreateLogDelivery and friends) support no resource-level permissions.",
        )
        ingest_id = Stack.of(self).resolve(
            Stack.of(self).get_logical_id(self.ingest.function.node.default_child)  # type: ignore[arg-type]
        )
        acknowledge(
            state_machine.role,
            f"AwsSolutions-IAM5[Resource::<{ingest_id}.Arn>:*]",
            "Invoke is granted on the ingest function and its versions/aliases only (the "
            "':*' suffix is the version qualifier CDK adds for LambdaInvoke).",
        )
        return state_machine

    def _trigger(self, data_lake: DataLake) -> events.Rule:
        # Deliveries EventBridge cannot make (throttling, a deleted target) land here rather
        # than being dropped.
        undelivered = sqs.Queue(
            self,
            "UndeliveredDrops",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            undelivered,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the pipeline trigger.",
        )
        return events.Rule(
            self,
            "RawDropRule",
            description="A new object under raw/ starts the pipeline",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [data_lake.bucket.bucket_name]},
                    "object": {"key": [{"prefix": RAW_PREFIX}]},
                },
            ),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    dead_letter_queue=undelivered,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                )
            ],
        )
