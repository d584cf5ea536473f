"""The Train step as a SageMaker training job (`[train] backend = "sagemaker"`):

    Prepare training job (Lambda) -> Train (sagemaker:createTrainingJob.sync)
        -> Collect training run (Lambda) -> Evaluate ...

The job runs the training image built for `[train.sagemaker] architecture` from
`layers/training/sagemaker.Dockerfile` (or the configured `image`), whose `train` program is
`functions.train.sagemaker_entry`: the same `Trainer` as the train function. The job's role
may read the configured datasets' `curated/<dataset>/` and each configured model's
`models/<model>/sagemaker/` prefix, and write only there (a job writes under its model's,
`$.training_job.output_uri`);
the state machine may start, describe and stop only jobs named with this stack's job prefix.

The task is a `CustomState` rather than `tasks.SageMakerCreateTrainingJob`: with a job name
taken from the state, CDK's task grants `sagemaker:*TrainingJob` on every training job
(`training-job/*`) and `sagemaker:ListTags` on `*`; here both are scoped to the job prefix.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, IgnoreMode, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.config.training import SageMakerTrainingConfig
from functions.common.layout import (
    MAX_JOB_NAME,
    SPEC_CHANNEL,
    TRAIN_CHANNEL,
    curated_prefix,
    sagemaker_prefix,
)
from infra.cdk.config import REPO_ROOT, DeployConfig
from infra.cdk.constructs.data_lake import DataLake
from infra.cdk.constructs.stage_function import model_code_folder, training_image_build
from infra.cdk.nag import acknowledge

SAGEMAKER_DOCKERFILE = "layers/training/sagemaker.Dockerfile"
TRAINING_JOB_RESOURCE = "arn:aws:states:::sagemaker:createTrainingJob.sync"
# The managed rule through which Step Functions learns that a .sync training job ended.
SYNC_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
SAGEMAKER_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
RUN_ID_LENGTH = 23  # 20261126T225300Z-1a2b3c
PLATFORMS = {
    "x86_64": ecr_assets.Platform.LINUX_AMD64,
    "arm64": ecr_assets.Platform.LINUX_ARM64,
}
# Creating the job and copying the data to the instance come on top of the job's runtime.
PROVISIONING_MARGIN = Duration.minutes(30)


def job_prefix(deploy: DeployConfig) -> str:
    """The start of every training job name of this stack: lowercase (SageMaker ARNs are),
    short enough to leave room for the run id within SageMaker's 63 characters."""
    return deploy.stack_name.lower()[: MAX_JOB_NAME - RUN_ID_LENGTH - 1] + "-"


