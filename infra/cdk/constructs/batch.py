"""Batch inference: a `_START` marker under `batch/in/<model>/<job>/` (EventBridge, S3 Object
Created), or `mlops batch run --model`, starts a Step Functions state machine (the job is scored
by that model; the functions' grants name exactly the configured models' folders):

    Record execution -> Plan -> Score (Distributed Map over the planned items, read from S3)
        -> Finalize (manifest) -> Job failed? -> Done | Notify -> Failed
    Plan or Finalize failing -> Notify -> Failed; the map failing (more failed items than
    `[batch] tolerated_failure_percentage`) -> Finalize (manifest with status failed) -> Notify;
    a job Finalize judges failed (no row scored, more rows rejected than `[batch]
    max_rejected_share`) -> Notify -> Failed with error `BatchJobFailed` and the manifest's
    `status_reason` as cause

Why a marker and not every object: a job is a folder of files, uploaded one by one; an
execution per object would score each file as its own job. The marker is written last (the
CLI writes none: it starts the execution itself), so the job sees every file.

Why an items file and not the S3 ListObjectsV2 reader: a map item is a row range of a file
(large files are split every `rows_per_item` rows, with the byte range of those rows for text
files), which needs each file's row count: the Plan function counts them and writes the items
as one JSON array that the map's `s3:getObject` ItemReader (InputType JSON) reads.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.common.layout import (
    BATCH_IN_PREFIX,
    BATCH_START_MARKER,
    LINEAGE_PREFIX,
    batch_inputs_prefix,
    batch_outputs_prefix,
    model_key,
    model_prefix,
)
from infra.cdk.constructs.alerts import undelivered_queue
from infra.cdk.constructs.data_lake import DataLake
from infra.cdk.constructs.platform import Platform
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
from infra.cdk.nag import acknowledge

EXPRESS_MAX_TIMEOUT_SECONDS = 120
"""Child workflows are EXPRESS (capped at 5 minutes by AWS) when one invocation, retried,
stays well within that; longer-running score functions get STANDARD child workflows."""


class _ItemsFileReader(sfn.S3JsonItemReader):
    """The map's ItemReader (`s3:getObject`, InputType JSON) with `s3:GetObject` granted on
    the configured models' batch output folders only (CDK's own grant is the whole bucket)."""

    def __init__(self, *, data_lake: DataLake, key: str, models: list[str]) -> None:
        super().__init__(bucket=data_lake.bucket, key=key)
        self._items_arns = [
            data_lake.bucket.arn_for_objects(f"{batch_outputs_prefix(model)}*") for model in models
        ]
        self._key_arn = data_lake.key.key_arn if data_lake.key is not None else None

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        statements = [iam.PolicyStatement(actions=["s3:GetObject"], resources=self._items_arns)]
        if self._key_arn is not None:  # the items file is encrypted with the data key
            statements.append(
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self._key_arn])
            )
        return statements


class _ScoreMap(sfn.DistributedMap):
    """CDK leaves `ToleratedFailurePercentage` out when it is 0; the job's tolerance is
    written explicitly, whatever its value."""

    def __init__(self, scope: Construct, construct_id: str, *, tolerated: float, **kwargs: Any):
        super().__init__(scope, construct_id, tolerated_failure_percentage=tolerated, **kwargs)
        self._tolerated = tolerated

    def to_state_json(
        self, state_machine_query_language: sfn.QueryLanguage | None = None
    ) -> dict[str, Any]:
        state = dict(super().to_state_json(state_machine_query_language))
        state["ToleratedFailurePercentage"] = self._tolerated
        return state


class BatchInference(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        deploy, data_lake, registry, alerts = platform
        self._platform = platform
        self._deploy = deploy
        self._data_lake = data_lake
        batch = deploy.config.batch
        self.plan = self._function("Plan", "batch-plan", "plan_handler", 1024, 900)
        self.score = self._function(
            "Score",
            "batch-score",
            "score_handler",
            batch.memory_mb,
            batch.timeout_seconds,
        )
        self.finalize = self._function("Finalize", "batch-finalize", "finalize_handler", 1024, 300)

        # Exactly the configured models' folders, versions and artifacts.
        self._models = models = deploy.config.model_names
        inputs = [batch_inputs_prefix(model) for model in models]
        outputs = [batch_outputs_prefix(model) for model in models]
        data_lake.grant_list(self.plan.role, inputs)
        data_lake.grant_list(self.finalize.role, outputs)
        for model, job_inputs, job_outputs in zip(models, inputs, outputs, strict=True):
            data_lake.grant_read_objects(self.plan.role, job_inputs)
            data_lake.grant_write_objects(self.plan.role, job_outputs)
            data_lake.grant_read_objects(self.score.role, job_inputs)
            data_lake.grant_read_objects(self.score.role, model_prefix(model))
            data_lake.grant_write_objects(self.score.role, job_outputs)
            data_lake.grant_read_objects(self.finalize.role, job_outputs)
            data_lake.grant_write_objects(self.finalize.role, job_outputs)
        for stage in (self.plan, self.finalize):  # the job's OpenLineage events
            data_lake.grant_write_objects(stage.role, LINEAGE_PREFIX)
        for stage in (self.plan, self.score):
            # The pinned version: each model's alias and version items.
            registry.grant_partitions(stage.role, read=[model_key(model) for model in models])

        self.state_machine = self._state_machine(alerts)
        self.rule = self._trigger()

    def _function(
        self,
        construct: str,
        name: str,
        handler: str,
        memory_mb: int,
        timeout_seconds: int,
    ) -> StageFunction:
        return StageFunction(
            self,
            f"{construct}Function",
            platform=self._platform,
            spec=FunctionSpec(
                name=name,
                handler=f"functions.batch.handler.{handler}",
                memory_mb=memory_mb,
                timeout_seconds=timeout_seconds,
                ephemeral_storage_mb=1024,
            ),
        )

    def _task(
        self, state: str, stage: StageFunction, comment: str, **kwargs: Any
    ) -> tasks.LambdaInvoke:
        return stage_task(
            self, state, stage, comment, transient_interval=Duration.seconds(5), **kwargs
        )

    def _state_machine(self, alerts: sns.ITopic) -> sfn.StateMachine:
        deploy, batch = self._deploy, self._deploy.config.batch
        notify = self._notify(alerts)
        failed = sfn.Fail(self, "Failed", error_path="$.error.Error", cause_path="$.error.Cause")
        on_failure = concise_error(self, then_even_if_unsent(notify, failed))

        plan = self._task(
            "Plan",
            self.plan,
            "List the job's files, count rows, pin the model version, write the map items",
            result_path="$.plan",
        )
        score = self._task(
            "Score item",
            self.score,
            "Read, check and score one row range; write predictions, rejects, item result",
            result_path=sfn.JsonPath.DISCARD,
            # Results are read back from S3: the map's collected output stays `{}` per item.
            output_path=sfn.JsonPath.DISCARD,
        )
        express = batch.timeout_seconds <= EXPRESS_MAX_TIMEOUT_SECONDS
        score_map = _ScoreMap(
            self,
            "Score",
            tolerated=batch.tolerated_failure_percentage,
            item_reader=_ItemsFileReader(
                data_lake=self._data_lake,
                key=sfn.JsonPath.string_at("$.plan.items_key"),
                models=self._models,
            ),
            max_concurrency=batch.max_concurrency,
            map_execution_type=(
                sfn.StateMachineType.EXPRESS if express else sfn.StateMachineType.STANDARD
            ),
            label="BatchScore",
            result_path=sfn.JsonPath.DISCARD,
            comment="One child workflow per item: a row range of one input file",
        )
        score_map.item_processor(score)
        finalize = self._task(
            "Finalize",
            self.finalize,
            "Sum the item results into batch/out/<model>/<job>/manifest.json",
            result_path="$.manifest",
        )
        plan.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        finalize.add_catch(on_failure, errors=[sfn.Errors.ALL], result_path="$.error")
        score_map.add_catch(finalize, errors=[sfn.Errors.ALL], result_path="$.error")
        job_failed = sfn.Condition.string_equals("$.manifest.status", "failed")
        # A job judged failed without a map error (no row scored, too many rows rejected):
        # the manifest's reason becomes the error that Notify and Failed report.
        judged = sfn.Pass(
            self,
            "Job judged failed",
            parameters={
                "Error": "BatchJobFailed",
                "Cause": sfn.JsonPath.string_at("$.manifest.status_reason"),
            },
            result_path="$.error",
        ).next(on_failure)
        finalize.next(
            sfn.Choice(self, "Job failed?")
            .when(sfn.Condition.and_(job_failed, sfn.Condition.is_present("$.error")), on_failure)
            .when(job_failed, judged)
            .otherwise(sfn.Succeed(self, "Done"))
        )
        definition = record_execution(self).next(plan).next(score_map).next(finalize)
        state_machine = logged_state_machine(
            self,
            deploy,
            definition,
            timeout=Duration.hours(24),
            # Every event, without the state data (items and plans name the job's files).
            include_execution_data=False,
            comment=f"{deploy.stack_name} batch inference",
        )
        self._acknowledge_state_machine_role(state_machine)
        return state_machine

    def _notify(self, alerts: sns.ITopic) -> tasks.SnsPublish:
        return alert_task(
            self,
            "Notify",
            alerts,
            f"{self._deploy.stack_name}: batch job failed",
            {
                "batch": self._deploy.stack_name,
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
                "input": sfn.JsonPath.object_at("$$.Execution.Input"),
            },
        )

    def _acknowledge_state_machine_role(self, state_machine: sfn.StateMachine) -> None:
        role = state_machine.role
        acknowledge_invokes(self, role, (self.plan, self.score, self.finalize), "batch function")
        stack = Stack.of(self)
        machine_id = stack.resolve(
            stack.get_logical_id(state_machine.node.default_child)  # type: ignore[arg-type]
        )
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine_id}"}}]}}]}}'
        )
        for suffix, why in (
            (":*", "describe and stop its own executions"),
            ("/BatchScore:*", "redrive the map runs of its own executions (label BatchScore)"),
        ):
            acknowledge(
                state_machine,
                f"AwsSolutions-IAM5[Resource::{executions}{suffix}]",
                f"A Distributed Map's parent must {why}; CDK scopes this to this state "
                "machine's executions, whose names are not known in advance.",
            )
        bucket_id = stack.resolve(
            stack.get_logical_id(self._data_lake.bucket.node.default_child)  # type: ignore[arg-type]
        )
        for model in self._models:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{batch_outputs_prefix(model)}*]",
                "The Distributed Map's ItemReader reads the job's items file, whose key names "
                "the job (batch/out/<model>/<job>/_plan/items.json): scoped to each configured "
                "model's batch output folder.",
            )

    def _trigger(self) -> events.Rule:
        self.undelivered = undelivered_queue(self, "UndeliveredStarts", "the batch trigger")
        return start_rule(
            self,
            "StartMarkerRule",
            undelivered=self.undelivered,
            undelivered_means=f"EventBridge could not start a batch job for a {BATCH_START_MARKER} "
            "marker (after its retries): the job was not started; its event waits in the "
            "UndeliveredStarts queue.",
            description=f"A {BATCH_START_MARKER} marker under batch/in/<model>/<job>/ starts a "
            "batch job",
            event_pattern=self._data_lake.object_created(
                events.Match.wildcard(f"{BATCH_IN_PREFIX}*/*/{BATCH_START_MARKER}")
            ),
            state_machine=self.state_machine,
            platform=self._platform,
        )
