"""Monitoring and the closed loop: the scheduled drift check (`functions/monitor`), the rule that
turns its `DriftDetected` event into a retraining, an optional fixed retraining cadence, the
alarms that notify the alerts topic, and one CloudWatch dashboard for the whole lifecycle."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE
from functions.common.layout import (
    CAPTURE_PREFIX,
    FEEDBACK_PREFIX,
    MODELS_PREFIX,
    REPORTS_PREFIX,
    feedback_drops_prefix,
    model_key,
    monitor_key,
)
from infra.cdk.constructs.alerts import (
    alarm,
    undelivered_alarm,
    undelivered_queue,
    waiting_messages,
)
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.serving_api import ServingApi
from infra.cdk.constructs.stage_function import FunctionSpec, StageFunction

MONITOR_SERVICE = "monitor"
PREDICT_SERVICE = "predict"


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        state_machine: sfn.IStateMachine,
        serving: ServingApi,
    ) -> None:
        super().__init__(scope, construct_id)
        deploy, data_lake, registry, _ = platform
        self._deploy = deploy
        drift = deploy.config.drift
        self.check = StageFunction(
            self,
            "DriftFunction",
            platform=platform,
            spec=FunctionSpec(
                name=MONITOR_SERVICE,
                handler="functions.monitor.handler.lambda_handler",
                memory_mb=drift.memory_mb,
                timeout_seconds=drift.timeout_seconds,
            ),
        )
        role = self.check.role
        for prefix in (CAPTURE_PREFIX, FEEDBACK_PREFIX, MODELS_PREFIX):
            data_lake.grant_read_objects(role, prefix)
        data_lake.grant_write_objects(role, REPORTS_PREFIX)
        # Labelled feedback becomes a drop of training rows (ingested like any drop).
        data_lake.grant_write_objects(role, feedback_drops_prefix(deploy.config.dataset.name))
        data_lake.grant_list(role, [CAPTURE_PREFIX, FEEDBACK_PREFIX])
        # Read the model's versions and aliases; write only the monitor's own state.
        model = deploy.config.model_name
        registry.grant_partitions(role, read=[model_key(model)], write=[monitor_key(model)])
        events.EventBus.from_event_bus_name(self, "DefaultBus", "default").grant_put_events_to(role)

        # The schedule invokes the check asynchronously: Lambda retries a failed run twice,
        # then sends its on-failure record (the event and the error) here.
        self.failed_checks = undelivered_queue(
            self, "FailedDriftChecks", "the drift function's asynchronous invocations"
        )
        self.check.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_checks), retry_attempts=2
        )
        self.undelivered = undelivered = undelivered_queue(
            self, "UndeliveredEvents", "the monitoring rules"
        )
        self.schedule_rule = events.Rule(
            self,
            "DriftSchedule",
            description="Runs the drift check",
            schedule=events.Schedule.expression(drift.schedule),
            targets=[
                targets.LambdaFunction(
                    self.check.function, dead_letter_queue=undelivered, retry_attempts=2
                )
            ],
        )
        self.retrain_rule = events.Rule(
            self,
            "DriftRetrainRule",
            description="DriftDetected with a retrain request starts the pipeline",
            event_pattern=events.EventPattern(
                source=[MONITOR_SOURCE],
                detail_type=[DRIFT_DETECTED],
                detail={"retrain": {"via": ["pipeline"]}},
            ),
            targets=[
                targets.SfnStateMachine(
                    state_machine,
                    input=events.RuleTargetInput.from_event_path("$.detail.pipeline_input"),
                    dead_letter_queue=undelivered,
                    retry_attempts=8,
                )
            ],
        )
        self.retrain_schedule_rule: events.Rule | None = None
        if drift.retrain_schedule:
            self.retrain_schedule_rule = events.Rule(
                self,
                "RetrainSchedule",
                description="Retrains on a fixed cadence, drift or not",
                schedule=events.Schedule.expression(drift.retrain_schedule),
                targets=[
                    targets.SfnStateMachine(
                        state_machine,
                        input=events.RuleTargetInput.from_object(
                            {"retrain": {"reason": f"scheduled retrain ({drift.retrain_schedule})"}}
                        ),
                        dead_letter_queue=undelivered,
                        retry_attempts=8,
                    )
                ],
            )
        self.alarms = self._alarms(platform, state_machine, serving)
        self.dashboard = self._dashboard(state_machine, serving)

    def _metric(
        self,
        name: str,
        service: str,
        statistic: str,
        period: Duration | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        # Powertools Metrics adds the `service` dimension to every metric it publishes.
        return cloudwatch.Metric(
            namespace=self._deploy.config.project.name,
            metric_name=name,
            dimensions_map={"service": service},
            statistic=statistic,
            period=period or Duration.minutes(5),
            label=label,
        )

    def _per_model(self, name: str, statistic: str) -> cloudwatch.MathExpression:
        """Predict's metric `name`, one line per model (the function publishes it with the
        `model` dimension), labelled `<model> <statistic>`."""
        namespace = self._deploy.config.project.name
        return cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{{namespace},model,service}} MetricName="{name}" '
            f"service=\"{PREDICT_SERVICE}\"', '{statistic}', 300)",
            label=f"${{PROP('Dim.model')}} {statistic}",
            period=Duration.minutes(5),
        )

    def _alarms(
        self, platform: Platform, state_machine: sfn.IStateMachine, serving: ServingApi
    ) -> dict[str, cloudwatch.Alarm]:
        check_period = Duration.days(1)
        specs: dict[str, tuple[cloudwatch.IMetric, str]] = {
            "DataDriftAlarm": (
                self._metric("DatasetDrift", MONITOR_SERVICE, "Maximum", check_period),
                "The drift check found dataset drift in the captured traffic "
                "(see reports/drift/ and `mlops drift show`).",
            ),
            "PerformanceDropAlarm": (
                self._metric("PerformanceDrop", MONITOR_SERVICE, "Maximum", check_period),
                "Live performance from feedback labels fell below the serving model's "
                "evaluation metrics by more than drift.performance_tolerance.",
            ),
            "DriftCheckFailedAlarm": (
                self.check.function.metric_errors(
                    period=Duration.hours(1), statistic=cloudwatch.Stats.SUM
                ),
                "The drift check function failed (its window rolls into the next check; see "
                "its log group for the error).",
            ),
            "DriftCheckRetriesExhaustedAlarm": (
                waiting_messages(self.failed_checks),
                "A drift check run failed on every attempt (the first and both retries): its "
                "on-failure record (scheduled event, error type and message) is in the "
                "FailedDriftChecks queue.",
            ),
            "PipelineFailedAlarm": (
                state_machine.metric_failed(period=Duration.minutes(5)),
                "A pipeline execution failed (the execution's SNS alert has the cause).",
            ),
            "ApiServerErrorAlarm": (
                serving.api.metric_server_error(
                    period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM
                ),
                "The prediction API answered with a 5xx.",
            ),
        }
        alarms = {
            name: alarm(self, name, metric, platform=platform, means=means)
            for name, (metric, means) in specs.items()
        }
        latency_ms = self._deploy.config.serving.latency_alarm_ms
        alarms["ApiLatencyAlarm"] = alarm(
            self,
            "ApiLatencyAlarm",
            serving.api.metric_latency(
                period=Duration.minutes(5), statistic=cloudwatch.Stats.percentile(99)
            ),
            platform=platform,
            means="The prediction API's p99 latency stayed above "
            f"serving.latency_alarm_ms ({latency_ms} ms).",
            threshold=latency_ms,
            evaluation_periods=3,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        alarms["UndeliveredEventsAlarm"] = undelivered_alarm(
            self,
            "UndeliveredEvents",
            self.undelivered,
            platform=platform,
            means="EventBridge could not deliver a monitoring event (the drift schedule's, a "
            "DriftDetected retraining request, the retraining schedule's) to its target after "
            "its retries: the event waits in the UndeliveredEvents queue.",
        )
        return alarms

    def _dashboard(
        self, state_machine: sfn.IStateMachine, serving: ServingApi
    ) -> cloudwatch.Dashboard:
        namespace = self._deploy.config.project.name
        latency = self._per_model("PredictLatency", "p50")
        p99 = self._per_model("PredictLatency", "p99")
        drift_scores = cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{{namespace},feature,service}} MetricName="FeatureDriftScore"'
            f" service=\"{MONITOR_SERVICE}\"', 'Maximum', 86400)",
            label="",
            period=Duration.days(1),
        )
        live = cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{{namespace},service}} MetricName="LiveAccuracy" OR '
            f'MetricName="LiveF1Macro" OR MetricName="LiveRmse" OR MetricName="LiveMae"\', '
            "'Average', 86400)",
            label="",
            period=Duration.days(1),
        )
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{self._deploy.stack_name}-lifecycle",
            default_interval=Duration.days(7),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Predict latency (ms, handler)", left=[latency, p99], width=8
            ),
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    serving.api.metric_count(period=Duration.minutes(5)),
                    serving.api.metric_client_error(period=Duration.minutes(5)),
                    serving.api.metric_server_error(period=Duration.minutes(5)),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Predict function",
                left=[
                    serving.predict.function.metric_invocations(period=Duration.minutes(5)),
                    serving.predict.function.metric_errors(period=Duration.minutes(5)),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Capture volume (rows)",
                left=[
                    self._per_model("CapturedRows", "Sum"),
                    self._per_model("CaptureFailures", "Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Drift score per feature", left=[drift_scores], width=8),
            cloudwatch.GraphWidget(title="Live performance (feedback)", left=[live], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Pipeline executions",
                left=[
                    state_machine.metric_started(period=Duration.hours(1)),
                    state_machine.metric_succeeded(period=Duration.hours(1)),
                    state_machine.metric_failed(period=Duration.hours(1)),
                ],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=12
            ),
        )
        return dashboard
