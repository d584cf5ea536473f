"""Shadow scoring (`functions/shadow`): a capture object created under `capture/` (the data
bucket's EventBridge notifications) invokes the shadow function asynchronously; it scores the
object's records of each model with `[serving] shadow = true` with that model's alias
`shadow` and writes its records under `shadow/<model>/`.

Only built when a model has `[serving] shadow = true`: without one there is no function, no
rule and no grant. The function runs on the serving layer (onnxruntime, numpy, powertools,
pydantic, boto3), as predict does. Its role reads `capture/`, the shadowed models' files and
registry partitions, and writes their `shadow/<model>/` folders; nothing else.

Failures: an event EventBridge cannot deliver (after 8 retries over up to a day) goes to the
`UndeliveredShadowEvents` queue; an invocation that fails (a model file that does not match
its checksum, an AWS error) is retried twice by Lambda, then its on-failure record lands in the
`FailedShadowScoring` queue. Each queue and the function's errors have an alarm.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from functions.common.layout import CAPTURE_PREFIX, model_key, model_prefix, shadow_prefix
from infra.cdk.constructs.alerts import alarm, undelivered_alarm, undelivered_queue
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.stage_function import FunctionSpec, ZipStageFunction

SHADOW_HANDLER = "functions.shadow.handler.lambda_handler"
SHADOW_MEMORY_MB = 1024
SHADOW_TIMEOUT_SECONDS = 300


def shadowed_models(platform: Platform) -> list[str]:
    """The configured models with `[serving] shadow = true`."""
    config = platform.deploy.config
    return [model for model in config.model_names if config.for_model(model).serving.shadow]


class ShadowScoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        layer: lambda_.ILayerVersion,
        models: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        data_lake, registry = platform.data_lake, platform.registry
        self.scorer = ZipStageFunction(
            self,
            "ShadowFunction",
            platform=platform,
            spec=FunctionSpec(
                name="shadow",
                handler=SHADOW_HANDLER,
                memory_mb=SHADOW_MEMORY_MB,
                timeout_seconds=SHADOW_TIMEOUT_SECONDS,
            ),
            layers=[layer],
        )
        role = self.scorer.role
        data_lake.grant_read_objects(role, CAPTURE_PREFIX)
        for model in models:
            data_lake.grant_read_objects(role, model_prefix(model))
            data_lake.grant_write_objects(role, shadow_prefix(model))
        registry.grant_partitions(role, read=[model_key(model) for model in models])

        self.failed = undelivered_queue(
            self, "FailedShadowScoring", "the shadow function's asynchronous invocations"
        )
        self.scorer.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed), retry_attempts=2
        )
        self.undelivered = undelivered_queue(
            self, "UndeliveredShadowEvents", "the shadow scoring rule"
        )
        undelivered_alarm(
            self,
            "UndeliveredShadowEvents",
            self.undelivered,
            platform=platform,
            means="EventBridge could not invoke the shadow function for a capture object "
            "(after its retries): that object's requests have no shadow records; the event "
            "waits in the UndeliveredShadowEvents queue.",
        )
        undelivered_alarm(
            self,
            "FailedShadowScoring",
            self.failed,
            platform=platform,
            means="Shadow scoring of a capture object failed on every attempt (the first "
            "and both retries): its on-failure record (event, error) is in the "
            "FailedShadowScoring queue.",
        )
        alarm(
            self,
            "ShadowScoringErrorsAlarm",
            self.scorer.function.metric_errors(
                period=Duration.hours(1), statistic=cloudwatch.Stats.SUM
            ),
            platform=platform,
            means="The shadow function failed on a capture object (it is retried; see its "
            "log group for the error).",
        )
        self.rule = events.Rule(
            self,
            "CaptureObjectRule",
            description="A new capture object is scored by the models' shadow versions",
            event_pattern=data_lake.object_created([{"prefix": CAPTURE_PREFIX}]),
            targets=[
                targets.LambdaFunction(
                    self.scorer.function,
                    dead_letter_queue=self.undelivered,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                )
            ],
        )
