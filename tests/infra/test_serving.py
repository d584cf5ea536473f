"""Serving as CloudFormation will create it: the predict function (zip, Python 3.13, arm64,
the serving layer, under 250 MB unzipped), least privilege, the REST API (auth per config,
throttling, access logs), the capture stream and the integrity alarm."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from functions.adapters.aws import SLIM_DATA_ENV
from infra.cdk.app import build_app
from infra.cdk.cold_start import PREDICT_SERVICES, botocore_version
from infra.cdk.constructs.serving_api import ROUTES
from infra.cdk.layers import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    build_function_code,
    build_layer,
    directory_size,
    runtime_python,
)

Resources = Callable[[str], dict[str, dict[str, Any]]]
REPO = Path(__file__).resolve().parents[2]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _predict(resources: Resources) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, r["Properties"])
        for logical_id, r in resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "functions.predict.handler.lambda_handler"
    ]
    return found


def _asset_dir(cloud_assembly: Path, object_key: str) -> Path:
    assets = json.loads((cloud_assembly / "mlops-dev.assets.json").read_text())
    (source,) = [
        asset["source"]
        for asset in assets["files"].values()
        if any(d["objectKey"] == object_key for d in asset["destinations"].values())
    ]
    return cloud_assembly / source["path"]


def _role_statements(resources: Resources, role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resources("AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role_prefix) for r in policy["Properties"]["Roles"])
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _object_prefixes(statements: list[dict[str, Any]], action: str) -> set[str]:
    """The bucket key patterns the statements granting `action` name."""
    return {
        resource["Fn::Join"][1][-1].lstrip("/")
        for statement in statements
        if action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    }


def test_predict_is_a_python_313_arm64_zip_with_the_serving_layer(resources: Resources) -> None:
    _, props = _predict(resources)
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    (layer,) = props["Layers"]
    assert layer["Ref"] in resources("AWS::Lambda::LayerVersion")
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "predict"
    assert env["CAPTURE_STREAM"]["Ref"] in resources("AWS::KinesisFirehose::DeliveryStream")
    assert {"DATA_BUCKET", "REGISTRY_TABLE", "STAGE", "CODE_VERSION", "MLOPS_CONFIG_JSON"} <= set(
        env
    )


def test_code_asset_holds_only_the_functions_package(
    resources: Resources, cloud_assembly: Path
) -> None:
    _, props = _predict(resources)
    asset = _asset_dir(cloud_assembly, props["Code"]["S3Key"])
    assert {p.name for p in asset.iterdir()} == {"functions"}
    assert (asset / "functions" / "common" / "config" / "loading.py").exists()
    # Bytecode only of the runtime's Python (3.13), for every module, never this machine's.
    pycs = list(asset.rglob("*.pyc"))
    assert all(p.name.endswith(".cpython-313.pyc") for p in pycs), pycs
    if runtime_python() is not None:
        assert len(pycs) == len(list(asset.rglob("*.py")))
    layer = next(iter(resources("AWS::Lambda::LayerVersion").values()))
    layer_dir = _asset_dir(cloud_assembly, layer["Properties"]["Content"]["S3Key"]) / "python"
    packages = {p.name.lower() for p in layer_dir.iterdir()}
    assert {"onnxruntime", "numpy", "aws_lambda_powertools", "pydantic", "boto3"} <= packages
    assert not packages & {"pandas", "sklearn", "scipy", "pyarrow"}


def test_layer_pins_are_the_projects_pins() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        named = (line.split("==") for line in lines if line)
        return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in named}

    layer, project = pins(REPO / "layers/serving/requirements.txt"), pins(REPO / "requirements.txt")
    assert {name: version for name, version in layer.items() if project.get(name) != version} == {}


def test_predict_reads_the_layers_botocore_data_trimmed_to_its_services(
    resources: Resources, cloud_assembly: Path
) -> None:
    _, props = _predict(resources)
    path = props["Environment"]["Variables"][SLIM_DATA_ENV]
    assert path.startswith("/opt/")
    layer = next(iter(resources("AWS::Lambda::LayerVersion").values()))
    content = _asset_dir(cloud_assembly, layer["Properties"]["Content"]["S3Key"])
    data = content / path.removeprefix("/opt/")
    # Made from the botocore the layer ships, for exactly the services predict calls.
    assert (data / "VERSION").read_text().strip() == botocore_version(content / "python/botocore")
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == sorted(PREDICT_SERVICES)
    assert sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) < 1_000_000


def test_every_function_runs_with_pydantic_plugins_off(resources: Resources) -> None:
    functions = resources("AWS::Lambda::Function")
    ours = [
        props
        for r in functions.values()
        if "MLOPS_CONFIG_JSON"
        in (props := r["Properties"]).get("Environment", {}).get("Variables", {})
    ]
    assert len(ours) >= 8
    for props in ours:
        assert props["Environment"]["Variables"]["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_function_code_and_layer_stay_under_lambdas_250_mb_unzipped() -> None:
    layer = build_layer()
    code = build_function_code().unzipped_bytes
    assert code > directory_size(REPO / "functions", exclude_dirs=frozenset({"__pycache__"}))
    assert layer.unzipped_bytes + code < LAMBDA_UNZIPPED_LIMIT_BYTES


def test_predict_reads_models_and_capture_writes_only_feedback_and_never_calls_firehose(
    resources: Resources,
) -> None:
    statements = _role_statements(resources, "ServingPredictFunctionRole")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    (listing,) = [s for s in s3 if _as_list(s["Action"]) == ["s3:ListBucket"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["capture/*"]}}
    prefixes: dict[str, set[str]] = {"read": set(), "write": set()}
    for statement in s3:
        if statement is listing:
            continue
        actions = _as_list(statement["Action"])
        assert not any("Delete" in a for a in actions)
        kind = "write" if "s3:PutObject" in actions else "read"
        for resource in _as_list(statement["Resource"]):
            prefixes[kind].add(resource["Fn::Join"][1][-1].lstrip("/"))
    assert prefixes == {"read": {"models/churn/*", "capture/*"}, "write": {"feedback/*"}}
    # Capture leaves as log lines: the function has no Firehose grant.
    assert not [
        s for s in statements if any(a.startswith("firehose:") for a in _as_list(s["Action"]))
    ]
    # The model's own items, read only: the canary function counts and concludes rollouts.
    dynamodb = [
        s for s in statements if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    actions = set()
    for statement in dynamodb:
        for resource in _as_list(statement["Resource"]):
            assert resource["Fn::GetAtt"][0].startswith("RegistryTable"), resource
        assert statement["Condition"] == {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MODEL#churn"]}
        }
        actions |= set(_as_list(statement["Action"]))
    assert actions == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    assert not [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]


def test_alias_live_is_what_every_method_invokes(resources: Resources) -> None:
    (alias_id, alias) = next(iter(resources("AWS::Lambda::Alias").items()))
    assert alias["Properties"]["Name"] == "live"
    methods = resources("AWS::ApiGateway::Method")
    assert len(methods) == len(ROUTES) == 18
    for method in methods.values():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert {"Ref": alias_id} in integration["Uri"]["Fn::Join"][1]


def test_api_passes_only_the_binary_tensor_media_type_as_binary(resources: Resources) -> None:
    # Binary tensor data (application/octet-stream) reaches the function intact; JSON stays
    # text.
    (api,) = resources("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == ["application/octet-stream"]


def test_api_uses_iam_auth_throttling_and_json_access_logs_by_default(
    resources: Resources,
) -> None:
    for method in resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"]["ApiKeyRequired"] is False
    (stage,) = resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == 100
    assert settings["ThrottlingBurstLimit"] == 200
    assert props["TracingEnabled"] is True
    assert json.loads(props["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    assert not resources("AWS::ApiGateway::UsagePlan")


def test_capture_stream_writes_daily_prefixes_encrypted_and_buffered(
    resources: Resources,
) -> None:
    (stream,) = resources("AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["Prefix"] == "capture/dt=!{timestamp:yyyy-MM-dd}/"
    assert s3["ErrorOutputPrefix"].startswith("capture-errors/")
    assert s3["BufferingHints"] == {"IntervalInSeconds": 60, "SizeInMBs": 5}
    statements = _role_statements(resources, "ServingCaptureRole")
    assert _object_prefixes(statements, "s3:PutObject") == {"capture/*", "capture-errors/*"}
    # The log events' messages, one per line: what CloudWatch Logs sends is gzipped batches.
    processing = s3["ProcessingConfiguration"]
    assert processing["Enabled"] is True
    assert [p["Type"] for p in processing["Processors"]] == [
        "Decompression",
        "CloudWatchLogProcessing",
        "AppendDelimiterToRecord",
    ]
    assert processing["Processors"][1]["Parameters"] == [
        {"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}
    ]


def test_predicts_capture_records_reach_the_stream_through_a_log_subscription(
    resources: Resources,
) -> None:
    (subscription,) = resources("AWS::Logs::SubscriptionFilter").values()
    props = subscription["Properties"]
    assert props["FilterPattern"] == '{ $.record = "capture" }'
    assert props["DestinationArn"]["Fn::GetAtt"][0].startswith("ServingCaptureStream")
    assert props["LogGroupName"]["Ref"].startswith("ServingPredictFunctionLogs")
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    role = resources("AWS::IAM::Role")[role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    assert "aws:SourceArn" in trust["Condition"]["StringLike"]
    (statement,) = _role_statements(resources, role_id)
    assert _as_list(statement["Action"]) == ["firehose:PutRecord"]
    assert statement["Resource"]["Fn::GetAtt"][0].startswith("ServingCaptureStream")


def test_integrity_failures_alarm_the_alerts_topic(resources: Resources) -> None:
    (alarm,) = [
        a
        for k, a in resources("AWS::CloudWatch::Alarm").items()
        if k.startswith("ServingModelIntegrityAlarm")
    ]
    props = alarm["Properties"]
    assert props["MetricName"] == "ModelIntegrityFailures"
    assert props["Namespace"] == "mlops"
    # The function publishes it per model: the alarm names the model's dimension.
    assert sorted(d["Name"] for d in props["Dimensions"]) == ["model", "service"]
    assert props["Threshold"] == 1
    assert props["TreatMissingData"] == "notBreaching"
    (action,) = props["AlarmActions"]
    assert action["Ref"] in resources("AWS::SNS::Topic")


@pytest.mark.slow
def test_with_several_models_predict_names_exactly_theirs_and_each_has_an_integrity_alarm(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    use_config(
        "[model]\n",
        '[models.churn]\ndataset = "churn"\n\n[models.churn-b]\ndataset = "churn"\n\n[model]\n',
        count=1,
    )
    app = build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"})
    template = app.synth().get_stack_by_name("mlops-dev").template

    def resources(kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}

    statements = _role_statements(resources, "ServingPredictFunctionRole")
    reads = _object_prefixes(statements, "s3:GetObject")
    assert reads == {"models/churn/*", "models/churn-b/*", "capture/*"}
    partitions = [
        statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        for statement in statements
        if "Condition" in statement and "ForAllValues:StringEquals" in statement["Condition"]
    ]
    assert partitions and all(p == ["MODEL#churn", "MODEL#churn-b"] for p in partitions)
    alarms = {
        tuple(sorted((d["Name"], d["Value"]) for d in alarm["Properties"]["Dimensions"]))
        for alarm in resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ModelIntegrityFailures"
    }
    assert alarms == {
        (("model", "churn"), ("service", "predict")),
        (("model", "churn-b"), ("service", "predict")),
    }
    paths = {
        method["Properties"]["HttpMethod"] + " " + _path(template, method)
        for method in resources("AWS::ApiGateway::Method").values()
    }
    assert {
        "GET /v1/models",
        "GET /v1/models/{name}",
        "POST /v1/models/{name}/predict",
        "GET /v2/models/{name}/versions/{version}",
        "POST /v2/models/{name}/versions/{version}/infer",
    } <= paths


def _path(template: dict[str, Any], method: dict[str, Any]) -> str:
    """A method's resource path, from its resource's parents' path parts."""
    parts = []
    ref = method["Properties"]["ResourceId"]
    while isinstance(ref, dict) and "Ref" in ref:
        resource = template["Resources"][ref["Ref"]]["Properties"]
        parts.append(resource["PathPart"])
        ref = resource["ParentId"]
    return "/" + "/".join(reversed(parts))


