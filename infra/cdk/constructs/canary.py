"""The canary function (`functions/canary`): every object Firehose writes under `capture/` (S3
Object Created, through EventBridge) is counted into the rollouts' counters and the running
rollouts are judged by the sequential test, off the request path. When a model tests accuracy
(`[serving] canary_accuracy`), every feedback record the API stores
(`feedback/dt=<day>/<request>-<row>.json`) is counted too, and the role may read them.

It is a zip function on the serving layer (numpy, pydantic, powertools, boto3: all it
imports). Its role: read `capture/` objects; read and write the configured models' own
registry items (counters, counted-object markers, the rollout decision and the alias moves of
`conclude_rollout`, all conditional); put `ModelPromoted` on the default bus. An event
EventBridge cannot deliver lands in `UndeliveredCaptureEvents`; an invocation that fails its
attempt and both retries lands in `FailedCanaryCounts` (its event and error), each with an
alarm. Either way redriving is safe: an object is counted once."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from functions.common.layout import CAPTURE_PREFIX, DAY_PARTITION, FEEDBACK_PREFIX, model_key
from infra.cdk.constructs.alerts import undelivered_alarm, undelivered_queue
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.serving_api import ServingApi
from infra.cdk.constructs.stage_function import FunctionSpec, ZipStageFunction

CANARY_SERVICE = "canary"
CANARY_HANDLER = "functions.canary.handler.lambda_handler"


class CanaryConsumer(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, serving: ServingApi
    ) -> None:
        super().__init__(scope, construct_id)
        deploy, data_lake, registry, _ = platform
        self.consumer = ZipStageFunction(
            self,
            "CanaryFunction",
            platform=platform,
            spec=FunctionSpec(
                name=CANARY_SERVICE, handler=CANARY_HANDLER, memory_mb=512, timeout_seconds=120
            ),
            layers=[serving.layer],
        )
        function = self.consumer.function
        role = self.consumer.role
        data_lake.grant_read_objects(role, CAPTURE_PREFIX)
        keys: list[Any] = [{"prefix": CAPTURE_PREFIX}]
        if any(
            deploy.config.for_model(m).serving.canary_accuracy for m in deploy.config.model_names
        ):
            data_lake.grant_read_objects(role, FEEDBACK_PREFIX)
            keys.append({"wildcard": f"{FEEDBACK_PREFIX}{DAY_PARTITION}*/*.json"})
        # The configured models' own items: their counters, markers and rollout decisions,
        # and the alias moves a decision makes (conditional transactions).
        registry.grant_partitions(role, write=[model_key(m) for m in deploy.config.model_names])
        events.EventBus.from_event_bus_name(self, "DefaultBus", "default").grant_put_events_to(role)

        self.failed = undelivered_queue(
            self, "FailedCanaryCounts", "the canary function's asynchronous invocations"
        )
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed), retry_attempts=2
        )
        self.undelivered = undelivered_queue(self, "UndeliveredCaptureEvents", "the canary rule")
        self.rule = events.Rule(
            self,
            "CaptureObjectRule",
            description="A new capture object (or feedback record) is counted into the "
            "rollouts and judged"
            if len(keys) > 1
            else "A new capture object is counted into the rollouts and judged",
            event_pattern=data_lake.object_created(keys),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=self.undelivered,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                )
            ],
        )
        undelivered_alarm(
            self,
            "UndeliveredCaptureEvents",
            self.undelivered,
            platform=platform,
            means="EventBridge could not invoke the canary function for a capture object "
            "(after its retries): the object is not counted into the rollout until its event, "
            "waiting in the UndeliveredCaptureEvents queue, is redriven.",
        )
        undelivered_alarm(
            self,
            "FailedCanaryCounts",
            self.failed,
            platform=platform,
            means="The canary function failed on a capture object at every attempt: its "
            "on-failure record (event, error) is in the FailedCanaryCounts queue; the object "
            "is not counted until it is redriven (counting is once per object).",
        )
