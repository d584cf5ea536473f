"""The pipeline: a raw drop (EventBridge, S3 Object Created under raw/) or a retrain request
starts a Step Functions state machine:

    Ingest -> Train -> Evaluate -> Gate passed? -> Register (+ promote) -> Promoted
                                              \\-> Notify rejection -> Rejected
    Train -> Skipped (a drop whose training set, config and code were trained on before)
    Ingest out of memory / timed out -> Quarantine crashed drop -> Notify -> Failed
    any task failure -> Notify -> Failed

A retrain request (`{"retrain": {"data_version": ..., "reason": ...}}`) skips Ingest."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.common.layout import (
    CURATED_PREFIX,
    JOB_PREFIX_ENV,
    MODELS_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    REPORTS_PREFIX,
    runs_prefix,
)
from infra.cdk.constructs.alerts import undelivered_queue
from infra.cdk.constructs.data_lake import DataLake
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.sagemaker_training import SageMakerTraining
from infra.cdk.constructs.stage_function import (
    FunctionSpec,
    StageFunction,
)
from infra.cdk.constructs.state_machine import (
    acknowledge_invokes,
    alert_task,
    concise_error,
    logged_state_machine,
    record_execution,
    stage_task,
    start_rule,
    then_even_if_unsent,
)

# Raised by the ingest function while another delivery of the same object version is being
# ingested (Powertools idempotency): waiting and retrying returns the first one's result.
IDEMPOTENCY_IN_PROGRESS = "IdempotencyAlreadyInProgressError"
# The errors Step Functions reports when a function's process dies: over its memory, past its
# timeout. On ingest they mean the drop itself is too much: it is quarantined unread.
LAMBDA_CRASHES = ["Runtime.OutOfMemory", "Sandbox.Timedout"]


class Pipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        deploy, data_lake, registry, alerts = platform
        self._deploy = deploy
        self._platform = platform
        ingest, train = deploy.config.ingest, deploy.config.train
        self.ingest = self._function(
            "ingest",
            ingest.memory_mb,
            ingest.timeout_seconds,
            ingest.ephemeral_storage_mb,
            reserved_concurrency=ingest.reserved_concurrency,
        )
        self.sagemaker: SageMakerTraining | None = None
        if train.backend == "sagemaker":
            self._sagemaker_functions(data_lake)
        else:
            self.train = self._function(
                "train", train.memory_mb, train.timeout_seconds, train.ephemeral_storage_mb
            )
            data_lake.grant_read_objects(self.train.role, CURATED_PREFIX)
            data_lake.grant_write_objects(self.train.role, MODELS_PREFIX)
            self.training_stages = [self.train]
        self.evaluate = self._function("evaluate", 2048, 300, 1024)
        self.register = self._function("register", 1024, 120, 512)

        data_lake.grant_read_objects(self.ingest.role, RAW_PREFIX)
        data_lake.grant_write_objects(self.ingest.role, CURATED_PREFIX)
        data_lake.grant_write_objects(self.ingest.role, QUARANTINE_PREFIX)
        # Quarantined copies and reasons: a producer must not forge or overwrite them.
        data_lake.reserve_writes(QUARANTINE_PREFIX, self.ingest.role)
        for stage in (self.evaluate, self.register):
            data_lake.grant_read_objects(stage.role, MODELS_PREFIX)
            data_lake.grant_write_objects(stage.role, MODELS_PREFIX)
        data_lake.grant_write_objects(self.register.role, REPORTS_PREFIX)
        # What each stage does with the registry, and nothing more (the e2e suite measures it:
        # docs/local-cloud.md, "Least privilege, measured").
        registry.grant_items(
            self.ingest.role,  # contracts, dataset versions, idempotency records
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
        for stage, actions in self._training_registry_actions().items():
            registry.grant_items(stage.role, *actions)
        registry.grant_items(self.evaluate.role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        registry.grant_items(
            self.register.role,  # runs, versions, alias moves (a transaction), history
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        )
        events.EventBus.from_event_bus_name(self, "DefaultBus", "default").grant_put_events_to(
            self.register.role
        )

        self.state_machine = self._state_machine(alerts)
        self.rule = self._trigger(data_lake)

    def _training_registry_actions(self) -> dict[StageFunction, tuple[str, ...]]:
        """Training lists dataset versions (Query) and records its run (PutItem); with
        SageMaker, the first is the prepare stage's, the second the collect stage's."""
        if self.sagemaker is None:
            return {self.train: ("dynamodb:Query", "dynamodb:PutItem")}
        prepare, collect = self.training_stages[0], self.training_stages[-1]
        return {prepare: ("dynamodb:Query",), collect: ("dynamodb:PutItem",)}

    @property
    def stages(self) -> list[StageFunction]:
        return [self.ingest, *self.training_stages, self.evaluate, self.register]

    def _function(
        self,
        name: str,
        memory_mb: int,
        timeout_seconds: int,
        ephemeral_storage_mb: int,
        handler: str | None = None,
        environment: dict[str, str] | None = None,
        reserved_concurrency: int | None = None,
    ) -> StageFunction:
        """A pipeline stage function; its reserved concurrency is `reserved_concurrency`, by
        default the config's `train.reserved_concurrency` (the training-side stages)."""
        return StageFunction(
            self,
            f"{name.title().replace('-', '')}Function",
            platform=self._platform,
            spec=FunctionSpec(
                name=name,
                handler=handler or f"functions.{name}.handler.lambda_handler",
                memory_mb=memory_mb,
                timeout_seconds=timeout_seconds,
                ephemeral_storage_mb=ephemeral_storage_mb,
                environment=environment or {},
                reserved_concurrency=(
                    reserved_concurrency or self._deploy.config.train.reserved_concurrency
                ),
            ),
        )

    def _sagemaker_functions(self, data_lake: DataLake) -> None:
        """`[train] backend = "sagemaker"`: the job (image, role) and the two Lambda steps
        around it. Prepare reads the curated manifests and writes the job's input; Collect
        reads the job's output and writes the run under `models/<name>/runs/`."""
        self.sagemaker = SageMakerTraining(
            self, "SageMakerTraining", deploy=self._deploy, data_lake=data_lake
        )
        jobs = self.sagemaker.output_prefix
        self.prepare = self._function(
            "train-prepare",
            1024,
            300,
            512,
            handler="functions.train.sagemaker_handler.prepare_handler",
            environment={JOB_PREFIX_ENV: self.sagemaker.job_prefix},
        )
        self.collect = self._function(
            "train-collect",
            1024,
            300,
            2048,
            handler="functions.train.sagemaker_handler.collect_handler",
        )
        data_lake.grant_read_objects(self.prepare.role, CURATED_PREFIX)
        data_lake.grant_write_objects(self.prepare.role, jobs)
        data_lake.grant_read_objects(self.collect.role, jobs)
        data_lake.grant_write_objects(
            self.collect.role, runs_prefix(self._deploy.config.model_name)
        )
        self.training_stages = [self.prepare, self.collect]

    def _training(self) -> tuple[sfn.IChainable, sfn.INextable, list[Any]]:
        """The Train step: one Lambda task, or Prepare -> SageMaker job -> Collect. Returns
        its first state, its last state and every task in it (for the catch)."""
        if self.sagemaker is None:
            train = self._task(
                "Train",
                self.train,
                "$.training",
                "Fit the configured estimator, export ONNX, check parity, profile the data",
            )
            return train, train, [train]
        prepare = self._task(
            "Prepare training job",
            self.prepare,
            "$.training_job",
            "Resolve the training set; write the SageMaker job's spec and channel manifest",
        )
        job = self.sagemaker.train_state(
            "SageMaker training job: the same Trainer as the train function, in the training "
            "image built for the configured instance architecture"
        )
        collect = self._task(
            "Collect training run",
            self.collect,
            "$.training",
            "Unpack the job's model.tar.gz into models/<name>/runs/<run_id>/; record the run",
        )
        prepare.next(job).next(collect)
        return prepare, collect, [prepare, job, collect]

    def _task(
        self, state: str, stage: StageFunction, result_path: str, comment: str
    ) -> tasks.LambdaInvoke:
        return stage_task(self, state, stage, comment, result_path=result_path)

    def _state_machine(self, alerts: sns.ITopic) -> sfn.StateMachine:
        deploy = self._deploy
        on_failure = self._notify_failure(alerts)

        ingest = self._task(
            "Ingest",
            self.ingest,
            "$.dataset",
            "Validate, clean and version the dropped file (bad files: quarantine)",
        )
        ingest.add_retry(
            errors=[IDEMPOTENCY_IN_PROGRESS],
            interval=Duration.seconds(5),
            backoff_rate=2,
            max_attempts=6,
        )
        train, trained, training_tasks = self._training()
        evaluate = self._task(
            "Evaluate",
            self.evaluate,
            "$.evaluation",
            "Score candidate and champion on the held-out rows; apply the gate",
        )
        register = self._task(
            "Register",
            self.register,
            "$.model",
            "Register the model version, write its model card, promote alias production",
        )
        ingest.add_catch(
            self._quarantine_crashed_drop(on_failure), errors=LAMBDA_CRASHES, result_path="$.error"
        )
        for task in (ingest, *training_tasks, evaluate, register):
            task.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")

        promoted = sfn.Pass(
            self, "Promoted", result=sfn.Result.from_string("promoted"), result_path="$.status"
        ).next(sfn.Succeed(self, "Done"))
        rejected = then_even_if_unsent(
            self._notify_rejection(alerts),
            sfn.Pass(
                self,
                "Rejected",
                result=sfn.Result.from_string("rejected"),
                result_path="$.status",
            ).next(sfn.Succeed(self, "Not promoted")),
        )
        # A drop whose training set (data versions, config, code) was trained on before.
        unchanged = sfn.Pass(
            self, "Skipped", result=sfn.Result.from_string("skipped"), result_path="$.status"
        ).next(sfn.Succeed(self, "Unchanged"))
        trained.next(
            sfn.Choice(self, "Training set changed?")
            .when(sfn.Condition.is_present("$.training.skipped"), unchanged)
            .otherwise(evaluate)
        )
        evaluate.next(
            sfn.Choice(self, "Gate passed?")
            .when(sfn.Condition.boolean_equals("$.evaluation.passed", True), register)
            .otherwise(rejected)
        )
        register.next(promoted)
        # A folder marker (key ending in "/") is an event with nothing to ingest.
        ingest.next(
            sfn.Choice(self, "Anything ingested?")
            .when(
                sfn.Condition.boolean_equals("$.dataset.ingested", False),
                sfn.Succeed(self, "Nothing to ingest"),
            )
            .otherwise(train)
        )
        # Every stage sees which execution it runs in (run records, alias history).
        definition = record_execution(self).next(
            sfn.Choice(self, "Retrain request?")
            .when(sfn.Condition.is_present("$.retrain"), train)
            .otherwise(ingest)
        )
        state_machine = logged_state_machine(
            self,
            deploy,
            definition,
            timeout=Duration.hours(2)
            if self.sagemaker is None
            else Duration.hours(1).plus(self.sagemaker.timeout),
            include_execution_data=True,
            comment=f"{deploy.stack_name} lifecycle pipeline",
        )
        acknowledge_invokes(self, state_machine.role, self.stages, "stage function")
        if self.sagemaker is not None:
            self.sagemaker.grant_start(state_machine)
        return state_machine

    def _quarantine_crashed_drop(self, on_failure: sfn.IChainable) -> sfn.IChainable:
        """The ingest function died on the drop (out of memory, timed out): invoke it again to
        copy the drop to quarantine unread with reason `ingest_crashed`, then fail as for any
        bad drop, with the crash's error."""
        quarantine = stage_task(
            self,
            "Quarantine crashed drop",
            self.ingest,
            "Copy the drop the ingest function died on to quarantine, unread",
            payload=sfn.TaskInput.from_object(
                {
                    "crashed": {
                        "event": sfn.JsonPath.object_at("$"),
                        "error": sfn.JsonPath.string_at("$.error.Error"),
                        "cause": sfn.JsonPath.string_at("$.error.Cause"),
                    }
                }
            ),
            result_path="$.quarantine",
        )
        quarantine.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        return quarantine.next(on_failure)

    def _notify(
        self, state: str, alerts: sns.ITopic, subject: str, message: dict[str, Any]
    ) -> tasks.SnsPublish:
        return alert_task(
            self,
            state,
            alerts,
            f"{self._deploy.stack_name}: {subject}",
            {"pipeline": self._deploy.stack_name, **message},
        )

    def _notify_failure(self, alerts: sns.ITopic) -> sfn.IChainable:
        notify = self._notify(
            "Notify",
            alerts,
            "pipeline failed",
            {
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
                # The trigger: the S3 event of the drop, or the retrain request.
                "input": sfn.JsonPath.object_at("$$.Execution.Input"),
            },
        )
        failed = sfn.Fail(self, "Failed", error_path="$.error.Error", cause_path="$.error.Cause")
        return concise_error(self, then_even_if_unsent(notify, failed))

    def _notify_rejection(self, alerts: sns.ITopic) -> tasks.SnsPublish:
        return self._notify(
            "Notify rejection",
            alerts,
            "candidate model rejected by the gate",
            {
                "decision": "rejected",
                "run_id": sfn.JsonPath.string_at("$.training.run_id"),
                "failed_criteria": sfn.JsonPath.list_at("$.evaluation.failed"),
                "metrics": sfn.JsonPath.object_at("$.evaluation.metrics"),
            },
        )

    def _trigger(self, data_lake: DataLake) -> events.Rule:
        self.undelivered = undelivered_queue(self, "UndeliveredDrops", "the pipeline trigger")
        return start_rule(
            self,
            "RawDropRule",
            undelivered=self.undelivered,
            undelivered_means="EventBridge could not start the pipeline for a drop under raw/ "
            "(after its retries): the drop was not ingested; its event waits in the "
            "UndeliveredDrops queue.",
            description="A new object under raw/ starts the pipeline",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [data_lake.bucket.bucket_name]},
                    "object": {"key": [{"prefix": RAW_PREFIX}]},
                },
            ),
            state_machine=self.state_machine,
            platform=self._platform,
        )