class SageMakerTraining(Construct):
    """The SageMaker job's image and role, and the Train state that starts it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deploy: DeployConfig,
        data_lake: DataLake,
    ) -> None:
        super().__init__(scope, construct_id)
        self.settings: SageMakerTrainingConfig = deploy.config.train.sagemaker
        self.code = deploy.config.train.code
        self.job_prefix = job_prefix(deploy)
        config = deploy.config
        self.output_prefixes = [sagemaker_prefix(m) for m in config.model_names]
        curated = sorted({curated_prefix(entry.dataset) for entry in config.models.values()})
        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker training jobs of {deploy.stack_name}",
        )
        for prefix in curated:
            data_lake.grant_read_objects(self.role, prefix)
        for prefix in self.output_prefixes:
            data_lake.grant_read_objects(self.role, prefix)
            data_lake.grant_write_objects(self.role, prefix)
        data_lake.grant_list(self.role, [*curated, *self.output_prefixes])
        self.image_uri = self._image()
        self._grant_logs()

    def _image(self) -> str:
        if self.settings.image is not None:
            registry, _, rest = self.settings.image.partition("/")
            account, _, _, region = registry.split(".")[:4]
            name = rest.split("@")[0].split(":")[0]
            repository = ecr.Repository.from_repository_arn(
                self,
                "Image",
                f"arn:{Aws.PARTITION}:ecr:{region}:{account}:repository/{name}",
            )
            repository.grant_pull(self.role)
            self._acknowledge_token()
            return self.settings.image
        asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),
            file=SAGEMAKER_DOCKERFILE,
            platform=PLATFORMS[self.settings.architecture],
            ignore_mode=IgnoreMode.DOCKER,
            **training_image_build(model_code_folder(self.code)),
        )
        asset.repository.grant_pull(self.role)
        self._acknowledge_token()
        return asset.image_uri

    def _acknowledge_token(self) -> None:
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource type; the image pull itself is "
            "granted on the training image's repository only.",
        )

    def _grant_logs(self) -> None:
        stack = Stack.of(self)
        log_group = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=SAGEMAKER_LOG_GROUP,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=[log_group],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group}:log-stream:{self.job_prefix}*"],
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            f"<AWS::AccountId>:log-group:{SAGEMAKER_LOG_GROUP}:log-stream:{self.job_prefix}*]",
            "SageMaker names each job's log stream <job name>/algo-1-<id>: the streams are "
            "scoped to this stack's job prefix.",
        )

    @property
    def timeout(self) -> Duration:
        return Duration.minutes(self.settings.max_runtime_minutes).plus(PROVISIONING_MARGIN)

    def train_state(self, comment: str) -> sfn.CustomState:
        """The Train state: the job from `$.training_job` (Prepare's output, which names the
        model's output prefix, `output_uri`); its result
        (name, status, model.tar.gz URI) goes to `$.training_job.result`."""
        settings = self.settings
        channel = {"S3DataDistributionType": "FullyReplicated"}
        state = sfn.CustomState(
            self,
            "Train",
            state_json={
                "Type": "Task",
                "Comment": comment,
                "Resource": TRAINING_JOB_RESOURCE.replace("arn:aws:", f"arn:{Aws.PARTITION}:"),
                "Parameters": {
                    "TrainingJobName.$": "$.training_job.job_name",
                    "RoleArn": self.role.role_arn,
                    "AlgorithmSpecification": {
                        "TrainingImage": self.image_uri,
                        "TrainingInputMode": "File",
                    },
                    "HyperParameters.$": "$.training_job.hyperparameters",
                    "InputDataConfig": [
                        {
                            "ChannelName": TRAIN_CHANNEL,
                            "ContentType": "application/vnd.apache.parquet",
                            "DataSource": {
                                "S3DataSource": {
                                    **channel,
                                    "S3DataType": "ManifestFile",
                                    "S3Uri.$": "$.training_job.train_manifest_uri",
                                }
                            },
                        },
                        {
                            "ChannelName": SPEC_CHANNEL,
                            "ContentType": "application/json",
                            "DataSource": {
                                "S3DataSource": {
                                    **channel,
                                    "S3DataType": "S3Prefix",
                                    "S3Uri.$": "$.training_job.spec_uri",
                                }
                            },
                        },
                    ],
                    "OutputDataConfig": {"S3OutputPath.$": "$.training_job.output_uri"},
                    "ResourceConfig": {
                        "InstanceCount": settings.instance_count,
                        "InstanceType": settings.instance_type,
                        "VolumeSizeInGB": settings.volume_gb,
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60},
                    "Environment": {"POWERTOOLS_SERVICE_NAME": "train"},
                },
                "ResultSelector": {
                    "name.$": "$.TrainingJobName",
                    "status.$": "$.TrainingJobStatus",
                    "model_artifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
                },
                "ResultPath": "$.training_job.result",
                "TimeoutSeconds": int(self.timeout.to_seconds()),
            },
        )
        # CreateTrainingJob refused (throttling, a service error): no job exists, so the same
        # name is free for another attempt. A job that ran and failed is not retried.
        state.add_retry(
            errors=["SageMaker.AmazonSageMakerException"],
            interval=Duration.seconds(30),
            backoff_rate=2,
            max_attempts=3,
        )
        return state

    def grant_start(self, state_machine: sfn.StateMachine) -> None:
        """What the state machine needs for the .sync integration: jobs of this stack's
        prefix, the managed events rule, and passing exactly the job role to SageMaker."""
        stack = Stack.of(self)
        jobs = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{self.job_prefix}*"
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:ListTags",
                ],
                resources=[jobs],
            )
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
                ],
            )
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        acknowledge(
            state_machine.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
            f"<AWS::AccountId>:training-job/{self.job_prefix}*]",
            "Each run is its own training job, named with this stack's job prefix and the run "
            "id: the state machine may create, describe and stop only those.",
        )
