"""A throwaway CDK app with the serving shapes the real stack uses, for the local API adapter's
tests: `CDK_OUTDIR=<dir> API_AUTH=api_key|none python app.py` (no Docker, no AWS account).
A function behind alias `live` integrated per route, a request model on POST /items, binary
media types, and a Firehose stream writing under a `!{timestamp:...}` prefix."""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

HERE = Path(__file__).resolve().parent
CAPTURE_PREFIX = "capture/dt=!{timestamp:yyyy-MM-dd}/"


def build(stack: cdk.Stack, auth: str) -> None:
    function = lambda_.Function(
        stack,
        "Probe",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="api_probe.handle",
        code=lambda_.Code.from_asset(str(HERE / "handler")),
    )
    alias = lambda_.Alias(stack, "Live", alias_name="live", version=function.current_version)
    api = apigw.RestApi(
        stack,
        "Api",
        deploy_options=apigw.StageOptions(stage_name="test"),
        binary_media_types=["application/octet-stream", "image/*"],
        default_method_options=apigw.MethodOptions(api_key_required=auth == "api_key"),
    )
    integration = apigw.LambdaIntegration(alias)
    validator = api.add_request_validator("Body", validate_request_body=True)
    model = api.add_model(
        "ItemBody",
        content_type="application/json",
        schema=apigw.JsonSchema(
            schema=apigw.JsonSchemaVersion.DRAFT4,
            type=apigw.JsonSchemaType.OBJECT,
            required=["name"],
        ),
    )
    items = api.root.add_resource("items")
    items.add_method("GET", integration)
    items.add_method(
        "POST",
        integration,
        request_validator=validator,
        request_models={"application/json": model},
    )
    items.add_resource("{id}").add_method("GET", integration)
    items.add_resource("special").add_method("GET", integration)
    api.root.add_resource("echo").add_method("POST", integration)
    api.root.add_resource("boom").add_method("GET", integration)
    api.root.add_resource("binary").add_method("GET", integration)
    api.root.add_resource("malformed").add_method("GET", integration)
    if auth == "api_key":
        plan = api.add_usage_plan(
            "Plan", api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)]
        )
        plan.add_api_key(
            api.add_api_key("Key", api_key_name="probe-key", value="probe-key-value-0123456789")
        )
        # A key outside any usage plan of this API: refused.
        api.add_api_key("Stray", api_key_name="stray-key", value="stray-key-value-0123456789")

    bucket = s3.Bucket(stack, "Data")
    role = iam.Role(stack, "CaptureRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"))
    bucket.grant_write(role)
    stream = firehose.CfnDeliveryStream(
        stack,
        "Capture",
        delivery_stream_type="DirectPut",
        extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
            bucket_arn=bucket.bucket_arn,
            role_arn=role.role_arn,
            prefix=CAPTURE_PREFIX,
            error_output_prefix="capture-errors/!{firehose:error-output-type}/",
        ),
    )
    cdk.CfnOutput(stack, "ApiUrl", value=api.url)
    cdk.CfnOutput(stack, "DataBucketName", value=bucket.bucket_name)
    cdk.CfnOutput(stack, "CaptureStreamName", value=stream.ref)


def main() -> None:
    app = cdk.App()
    build(cdk.Stack(app, "api-probe"), os.environ.get("API_AUTH", "api_key"))
    app.synth()


if __name__ == "__main__":
    main()
