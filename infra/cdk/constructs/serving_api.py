"""Serving: the predict function (zip + the serving layer) behind alias `live`, serving every
configured model, a REST API with one method per route (IAM auth by default, or API keys with
a usage plan), access logs and throttling, prediction capture (the function logs one capture
record per request; a subscription filter on its log group hands them to a Firehose stream
that writes them under capture/dt=YYYY-MM-DD/), and one alarm per model when a served file
fails its integrity check."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnResource, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.adapters.aws import SLIM_DATA_ENV
from functions.common.layout import (
    CAPTURE_ERRORS_PREFIX,
    CAPTURE_PREFIX,
    DAY_PARTITION,
    FEEDBACK_PREFIX,
    model_key,
    model_prefix,
)
from infra.cdk.cold_start import SLIM_DATA_DIR
from infra.cdk.constructs.alerts import alarm
from infra.cdk.constructs.data_lake import DataLake, data_key
from infra.cdk.constructs.platform import Platform
from infra.cdk.constructs.stage_function import (
    FunctionSpec,
    ZipStageFunction,
    retention,
)
from infra.cdk.layers import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    LAYER_METADATA,
    LayerBuild,
    build_function_code,
    build_layer,
)
from infra.cdk.nag import acknowledge

PREDICT_HANDLER = "functions.predict.handler.lambda_handler"
LIVE_ALIAS = "live"
INTEGRITY_METRIC = "ModelIntegrityFailures"
INTEGRITY_ALARM = "ModelIntegrityAlarm"
_FIREHOSE_DAY = f"{DAY_PARTITION}!{{timestamp:yyyy-MM-dd}}/"
CAPTURE_DATA_PREFIX = f"{CAPTURE_PREFIX}{_FIREHOSE_DAY}"
CAPTURE_ERROR_PREFIX = f"{CAPTURE_ERRORS_PREFIX}!{{firehose:error-output-type}}/{_FIREHOSE_DAY}"
CAPTURE_FILTER_PATTERN = '{ $.record = "capture" }'
"""The subscription filter's pattern: the log events that are capture records."""


_LOG_MESSAGES = firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
    enabled=True,
    processors=[
        firehose.CfnDeliveryStream.ProcessorProperty(
            type="Decompression",
            parameters=[
                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                    parameter_name="CompressionFormat", parameter_value="GZIP"
                )
            ],
        ),
        firehose.CfnDeliveryStream.ProcessorProperty(
            type="CloudWatchLogProcessing",
            parameters=[
                firehose.CfnDeliveryStream.ProcessorParameterProperty(
                    parameter_name="DataMessageExtraction", parameter_value="true"
                )
            ],
        ),
        firehose.CfnDeliveryStream.ProcessorProperty(type="AppendDelimiterToRecord"),
    ],
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str


# The function validates bodies against the live model's signature and names the field and
# the problem; API Gateway's own body validation would answer "Invalid request body" first.
ROUTES = (
    Route("POST", "/v1/predict"),
    Route("GET", "/v1/model"),
    Route("GET", "/v1/models"),
    Route("GET", "/v1/models/{name}"),
    Route("POST", "/v1/models/{name}/predict"),
    Route("POST", "/v1/models/{name}/feedback"),
    Route("GET", "/v1/health"),
    Route("POST", "/v1/feedback"),
    Route("GET", "/openapi.json"),
    Route("GET", "/v2"),
    Route("GET", "/v2/health/live"),
    Route("GET", "/v2/health/ready"),
    Route("GET", "/v2/models/{name}"),
    Route("GET", "/v2/models/{name}/ready"),
    Route("POST", "/v2/models/{name}/infer"),
    Route("GET", "/v2/models/{name}/versions/{version}"),
    Route("GET", "/v2/models/{name}/versions/{version}/ready"),
    Route("POST", "/v2/models/{name}/versions/{version}/infer"),
)
# The binary tensor data extension's media type: API Gateway passes such a request body to the
# function base64-encoded (intact), and a base64 answer as bytes to a client whose Accept
# header names it first. Only it: with `*/*` every JSON body would reach the function
# base64-encoded too (a third larger in the event, decoded again) for nothing.
BINARY_MEDIA_TYPES = ["application/octet-stream"]


class ServingApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        deploy, data_lake, registry, _ = platform
        self._deploy = deploy
        serving = deploy.config.serving
        if serving.auth == "none" and not deploy.open_api_reason:
            raise ValueError(
                "[serving] auth = 'none' leaves the API open to anyone: give the reason "
                "explicitly with the CDK context value api_auth_none_reason "
                "(-c api_auth_none_reason='...'); it becomes the cdk-nag acknowledgement"
            )

        self.capture_stream = self._capture_stream(data_lake)
        self.layer_build = build_layer()
        self.layer = lambda_.LayerVersion(
            self,
            "ServingLayer",
            code=lambda_.Code.from_asset(str(self.layer_build.directory)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=(
                "onnxruntime, numpy, powertools, pydantic, boto3 and botocore data trimmed "
                "for predict (serving, arm64, py3.13)"
            ),
        )
        # How the layer was built: the import walk builds its twin for this machine from it.
        layer_resource = self.layer.node.default_child
        assert isinstance(layer_resource, CfnResource)
        layer_resource.add_metadata(LAYER_METADATA, self.layer_build.metadata())
        self.predict = ZipStageFunction(
            self,
            "PredictFunction",
            platform=platform,
            spec=FunctionSpec(
                name="predict",
                handler=PREDICT_HANDLER,
                memory_mb=serving.memory_mb,
                timeout_seconds=serving.timeout_seconds,
                environment={
                    "CAPTURE_STREAM": self.capture_stream.ref,
                    # The layer's botocore data trimmed to predict's services (cold start).
                    SLIM_DATA_ENV: f"/opt/python/{SLIM_DATA_DIR}",
                },
            ),
            layers=[self.layer],
            snap_start=serving.snapstart,
        )
        self.unzipped_bytes = check_unzipped_size(self.layer_build)
        role = self.predict.role
        # Exactly the configured models: their files and registry partitions, no wildcard
        # over models (a model in the bucket but not in the config is not readable).
        models = deploy.config.model_names
        for model in models:
            data_lake.grant_read_objects(role, model_prefix(model))
        data_lake.grant_write_objects(role, FEEDBACK_PREFIX)
        # Feedback checks a row against its captured request, when the capture is found.
        data_lake.grant_read_objects(role, CAPTURE_PREFIX)
        data_lake.grant_list(role, [CAPTURE_PREFIX])
        # The models' own items, read only: aliases and versions. A rollout is counted and
        # concluded by the canary function from the capture stream, never by predict.
        registry.grant_partitions(role, read=[model_key(model) for model in models])
        # Capture leaves the function as log lines: no Firehose grant on its role.
        self.capture_subscription = self._capture_subscription(self.predict.log_group)

        # API Gateway always invokes alias `live`: a published version, so SnapStart and
        # provisioned concurrency apply, and a deploy moves the alias in one step.
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.predict.function.current_version,
            provisioned_concurrent_executions=serving.provisioned_concurrency or None,
        )
        self.api = self._rest_api()
        self.integrity_alarms = {model: self._integrity_alarm(platform, model) for model in models}

    @property
    def url(self) -> str:
        return self.api.url

    def _rest_api(self) -> apigw.RestApi:
        deploy, serving = self._deploy, self._deploy.config.serving
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=retention(deploy.stage_config.log_retention_days),
            removal_policy=deploy.removal_policy,
        )
        authorization = (
            apigw.AuthorizationType.IAM if serving.auth == "iam" else apigw.AuthorizationType.NONE
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{deploy.stack_name}-serving",
            description=f"Predictions of {', '.join(deploy.config.model_names)} ({deploy.stage})",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            binary_media_types=BINARY_MEDIA_TYPES,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=deploy.removal_policy,
            default_method_options=apigw.MethodOptions(
                authorization_type=authorization,
                api_key_required=serving.auth == "api_key",
            ),
            deploy_options=apigw.StageOptions(
                stage_name=deploy.stage,
                throttling_rate_limit=serving.throttle_rate_limit,
                throttling_burst_limit=serving.throttle_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        # The stack's `ApiUrl` output is the contract; CDK's own `Endpoint` output would be a
        # second name for the same URL.
        api.node.try_remove_child("Endpoint")
        integration = apigw.LambdaIntegration(self.alias, proxy=True, allow_test_invoke=False)
        validator = api.add_request_validator(
            "ParameterValidator", validate_request_body=False, validate_request_parameters=True
        )
        for route in ROUTES:
            api.root.resource_for_path(route.path).add_method(
                route.method,
                integration,
                request_validator=validator,
                request_parameters=_path_parameters(route.path),
            )
        if serving.auth == "api_key":
            self._usage_plan(api)
        self._acknowledge_api(api)
        return api

    def _usage_plan(self, api: apigw.RestApi) -> None:
        serving = self._deploy.config.serving
        plan = api.add_usage_plan(
            "UsagePlan",
            name=f"{self._deploy.stack_name}-serving",
            throttle=apigw.ThrottleSettings(
                rate_limit=serving.throttle_rate_limit, burst_limit=serving.throttle_burst_limit
            ),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )
        plan.add_api_key(api.add_api_key("ApiKey", description="The serving API's first key"))

    def _acknowledge_api(self, api: apigw.RestApi) -> None:
        acknowledge(
            api,
            "AwsSolutions-APIG2",
            "Request bodies are validated by the predict function against the live model's "
            "signature, answering 4xx JSON that names the field and the problem; API "
            "Gateway's body validator would refuse first with 'Invalid request body'. Path "
            "parameters are validated by API Gateway.",
        )
        auth = self._deploy.config.serving.auth
        if auth == "iam":
            acknowledge(
                api,
                "AwsSolutions-COG4",
                "The API authorizes callers with IAM (SigV4): clients are AWS principals "
                "granted execute-api:Invoke, so no Cognito user pool is involved.",
            )
        else:
            reason = (
                "[serving] auth = 'api_key': callers present an API key of the usage plan "
                "(throttled per key); no Cognito user pool or IAM authorizer by config."
                if auth == "api_key"
                else f"[serving] auth = 'none', explicitly: {self._deploy.open_api_reason}"
            )
            acknowledge(api, "AwsSolutions-APIG4", reason)
            acknowledge(api, "AwsSolutions-COG4", reason)
        acknowledge(
            api,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default: the API is authenticated and throttled per stage "
            "(and per key); attach a regional web ACL to the stage where the account has one.",
        )
        acknowledge(
            api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-wide API Gateway CloudWatch role that execution and access logging "
            "require; AWS's managed policy is the documented one for it.",
        )

    def _capture_stream(self, data_lake: DataLake) -> firehose.CfnDeliveryStream:
        # The Cfn resource rather than the DeliveryStream L2: the L2's S3 destination grants
        # read-write (with delete) on the whole bucket; this role writes only its prefixes.
        deploy = self._deploy
        key = data_key(self, deploy)
        role = iam.Role(
            self,
            "CaptureRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description=f"Prediction capture delivery of {deploy.stack_name}",
        )
        data_lake.grant_write_objects(role, CAPTURE_PREFIX)
        data_lake.grant_write_objects(role, CAPTURE_ERRORS_PREFIX)
        iam.Grant.add_to_principal(
            grantee=role,
            actions=["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            resource_arns=[data_lake.bucket.bucket_arn],
        )
        log_group = logs.LogGroup(
            self,
            "CaptureDeliveryLogs",
            retention=retention(deploy.stage_config.log_retention_days),
            removal_policy=deploy.removal_policy,
        )
        log_stream = log_group.add_stream("S3Delivery")
        log_group.grant_write(role)
        stream = firehose.CfnDeliveryStream(
            self,
            "CaptureStream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK" if key else "AWS_OWNED_CMK",
                key_arn=key.key_arn if key else None,
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=data_lake.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=CAPTURE_DATA_PREFIX,
                error_output_prefix=CAPTURE_ERROR_PREFIX,
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=60, size_in_m_bs=5
                ),
                compression_format="UNCOMPRESSED",
                # CloudWatch Logs sends gzipped batches of log events: Firehose unzips them and
                # keeps each event's message (a capture record), one per line.
                processing_configuration=_LOG_MESSAGES,
                encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                    kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                        awskms_key_arn=key.key_arn
                    )
                )
                if key
                else None,
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True,
                    log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name,
                ),
            ),
        )
        # CloudFormation must not create the stream before its role may write the bucket.
        stream.node.add_dependency(role)
        return stream

    def _capture_subscription(self, log_group: logs.ILogGroup) -> logs.CfnSubscriptionFilter:
        """The predict log group's capture records to the capture stream: CloudWatch Logs
        puts them to Firehose with a role that may put to that stream only."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "CaptureLogsRole",
            assumed_by=iam.ServicePrincipal(
                "logs.amazonaws.com",
                conditions={
                    "StringLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:logs:{stack.region}:"
                        f"{stack.account}:*"
                    }
                },
            ),
            description=f"Capture records of {self._deploy.stack_name}'s predict logs to Firehose",
        )
        # CloudWatch Logs delivers with PutRecord (the grant AWS documents for a Firehose
        # subscription destination).
        iam.Grant.add_to_principal(
            grantee=role,
            actions=["firehose:PutRecord"],
            resource_arns=[self.capture_stream.attr_arn],
        )
        subscription = logs.CfnSubscriptionFilter(
            self,
            "CaptureSubscription",
            log_group_name=log_group.log_group_name,
            destination_arn=self.capture_stream.attr_arn,
            filter_pattern=CAPTURE_FILTER_PATTERN,
            role_arn=role.role_arn,
        )
        # CloudWatch Logs checks it may put to the stream when the filter is created: after the
        # role's policy (the role itself is a dependency already, through RoleArn).
        policy = role.node.find_child("DefaultPolicy")
        subscription.node.add_dependency(policy)
        return subscription

    def _integrity_alarm(self, platform: Platform, model: str) -> cloudwatch.Alarm:
        """One alarm per configured model: the function publishes the metric with the
        `model` dimension, and an alarm matches a metric's exact dimensions."""
        # Powertools Metrics adds the `service` dimension to every metric it publishes.
        metric = cloudwatch.Metric(
            namespace=self._deploy.config.project.name,
            metric_name=INTEGRITY_METRIC,
            dimensions_map={"model": model, "service": "predict"},
            statistic=cloudwatch.Stats.SUM,
            period=Duration.minutes(1),
        )
        single = len(self._deploy.config.models) == 1
        return alarm(
            self,
            INTEGRITY_ALARM if single else f"{INTEGRITY_ALARM}-{model}",
            metric,
            platform=platform,
            runbook=INTEGRITY_ALARM,
            means=f"A served file of model {model!r} has a sha256 that does not match its "
            "registry entry: the file was changed after registration; predict refuses to "
            "serve it.",
        )


def check_unzipped_size(layer: LayerBuild) -> int:
    """Code (the `functions/` package and its bytecode) plus the layer, unzipped; synth fails
    over 250 MB."""
    code = build_function_code().unzipped_bytes
    total = code + layer.unzipped_bytes
    if total >= LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise ValueError(
            f"the predict function would be {total / 2**20:.0f} MiB unzipped (layer "
            f"{layer.unzipped_bytes / 2**20:.0f} MiB + code {code / 2**20:.1f} MiB): over "
            "Lambda's 250 MB limit; trim layers/serving/requirements.txt"
        )
    return total


def _path_parameters(path: str) -> dict[str, bool] | None:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return {f"method.request.path.{name}": True for name in names} or None