def test_api_url_is_an_output(template_json: dict[str, Any]) -> None:
    parts = template_json["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert parts[0] == "https://" and ".execute-api." in parts


@pytest.mark.slow
def test_api_key_config_requires_keys_with_a_throttled_usage_plan(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    use_config(
        'auth = "iam"', 'auth = "api_key"\nthrottle_rate_limit = 5\nthrottle_burst_limit = 10'
    )
    app = build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"})
    assembly = app.synth()
    template = Template.from_json(assembly.get_stack_by_name("mlops-dev").template)
    for method in template.find_resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["AuthorizationType"] == "NONE"
        assert method["Properties"]["ApiKeyRequired"] is True
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan", {"Throttle": {"RateLimit": 5, "BurstLimit": 10}}
    )
    template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


@pytest.mark.slow
def test_auth_none_without_an_explicit_reason_fails_synth(
    tmp_path: Path, use_config: Callable[..., Path]
) -> None:
    use_config('auth = "iam"', 'auth = "none"')
    with pytest.raises(Exception, match="api_auth_none_reason"):
        build_app(outdir=str(tmp_path / "cdk.out"), context={"commit": "abc"})


def test_the_serving_page_says_what_api_gateway_validates_as_the_template_has_it(
    resources: Resources,
) -> None:
    validators = resources("AWS::ApiGateway::RequestValidator")
    body_checked, parameters_checked = [], []
    for method in resources("AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        validator = validators.get(properties.get("RequestValidatorId", {}).get("Ref", ""))
        validates = (validator or {}).get("Properties", {})
        if validates.get("ValidateRequestBody") and properties.get("RequestModels"):
            body_checked.append(properties["HttpMethod"])
        if validates.get("ValidateRequestParameters") and properties.get("RequestParameters"):
            parameters_checked.append(properties["RequestParameters"])
    page = " ".join((REPO / "docs" / "serving.md").read_text().split())

    # API Gateway's body refusal is "Invalid request body": the serving page names it only if
    # a method of the template has a body validator and a model.
    assert ("Invalid request body" in page) == bool(body_checked)
    assert body_checked or "API Gateway validates no request body" in page
    named = {"method.request.path.name": True}
    versioned = {**named, "method.request.path.version": True}
    assert sorted(map(len, parameters_checked)) == [1] * 6 + [2] * 3
    assert all(p in (named, versioned) for p in parameters_checked)
    assert (
        "API Gateway validates the `{name}` and `{version}` path parameters of the model routes"
        in page
    )


def test_the_canary_function_runs_on_capture_objects_with_least_privilege(
    resources: Resources,
) -> None:
    rules = [
        r["Properties"]
        for r in resources("AWS::Events::Rule").values()
        if r["Properties"].get("Description", "").startswith("A new capture object")
    ]
    (rule,) = rules
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "capture/"}]}
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("CanaryCanaryFunction")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith(
        "CanaryUndeliveredCaptureEvents"
    )
    statements = _role_statements(resources, "CanaryCanaryFunctionRole")
    # Reads capture objects only: no write, no listing, nothing else in the bucket.
    assert _object_prefixes(statements, "s3:GetObject") == {"capture/*"}
    assert not [s for s in statements if "s3:PutObject" in _as_list(s["Action"])]
    dynamodb = [
        s for s in statements if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    for statement in dynamodb:
        assert statement["Condition"] == {
            "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MODEL#churn"]}
        }
    actions = {a for s in dynamodb for a in _as_list(s["Action"])}
    assert "dynamodb:Scan" not in actions and "dynamodb:UpdateItem" in actions
    (events,) = [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]
    assert events["Resource"]["Fn::Join"][1][-1] == ":event-bus/default"


def test_with_canary_accuracy_the_canary_function_also_reads_feedback_records(
    shadow_template: dict[str, Any],
) -> None:
    resources = shadow_template["Resources"]
    (rule,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule"
        and "CanaryCanaryFunction" in json.dumps(r["Properties"]["Targets"])
    ]
    assert rule["EventPattern"]["detail"]["object"] == {
        "key": [{"prefix": "capture/"}, {"wildcard": "feedback/dt=*/*.json"}]
    }
    statements = _role_statements(
        lambda kind: {k: v for k, v in resources.items() if v["Type"] == kind},
        "CanaryCanaryFunctionRole",
    )
    assert _object_prefixes(statements, "s3:GetObject") == {"capture/*", "feedback/*"}
    assert not [s for s in statements if "s3:PutObject" in _as_list(s["Action"])]
