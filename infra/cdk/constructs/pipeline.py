"""The pipeline: a raw drop (EventBridge, S3 Object Created under raw/) or a retrain request
starts a Step Functions state machine. A drop under `raw/<dataset>/` is ingested once; then
every model trained on that dataset goes through its own iteration of one Map:

    Ingest -> Map over the dataset's models (`$.dataset.models`), each iteration:
        Train -> Evaluate -> Gate passed? -> Register (+ promote)     -> promoted
                                         \\-> Notify rejection       -> rejected
        Train -> skipped (that model's training set, config and code were trained on before)
        any task failure -> Notify model failure                    -> failed
    -> Any model failed? -> Fail (the model's own error; `ModelsFailed` for several) | Done
    Ingest out of memory / timed out -> Quarantine crashed drop -> Notify -> Failed
    any ingest failure -> Notify -> Failed

An iteration's failure is caught inside it: the other models are still trained, evaluated and
gated, and their promotions stand. The execution then fails, so the failure shows where failed
executions alarm: with the model's own error when it trained one model, else with
`ModelsFailed` (the models and their statuses in the cause); each failed model was notified
with its error. Every iteration's outcome (`status` promoted, rejected,
skipped or failed, with its training, evaluation, registered version or error) is at
`$.models.outcomes`, in the Map state's output.

A retrain request (`{"retrain": {"model": ..., "data_version": ..., "reason": ...}}`) skips
Ingest and trains only that model (the default model when it names none)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.common.layout import (
    INGEST_IDEMPOTENCY_KEY,
    JOB_PREFIX_ENV,
    LINEAGE_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    curated_prefix,
    dataset_key,
    model_key,
    model_prefix,
    model_reports_prefix,
    runs_key,
    runs_prefix,
    sagemaker_prefix,
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
# The execution's error when at least one model's iteration failed (the others completed).
MODELS_FAILED = "ModelsFailed"


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
        config = deploy.config
        self.models = config.model_names
        self.datasets = sorted({config.models[m].dataset for m in self.models})
        self.sagemaker: SageMakerTraining | None = None
        if train.backend == "sagemaker":
            self._sagemaker_functions(data_lake)
        else:
            self.train = self._function(
                "train", train.memory_mb, train.timeout_seconds, train.ephemeral_storage_mb
            )
            self._grant_objects(data_lake.grant_read_objects, self.train, self._curated())
            self._grant_objects(data_lake.grant_write_objects, self.train, self._runs())
            self.training_stages = [self.train]
        self.evaluate = self._function("evaluate", 2048, 300, 1024)
        self.register = self._function("register", 1024, 120, 512)

        data_lake.grant_read_objects(self.ingest.role, RAW_PREFIX)
        ingested = [curated_prefix(d) for d in config.datasets]
        self._grant_objects(data_lake.grant_write_objects, self.ingest, ingested)
        data_lake.grant_write_objects(self.ingest.role, QUARANTINE_PREFIX)
        # Quarantined copies and reasons: a producer must not forge or overwrite them.
        data_lake.reserve_writes(QUARANTINE_PREFIX, self.ingest.role)
        # Evaluate reads the run and the champion, register copies the run into a version.
        models = [model_prefix(m) for m in self.models]
        self._grant_objects(data_lake.grant_read_objects, self.evaluate, models)
        self._grant_objects(data_lake.grant_write_objects, self.evaluate, self._runs())
        self._grant_objects(data_lake.grant_read_objects, self.register, models)
        self._grant_objects(data_lake.grant_write_objects, self.register, models)
        cards = [model_reports_prefix(m) for m in self.models]
        self._grant_objects(data_lake.grant_write_objects, self.register, cards)
        # What each stage does with the registry, and nothing more (the e2e suite measures it:
        # docs/local-cloud.md, "Least privilege, measured"), on the partitions of the
        # configured datasets and models only.
        registry.grant_items(
            self.ingest.role,  # contracts, dataset versions, idempotency records
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            partitions=[*(dataset_key(d) for d in config.datasets), INGEST_IDEMPOTENCY_KEY],
        )
        for stage, grants in self._training_registry_actions().items():
            for actions, partitions in grants:
                registry.grant_items(stage.role, *actions, partitions=partitions)
        registry.grant_items(self.evaluate.role, "dynamodb:GetItem", partitions=self._model_keys())
        registry.grant_items(
            self.evaluate.role, "dynamodb:UpdateItem", partitions=self._runs_keys()
        )
        registry.grant_items(
            self.register.role,  # runs, versions, alias moves (a transaction), history
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
            partitions=[*self._model_keys(), *self._runs_keys()],
        )
        events.EventBus.from_event_bus_name(self, "DefaultBus", "default").grant_put_events_to(
            self.register.role
        )
        # OpenLineage run events: each step writes its own under lineage/, and ingest reads
        # back the manifest of the version it made (the schema facet).
        self._grant_objects(data_lake.grant_read_objects, self.ingest, ingested)
        # The training's events are the train function's, or with SageMaker the collect's.
        trained = self.training_stages[-1]
        for stage in (self.ingest, trained, self.evaluate, self.register):
            data_lake.grant_write_objects(stage.role, LINEAGE_PREFIX)

        self.state_machine = self._state_machine(alerts)
        self.rule = self._trigger(data_lake)

    def _model_keys(self) -> list[str]:
        return [model_key(m) for m in self.models]

    def _runs_keys(self) -> list[str]:
        return [runs_key(m) for m in self.models]

    def _curated(self) -> list[str]:
        """The curated data of the datasets the models train on."""
        return [curated_prefix(d) for d in self.datasets]

    def _runs(self) -> list[str]:
        return [runs_prefix(m) for m in self.models]

    @staticmethod
    def _grant_objects(
        grant: Callable[[iam.IRole, str], None], stage: StageFunction, prefixes: list[str]
    ) -> None:
        for prefix in prefixes:
            grant(stage.role, prefix)

    def _training_registry_actions(
        self,
    ) -> dict[StageFunction, list[tuple[tuple[str, ...], list[str]]]]:
        """{stage: [(actions, partitions)]}: training lists its dataset's versions (Query on
        `DATASET#<d>`), looks up its model's training sets and records its run (Query and
        PutItem on `RUNS#<m>`); with SageMaker, the listing is the prepare stage's, the
        recording the collect stage's. Only the configured datasets and models."""
        datasets = [dataset_key(d) for d in self.datasets]
        if self.sagemaker is None:
            return {
                self.train: [
                    (("dynamodb:Query",), [*datasets, *self._runs_keys()]),
                    (("dynamodb:PutItem",), self._runs_keys()),
                ]
            }
        prepare, collect = self.training_stages[0], self.training_stages[-1]
        return {
            prepare: [(("dynamodb:Query",), datasets)],
            collect: [(("dynamodb:PutItem",), self._runs_keys())],
        }

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
        jobs = [sagemaker_prefix(m) for m in self.models]
        self._grant_objects(data_lake.grant_read_objects, self.prepare, self._curated())
        self._grant_objects(data_lake.grant_write_objects, self.prepare, jobs)
        self._grant_objects(data_lake.grant_read_objects, self.collect, jobs)
        self._grant_objects(data_lake.grant_write_objects, self.collect, self._runs())
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
            "Validate, clean and version the dropped file (bad files: quarantine); name the "
            "models trained on its dataset",
        )
        ingest.add_retry(
            errors=[IDEMPOTENCY_IN_PROGRESS],
            interval=Duration.seconds(5),
            backoff_rate=2,
            max_attempts=6,
        )
        ingest.add_catch(
            self._quarantine_crashed_drop(on_failure), errors=LAMBDA_CRASHES, result_path="$.error"
        )
        ingest.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")

        models = self._models_map(alerts)
        summary = sfn.Pass(
            self,
            "Any model failed?",
            comment="Whether an iteration failed, and the models with their statuses",
            parameters={
                "failed": sfn.JsonPath.string_at(
                    "States.ArrayContains($.models.statuses, 'failed')"
                ),
                "cause": sfn.JsonPath.format(
                    "Training failed for at least one model; each failure was notified. "
                    "Models {} ended {} (in that order).",
                    sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.targets.models")),
                    sfn.JsonPath.json_to_string(sfn.JsonPath.list_at("$.models.statuses")),
                ),
            },
            result_path="$.summary",
        )
        # One model trained (a retrain, a dataset with one model): its own error, as the
        # execution's; several: ModelsFailed, naming them.
        failed = (
            sfn.Choice(self, "Several models?")
            .when(
                sfn.Condition.is_present("$.models.outcomes[1]"),
                sfn.Fail(self, "Models failed", error=MODELS_FAILED, cause_path="$.summary.cause"),
            )
            .otherwise(
                sfn.Fail(
                    self,
                    "Failed for the model",
                    error_path="$.models.outcomes[0].error.Error",
                    cause_path="$.models.outcomes[0].error.Cause",
                )
            )
        )
        models.next(summary).next(
            sfn.Choice(self, "Every model completed?")
            .when(sfn.Condition.boolean_equals("$.summary.failed", True), failed)
            .otherwise(sfn.Succeed(self, "Done"))
        )
        # The models to train and what started the execution, for every iteration.
        of_dataset = sfn.Pass(
            self,
            "Models of the dataset",
            parameters={
                "models": sfn.JsonPath.list_at("$.dataset.models"),
                "trigger": {"dataset": sfn.JsonPath.object_at("$.dataset")},
            },
            result_path="$.targets",
        ).next(models)
        retrain = {"retrain": sfn.JsonPath.object_at("$.retrain")}
        named = sfn.Pass(
            self,
            "The requested model",
            parameters={
                "models": sfn.JsonPath.array(sfn.JsonPath.string_at("$.retrain.model")),
                "trigger": retrain,
            },
            result_path="$.targets",
        ).next(models)
        default = sfn.Pass(
            self,
            "The default model",
            comment="A retrain request naming no model (its form before many models)",
            parameters={"models": [deploy.config.default_model], "trigger": retrain},
            result_path="$.targets",
        ).next(models)
        # A folder marker (key ending in "/") is an event with nothing to ingest.
        ingest.next(
            sfn.Choice(self, "Anything ingested?")
            .when(
                sfn.Condition.boolean_equals("$.dataset.ingested", False),
                sfn.Succeed(self, "Nothing to ingest"),
            )
            .otherwise(of_dataset)
        )
        # Every stage sees which execution it runs in (run records, alias history).
        definition = record_execution(self).next(
            sfn.Choice(self, "Retrain request?")
            .when(
                sfn.Condition.is_present("$.retrain"),
                sfn.Choice(self, "Model named?")
                .when(sfn.Condition.is_present("$.retrain.model"), named)
                .otherwise(default),
            )
            .otherwise(ingest)
        )
        state_machine = logged_state_machine(
            self,
            deploy,
            definition,
            timeout=self._timeout(),
            include_execution_data=True,
            comment=f"{deploy.stack_name} lifecycle pipeline",
        )
        acknowledge_invokes(self, state_machine.role, self.stages, "stage function")
        if self.sagemaker is not None:
            self.sagemaker.grant_start(state_machine)
        return state_machine

    def _timeout(self) -> Duration:
        """Room for one model's training, evaluation and registration per round of the Map:
        the most models of one dataset, `[train] reserved_concurrency` at a time."""
        config = self._deploy.config
        most = max((len(config.models_of(d)) for d in config.datasets), default=1)
        rounds = max(1, math.ceil(most / config.train.reserved_concurrency))
        one = (
            Duration.hours(2)
            if self.sagemaker is None
            else Duration.hours(1).plus(self.sagemaker.timeout)
        )
        return Duration.minutes(one.to_minutes() * rounds)

    def _models_map(self, alerts: sns.ITopic) -> sfn.Map:
        """One iteration per model to train (`$.targets.models`), with `model`, `execution`
        and `trigger` as its input (`functions.common.contracts.PipelineState`); at most
        `[train] reserved_concurrency` at once. Each iteration ends with its `status`
        whatever happens in it; `$.models` gets every outcome and the statuses."""
        models = sfn.Map(
            self,
            "Train each model",
            comment="Train, evaluate and gate every model of the dataset (or the one to retrain)",
            items_path="$.targets.models",
            item_selector={
                "model": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "execution": sfn.JsonPath.object_at("$.execution"),
                "trigger": sfn.JsonPath.object_at("$.targets.trigger"),
            },
            max_concurrency=self._deploy.config.train.reserved_concurrency,
            result_selector={
                "outcomes": sfn.JsonPath.object_at("$"),
                "statuses": sfn.JsonPath.list_at("$[*].status"),
            },
            result_path="$.models",
        )
        return models.item_processor(self._model_iteration(alerts))

    def _model_iteration(self, alerts: sns.ITopic) -> sfn.IChainable:
        """One model: Train -> Evaluate -> Gate passed? -> Register, ending `promoted`,
        `rejected` (notified), `skipped` (training set unchanged) or `failed` (notified): a
        failure is caught here, so it never stops the other models."""
        failed = self._notify_model_failure(alerts)
        train, trained, training_tasks = self._training()
        evaluate = self._task(
            "Evaluate",
            self.evaluate,
            "$.evaluation",
            "Score candidate and champion on the held-out rows; apply the model's gate",
        )
        register = self._task(
            "Register",
            self.register,
            "$.registered",
            "Register the model version, write its model card, promote alias production",
        )
        for task in (*training_tasks, evaluate, register):
            task.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")
        rejected = then_even_if_unsent(
            self._notify_rejection(alerts), self._status("Rejected", "rejected")
        )
        # A drop whose training set (data versions, config, code) was trained on before.
        trained.next(
            sfn.Choice(self, "Training set changed?")
            .when(
                sfn.Condition.is_present("$.training.skipped"), self._status("Skipped", "skipped")
            )
            .otherwise(evaluate)
        )
        evaluate.next(
            sfn.Choice(self, "Gate passed?")
            .when(sfn.Condition.boolean_equals("$.evaluation.passed", True), register)
            .otherwise(rejected)
        )
        register.next(self._status("Promoted", "promoted"))
        return train

    def _status(self, state: str, status: str) -> sfn.Pass:
        """The end of an iteration: its outcome's `status`."""
        return sfn.Pass(self, state, result=sfn.Result.from_string(status), result_path="$.status")

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

    def _notify_model_failure(self, alerts: sns.ITopic) -> sfn.IChainable:
        """A model's iteration failed: notify with the model and the error, end it `failed`
        (the execution fails once every model is done)."""
        notify = self._notify(
            "Notify model failure",
            alerts,
            "pipeline failed for a model",
            {
                "model": sfn.JsonPath.string_at("$.model"),
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
                "input": sfn.JsonPath.object_at("$$.Execution.Input"),
            },
        )
        failed = self._status("Model failed", "failed")
        return concise_error(self, then_even_if_unsent(notify, failed), suffix=" (model)")

    def _notify_rejection(self, alerts: sns.ITopic) -> tasks.SnsPublish:
        return self._notify(
            "Notify rejection",
            alerts,
            "candidate model rejected by the gate",
            {
                "decision": "rejected",
                "model": sfn.JsonPath.string_at("$.training.model_name"),
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
            event_pattern=data_lake.object_created([{"prefix": RAW_PREFIX}]),
            state_machine=self.state_machine,
            platform=self._platform,
        )
