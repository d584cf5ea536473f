"""Monitoring and the closed loop: the scheduled drift checks (`functions/monitor`), the rule that
turns a `DriftDetected` event into a retraining of its model, optional fixed retraining
cadences, the alarms that notify the alerts topic, and one CloudWatch dashboard for the whole
lifecycle.

The drift checks: a schedule starts the `DriftChecks` state machine with the models it checks
(`{"models": [...]}`); a Map invokes the drift function once per model (`{"model": name}`,
each invocation within the function's own timeout, at most `CHECKS_AT_ONCE` at a time).
`[drift] schedule` checks every model that keeps it; a model with its own
`[models.<name>.drift] schedule` gets its own rule starting the same state machine with just
it (so its failures are caught and notified the same way). A check that fails (after the
retries of its invocation) is caught inside its iteration: one alert naming the model and the
error goes to the alerts topic, the other models are still checked, and the execution ends
succeeded with each model's outcome (`checked` with its verdict, or `failed` with the error)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE, retrain_input
from functions.common.layout import (
    CAPTURE_PREFIX,
    FEEDBACK_PREFIX,
    LINEAGE_PREFIX,
    drift_reports_prefix,
    feedback_drops_prefix,
    model_key,
    model_prefix,
    monitor_key,
)
from infra.cdk.config import DeployConfig
from infra.cdk.constructs.alerts import (
    alarm,
    undelivered_alarm,
    undelivered_queue,
    waiting_messages,
)
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.serving_api import ServingApi
from infra.cdk.constructs.stage_function import FunctionSpec, StageFunction
from infra.cdk.constructs.state_machine import (
    acknowledge_invokes,
    alert_task,
    concise_error,
    logged_state_machine,
    stage_task,
    then_even_if_unsent,
)

MONITOR_SERVICE = "monitor"
PREDICT_SERVICE = "predict"
CHECKS_AT_ONCE = 4
"""Models checked at the same time by one execution (each check reads the whole capture
window, so a few at once bound the bucket reads and the function's concurrency)."""


def construct_name(model: str) -> str:
    """A model's name as a construct id (`churn-lgbm` -> `ChurnLgbm`)."""
    return "".join(part.capitalize() for part in model.split("-"))


def schedules(deploy: DeployConfig) -> dict[str, list[str]]:
    """{schedule expression: the models checked on it}: `[drift] schedule` first (every model
    that keeps it), then each model's own schedule."""
    config = deploy.config
    found: dict[str, list[str]] = {config.drift.schedule: []}
    for model in config.model_names:
        found.setdefault(config.for_model(model).drift.schedule, []).append(model)
    return {expression: models for expression, models in found.items() if models}


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
        config = deploy.config
        models = config.model_names
        for prefix in (CAPTURE_PREFIX, FEEDBACK_PREFIX):
            data_lake.grant_read_objects(role, prefix)
        # Exactly the configured models: their versions' reference profiles, their reports,
        # their datasets' feedback drops (labelled feedback becomes training rows, ingested
        # like any drop), their versions and aliases, and their own monitor state.
        for model in models:
            data_lake.grant_read_objects(role, model_prefix(model))
            data_lake.grant_write_objects(role, drift_reports_prefix(model))
        for dataset in sorted({config.models[model].dataset for model in models}):
            data_lake.grant_write_objects(role, feedback_drops_prefix(dataset))
        data_lake.grant_list(role, [CAPTURE_PREFIX, FEEDBACK_PREFIX])
        data_lake.grant_write_objects(role, LINEAGE_PREFIX)  # the check's OpenLineage events
        registry.grant_partitions(
            role,
            read=[model_key(model) for model in models],
            write=[monitor_key(model) for model in models],
        )
        events.EventBus.from_event_bus_name(self, "DefaultBus", "default").grant_put_events_to(role)

        # An asynchronous invocation (not the schedule's: it starts the state machine) is
        # retried twice by Lambda, then its on-failure record (the event and the error) lands here.
        self.failed_checks = undelivered_queue(
            self, "FailedDriftChecks", "the drift function's asynchronous invocations"
        )
        self.check.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_checks), retry_attempts=2
        )
        self.undelivered = undelivered = undelivered_queue(
            self, "UndeliveredEvents", "the monitoring rules"
        )
        self.checks = self._checks_state_machine(platform)
        self.schedule_rules: dict[str, events.Rule] = {}
        for expression, checked in schedules(deploy).items():
            own = expression != drift.schedule
            rule_id = f"DriftSchedule{construct_name(checked[0])}" if own else "DriftSchedule"
            self.schedule_rules[rule_id] = events.Rule(
                self,
                rule_id,
                description=f"Checks drift of {', '.join(checked)}"[:512],
                schedule=events.Schedule.expression(expression),
                targets=[
                    targets.SfnStateMachine(
                        self.checks,
                        input=events.RuleTargetInput.from_object({"models": checked}),
                        dead_letter_queue=undelivered,
                        retry_attempts=8,
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
        self.retrain_schedule_rules: dict[str, events.Rule] = {}
        for model in models:
            cadence = config.for_model(model).drift.retrain_schedule
            if not cadence:
                continue
            rule_id = f"RetrainSchedule{construct_name(model)}"
            self.retrain_schedule_rules[model] = events.Rule(
                self,
                rule_id,
                description=f"Retrains {model} on a fixed cadence, drift or not",
                schedule=events.Schedule.expression(cadence),
                targets=[
                    targets.SfnStateMachine(
                        state_machine,
                        input=events.RuleTargetInput.from_object(
                            retrain_input(model, f"scheduled retrain ({cadence})")
                        ),
                        dead_letter_queue=undelivered,
                        retry_attempts=8,
                    )
                ],
            )
        self.alarms = self._alarms(platform, state_machine, serving)
        self.dashboard = self._dashboard(state_machine, serving)

    def _checks_state_machine(self, platform: Platform) -> sfn.StateMachine:
        """Record nothing, check each model (a Map, failures caught per model), done."""
        scope = Construct(self, "DriftChecks")
        check = stage_task(
            scope,
            "Check drift",
            self.check,
            "One model's drift check",
            payload=sfn.TaskInput.from_object(
                {"source": "aws.states", "model": sfn.JsonPath.string_at("$.model")}
            ),
            result_selector={
                "model": sfn.JsonPath.string_at("$.model"),
                "status": "checked",
                "verdict": sfn.JsonPath.string_at("$.verdict"),
                "check_id": sfn.JsonPath.string_at("$.check_id"),
                "result_key": sfn.JsonPath.string_at("$.result_key"),
            },
        )
        failed = sfn.Pass(
            scope,
            "Check failed",
            parameters={
                "model": sfn.JsonPath.string_at("$.model"),
                "status": "failed",
                "error": sfn.JsonPath.object_at("$.error"),
            },
        )
        notify = alert_task(
            scope,
            "Notify",
            platform.alerts,
            f"{self._deploy.stack_name}: drift check failed",
            {
                "drift_check": self._deploy.stack_name,
                "model": sfn.JsonPath.string_at("$.model"),
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            },
        )
        check.add_catch(
            concise_error(scope, then_even_if_unsent(notify, failed)),
            errors=[sfn.Errors.ALL],
            result_path="$.error",
        )
        each = sfn.Map(
            scope,
            "Check each model",
            items_path="$.models",
            item_selector={"model": sfn.JsonPath.string_at("$$.Map.Item.Value")},
            max_concurrency=CHECKS_AT_ONCE,
            result_path="$.checks",
            comment="One drift check per model; a failed one is notified, the others go on",
        )
        each.item_processor(check)
        machine = logged_state_machine(
            scope,
            self._deploy,
            each.next(sfn.Succeed(scope, "Done")),
            timeout=Duration.hours(12),
            include_execution_data=True,
            comment=f"{self._deploy.stack_name} drift checks",
        )
        acknowledge_invokes(scope, machine.role, (self.check,), "drift function")
        return machine

    def _metric(
        self,
        name: str,
        service: str,
        statistic: str,
        period: Duration | None = None,
        label: str | None = None,
        model: str | None = None,
    ) -> cloudwatch.Metric:
        # Powertools Metrics adds the `service` dimension to every metric it publishes; the
        # drift check adds `model`.
        return cloudwatch.Metric(
            namespace=self._deploy.config.project.name,
            metric_name=name,
            dimensions_map={"service": service, **({"model": model} if model else {})},
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
        alarms: dict[str, cloudwatch.Alarm] = {}
        for model in self._deploy.config.model_names:
            # One pair per model (construct `Monitoring/<Model>/...`): the alarm names the model.
            scope = Construct(self, construct_name(model))
            for name, metric, means in (
                (
                    "DataDriftAlarm",
                    "DatasetDrift",
                    f"The drift check of model {model} found dataset drift in its captured "
                    f"traffic (see `mlops drift show --model {model}`).",
                ),
                (
                    "PerformanceDropAlarm",
                    "PerformanceDrop",
                    f"Live performance of model {model} from feedback labels fell below its "
                    "evaluation metrics by more than drift.performance_tolerance.",
                ),
                (
                    "EstimatedPerformanceDropAlarm",
                    "EstimatedPerformanceDrop",
                    f"The label-free performance estimate of model {model} (calibrated "
                    "probabilities of its captured predictions) fell below its held-out "
                    "metrics by more than drift.estimate_tolerance, before any label arrived.",
                ),
            ):
                alarms[f"{name}/{model}"] = alarm(
                    scope,
                    name,
                    self._metric(metric, MONITOR_SERVICE, "Maximum", check_period, model=model),
                    platform=platform,
                    means=means,
                )
        specs: dict[str, tuple[cloudwatch.IMetric, str]] = {
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
        alarms.update(
            {
                name: alarm(self, name, metric, platform=platform, means=means)
                for name, (metric, means) in specs.items()
            }
        )
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
            expression=f"SEARCH('{{{namespace},feature,model,service}} "
            f'MetricName="FeatureDriftScore" service="{MONITOR_SERVICE}"\', \'Maximum\', 86400)',
            label="",
            period=Duration.days(1),
        )
        live = cloudwatch.MathExpression(
            expression=f'SEARCH(\'{{{namespace},model,service}} MetricName="LiveAccuracy" OR '
            f'MetricName="LiveF1Macro" OR MetricName="LiveRmse" OR MetricName="LiveMae" OR '
            f'MetricName="EstimatedAccuracy" OR MetricName="EstimatedF1Macro"\', '
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
            cloudwatch.GraphWidget(
                title="Live performance (feedback) and estimated (no labels)",
                left=[live],
                width=8,
            ),
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
