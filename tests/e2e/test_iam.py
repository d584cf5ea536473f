"""IAM enforced on the local cloud: seeded permission defects fail as they would on AWS.

Each defect is one change to a deployed role's policies, made in the running cloud and undone
after the test (`LocalCloud.role_policies_changed`): the next call is authorized against the
changed policy, as on AWS after a deploy. Before the local cloud enforced IAM, every one of
these passed unnoticed. The API's IAM authorization is checked with a principal granted
`execute-api:Invoke` on the routes and one that is not. The smoke test of a deploy
(`mlops smoke`) is run against each defect: what it catches, and what it cannot, is asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.ml import sample_data
from infra.cli.predict_client import SigningCredentials, call_api
from infra.local import LocalCloud, faults
from infra.local.authz.enforcer import ENFORCER

pytestmark = pytest.mark.slow

FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("iam-state")


@pytest.fixture(scope="module")
def cloud(cdk_out: Path, state_dir: Path) -> Iterator[LocalCloud]:
    with LocalCloud.start(
        cdk_out, mode="server", port=0, api_port=0, state_dir=state_dir
    ) as started:
        assert started.enforce_iam
        described = started.drop(
            "raw/churn/first.csv", sample_data.encode(sample_data.churn_frame(2_000, seed=51))
        )
        assert described["status"] == "SUCCEEDED", described
        yield started


def _rows(count: int) -> list[dict[str, Any]]:
    frame = sample_data.churn_frame(count, seed=52, first_id=52_000_000, duplicate_share=0.0)
    return [
        {name: (None if value != value else value) for name, value in row.items()}
        for row in frame[FEATURES].astype(object).to_dict("records")
    ]


def _without(actions: Callable[[str], bool]) -> Callable[[dict[str, Any]], None]:
    """An edit removing every statement that grants an action `actions` accepts."""

    def edit(documents: dict[str, Any]) -> None:
        removed = 0
        for document in documents.values():
            kept = []
            for statement in document["Statement"]:
                named = statement.get("Action", [])
                named = named if isinstance(named, list) else [named]
                if statement.get("Effect") == "Allow" and any(actions(a) for a in named):
                    removed += 1
                    continue
                kept.append(statement)
            document["Statement"] = kept
        assert removed, "the edit removed no statement: the role's policy has changed"

    return edit


def _smoke(cloud: LocalCloud, state_dir: Path) -> dict[str, Any]:
    from functions.common.config.loading import load_config
    from infra.cli.smoke import run_smoke
    from infra.cli.target import resolve_target

    config = load_config()
    target = resolve_target(config, local=True, stage="dev", local_state=state_dir)
    return {result.check: result for result in run_smoke(config, target, "dev", state_dir)}


def _log_lines(cloud: LocalCloud, function: str, since_ms: int) -> list[str]:
    group = f"/aws/lambda/{cloud.function_name(function)}"
    deployment = cloud.deployment
    assert deployment is not None
    groups = [
        name
        for logical_id, name in deployment.of_type("AWS::Logs::LogGroup").items()
        if logical_id.startswith(function)
    ]
    group = groups[0] if groups else group
    events = cloud.client("logs").filter_log_events(logGroupName=group, startTime=since_ms)
    return [line for event in events["events"] for line in event["message"].splitlines()]


@pytest.mark.iam_denials
def test_a_statement_removed_from_ingest_s_role_fails_the_drop_naming_the_action(
    cloud: LocalCloud, state_dir: Path
) -> None:
    before = len(ENFORCER.denials)
    body = sample_data.encode(sample_data.churn_frame(500, seed=53, first_id=53_000_000))
    with cloud.role_policies_changed(
        "PipelineIngestFunctionRole", _without(lambda action: action == "s3:PutObject")
    ):
        described = cloud.drop("raw/churn/denied.csv", body)
        smoke = _smoke(cloud, state_dir)

    assert described["status"] == "FAILED"
    assert "AccessDenied" in described["cause"] and "s3:PutObject" in described["cause"]
    denials = ENFORCER.denials[before:]
    assert {denial.action for denial in denials} == {"s3:PutObject"}
    assert all(
        d.principal.label.startswith("mlops-dev-PipelineIngestFunctionRole") for d in denials
    )
    bucket = cloud.outputs["DataBucketName"]
    raw = cloud.client("s3").get_object(Bucket=bucket, Key="raw/churn/denied.csv")
    assert raw["Body"].read() == body
    # The health check initialises ingest without writing: the smoke test cannot see it.
    assert smoke["function PipelineIngestFunctionA1CF7F84"].passed


@pytest.mark.iam_denials
def test_predict_s_leading_keys_narrowed_to_another_model_answers_503_and_logs_access_denied(
    cloud: LocalCloud, state_dir: Path
) -> None:
    def narrow(documents: dict[str, Any]) -> None:
        narrowed = 0
        for document in documents.values():
            for statement in document["Statement"]:
                condition = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
                if "dynamodb:LeadingKeys" in condition:
                    condition["dynamodb:LeadingKeys"] = ["MODEL#other"]
                    narrowed += 1
        assert narrowed == 1

    started = int(time.time() * 1000)
    with cloud.role_policies_changed("ServingPredictFunctionRole", narrow):
        # A new environment: the one serving so far has the model cached.
        with cloud.edited_function("ServingPredictFunction"):
            status, body = call_api(cloud.api_url, "POST", "/v1/predict", {"instances": _rows(2)})
            smoke = _smoke(cloud, state_dir)

    assert status == 503, body
    lines = _log_lines(cloud, "ServingPredictFunction", started)
    assert any("AccessDenied" in line and "dynamodb:" in line for line in lines), lines[-20:]
    failed = {check for check, result in smoke.items() if not result.passed}
    # The smoke test reads the registry as the operator: production resolves, but the API,
    # whose function may not read it, is not ready with it.
    assert failed == {"API serves production"}, smoke


@pytest.mark.iam_denials
def test_a_model_outside_the_config_is_404_and_predict_s_role_may_not_read_it(
    cloud: LocalCloud,
) -> None:
    import boto3
    from botocore.exceptions import ClientError

    from infra.local.authz.principals import session_credentials

    bucket, table = cloud.outputs["DataBucketName"], cloud.outputs["RegistryTableName"]
    s3, dynamodb = cloud.client("s3"), cloud.client("dynamodb")
    # Model `other`: in the bucket and the registry (a copy of churn's), not in the config.
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="models/churn/1/")["Contents"]:
        s3.copy_object(
            Bucket=bucket,
            Key=item["Key"].replace("models/churn/", "models/other/", 1),
            CopySource={"Bucket": bucket, "Key": item["Key"]},
        )
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "MODEL#churn"}},
    )["Items"]
    for item in items:
        dynamodb.put_item(TableName=table, Item={**item, "pk": {"S": "MODEL#other"}})

    status, body = call_api(
        cloud.api_url, "POST", "/v1/models/other/predict", {"instances": _rows(1)}
    )
    assert status == 404, body
    assert body["error"] == "model_not_found" and body["models"] == ["churn"]

    # What the function's own credentials may read, as Lambda gets them for its role.
    role = cloud.client("iam").get_role(RoleName=cloud.role_name("ServingPredictFunctionRole"))
    function = cloud.client("lambda").get_function(
        FunctionName=cloud.function_name("ServingPredictFunction")
    )["Configuration"]["FunctionArn"]
    credentials = session_credentials(
        role["Role"]["Arn"], "model-probe", "lambda.amazonaws.com", function
    )
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name="us-east-1",
    )
    as_predict = {
        service: session.client(service, endpoint_url=cloud.endpoint)  # type: ignore[call-overload]
        for service in ("s3", "dynamodb")
    }
    key = {"pk": {"S": "MODEL#churn"}, "sk": {"S": "ALIAS#production"}}
    assert (
        as_predict["s3"].get_object(Bucket=bucket, Key="models/churn/1/model.onnx")["Body"].read()
    )
    assert as_predict["dynamodb"].get_item(TableName=table, Key=key)["Item"]
    with pytest.raises(ClientError) as denied:
        as_predict["s3"].get_object(Bucket=bucket, Key="models/other/1/model.onnx")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "s3:GetObject" in denied.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as denied:
        as_predict["dynamodb"].get_item(TableName=table, Key={**key, "pk": {"S": "MODEL#other"}})
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:GetItem" in denied.value.response["Error"]["Message"]


@pytest.mark.iam_denials
def test_without_kms_on_the_alerts_key_the_alert_fails_as_sns_reports_it_and_the_catch_ends_it(
    cloud: LocalCloud, state_dir: Path
) -> None:
    sent = len(cloud.sent_notifications())
    with cloud.role_policies_changed(
        "PipelineStateMachineRole", _without(lambda action: action.startswith("kms:"))
    ):
        with faults.crash("PipelineIngestFunction", "Runtime.OutOfMemory"):
            described = cloud.drop(
                "raw/churn/crashed.csv", sample_data.encode(sample_data.churn_frame(50, seed=54))
            )
        smoke = _smoke(cloud, state_dir)

    # The pipeline's own failure decides how the execution ends, not the alert's.
    assert described["status"] == "FAILED"
    assert described["error"] != "SNS.KMSAccessDeniedException"
    notify = [
        event["taskFailedEventDetails"]
        for event in cloud.execution_history(described)
        if event["type"] == "TaskFailed"
    ]
    assert notify and {detail["error"] for detail in notify} == {"SNS.KMSAccessDeniedException"}
    assert "kms:GenerateDataKey" in notify[0]["cause"]
    assert "Error Code: KMSAccessDenied" in notify[0]["cause"]
    assert len(cloud.sent_notifications()) == sent
    # Nothing in the smoke test publishes an alert.
    assert all(result.passed for result in smoke.values())


@pytest.mark.iam_denials
def test_without_invoke_function_the_execution_fails_with_the_error_step_functions_reports(
    cloud: LocalCloud, state_dir: Path
) -> None:
    # Step Functions retries Lambda.AWSLambdaException (CDK's default retry of a Lambda task:
    # 6 attempts over about 2 minutes), as on AWS: the waits are shortened, not the retries.
    with (
        cloud.role_policies_changed(
            "PipelineStateMachineRole", _without(lambda action: action == "lambda:InvokeFunction")
        ),
        faults.shorter_retry_waits(0.02),
    ):
        described = cloud.drop(
            "raw/churn/uninvoked.csv", sample_data.encode(sample_data.churn_frame(50, seed=55))
        )
        smoke = _smoke(cloud, state_dir)
    denied = [d for d in ENFORCER.denials if d.action == "lambda:InvokeFunction"]

    assert described["status"] == "FAILED"
    assert described["error"] == "Lambda.AWSLambdaException"
    assert "lambda:InvokeFunction" in described["cause"]
    assert "Status Code: 403; Error Code: AccessDeniedException" in described["cause"]
    assert len(denied) >= 7  # the first attempt and 6 retries
    # The smoke test invokes the functions as the operator, not as the state machine.
    assert all(result.passed for result in smoke.values())


def _user(cloud: LocalCloud, name: str, policy: dict[str, Any] | None) -> SigningCredentials:
    iam = cloud.client("iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="api", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return SigningCredentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.mark.iam_denials
def test_the_api_lets_in_only_principals_granted_execute_api_invoke_on_the_route(
    cloud: LocalCloud,
) -> None:
    api_id = cloud.client("apigateway").get_rest_apis()["items"][0]["id"]
    route = f"arn:aws:execute-api:us-east-1:123456789012:{api_id}/*/POST/v1/predict"
    granted = _user(
        cloud,
        "predictor",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": route}],
        },
    )
    other = _user(cloud, "bystander", None)
    document = {"instances": _rows(1)}

    status, body = call_api(cloud.api_url, "POST", "/v1/predict", document, credentials=granted)
    assert status == 200, body
    status, body = call_api(cloud.api_url, "GET", "/v1/model", credentials=granted)
    assert status == 403
    assert "is not authorized to perform: execute-api:Invoke" in body["Message"]
    assert "/GET/v1/model" in body["Message"] and ":********9012:" in body["Message"]
    status, body = call_api(cloud.api_url, "POST", "/v1/predict", document, credentials=other)
    assert status == 403 and "user/bystander" in body["Message"]
    forged = SigningCredentials(granted.access_key, "not-the-secret")
    status, body = call_api(cloud.api_url, "POST", "/v1/predict", document, credentials=forged)
    assert status == 403 and "signature we calculated does not match" in body["message"]
    unknown = SigningCredentials("AKIAUNKNOWNKEY000000", "secret")
    status, body = call_api(cloud.api_url, "POST", "/v1/predict", document, credentials=unknown)
    assert status == 403
    assert body == {"message": "The security token included in the request is invalid."}


def test_an_unsigned_request_is_refused_as_api_gateway_refuses_it(cloud: LocalCloud) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(cloud.api_url.rstrip("/") + "/v1/health")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert json.loads(refused.value.read()) == {"message": "Missing Authentication Token"}
    assert refused.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_mlops_erase_acts_as_the_erasure_role_the_only_principal_that_may_delete_raw_data(
    cloud: LocalCloud, state_dir: Path
) -> None:
    from typer.testing import CliRunner

    from infra.cli.main import app

    subject = "customer_id=C000000007"
    result = CliRunner().invoke(
        app,
        [
            "erase",
            "--subject",
            subject,
            "--reason",
            "IAM-1",
            "--local",
            "--state-dir",
            str(state_dir),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    bucket = cloud.outputs["DataBucketName"]
    s3 = cloud.client("s3")
    audits = s3.list_objects_v2(Bucket=bucket, Prefix="audit/erasure/")["Contents"]
    record = json.loads(s3.get_object(Bucket=bucket, Key=audits[-1]["Key"])["Body"].read())
    assert ":assumed-role/mlops-dev-DataLakeErasure" in record["acting_as"]
    raw = s3.get_object(Bucket=bucket, Key="raw/churn/first.csv")["Body"].read()
    assert b"C000000007" not in raw


@pytest.mark.iam_denials
def test_the_bucket_policy_denies_raw_deletes_to_every_other_role(cloud: LocalCloud) -> None:
    from botocore.exceptions import ClientError

    from infra.local.authz import principals

    role = cloud.client("iam").get_role(RoleName=cloud.role_name("PipelineIngestFunctionRole"))
    # A role allowed to delete anything in the bucket: only the bucket policy stops it.
    cloud.client("iam").put_role_policy(
        RoleName=role["Role"]["RoleName"],
        PolicyName="test-delete-anything",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "*"}],
            }
        ),
    )
    try:
        session = principals.session_credentials(
            role["Role"]["Arn"], "raw-deleter", "lambda.amazonaws.com"
        )
        s3 = _s3_as(
            cloud,
            SigningCredentials(
                session.access_key_id, session.secret_access_key, session.session_token
            ),
        )
        bucket = cloud.outputs["DataBucketName"]
        with pytest.raises(ClientError) as denied:
            s3.delete_object(Bucket=bucket, Key="raw/churn/first.csv")
        s3.delete_object(Bucket=bucket, Key="curated/not-there.parquet")
    finally:
        cloud.client("iam").delete_role_policy(
            RoleName=role["Role"]["RoleName"], PolicyName="test-delete-anything"
        )
    error = denied.value.response["Error"]
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDenied"
    assert error["Message"].endswith(
        "is not authorized to perform: s3:DeleteObject on resource: "
        f"arn:aws:s3:::{bucket}/raw/churn/first.csv with an explicit deny in a resource-based "
        "policy"
    )


def _s3_as(cloud: LocalCloud, credentials: SigningCredentials) -> Any:
    """An S3 client of the local cloud signing as `credentials`."""
    return client_as(cloud, "s3", credentials)


def client_as(cloud: LocalCloud, service: str, credentials: SigningCredentials) -> Any:
    """A client of `service` on the local cloud signing as `credentials`."""
    import boto3

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name="us-east-1",
        endpoint_url=cloud.endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.session_token,
    )


def _objects(cloud: LocalCloud, bucket: str) -> dict[str, str]:
    """Every current object in the bucket outside raw/, key -> ETag."""
    pages = cloud.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        item["Key"]: item["ETag"]
        for page in pages
        for item in page.get("Contents", [])
        if not item["Key"].startswith("raw/")
    }


@pytest.mark.iam_denials
def test_a_producer_drops_into_raw_but_can_neither_forge_nor_write_a_quarantine_reason(
    cloud: LocalCloud,
) -> None:
    from botocore.exceptions import ClientError

    bucket = cloud.outputs["DataBucketName"]
    # A producer granted more than raw/ (the whole bucket): the bucket policy must hold anyway.
    keys = _user(
        cloud,
        "producer",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        },
    )
    producer = _s3_as(cloud, keys)

    def drop(key: str, body: bytes) -> dict[str, Any]:
        put = producer.put_object(Bucket=bucket, Key=key, Body=body)
        name = cloud.execution_name_for_object(bucket, key, put.get("VersionId"), put["ETag"])
        return cloud.wait_for_execution(name, timeout=120)

    def reason_of(objects: dict[str, str], raw_key: str) -> tuple[str, dict[str, Any]]:
        s3 = cloud.client("s3")
        found = []
        for key in objects:
            if key.endswith(".reason.json"):
                record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                if record.get("source", {}).get("key") == raw_key:
                    found.append((key, record))
        assert len(found) == 1, found
        return found[0]

    bad = sample_data.bad_files()["semicolon_separated.csv"]
    assert drop("raw/churn/forged.csv", bad)["status"] == "FAILED"
    written = _objects(cloud, bucket)
    reason_key, reason = reason_of(written, "raw/churn/forged.csv")
    assert reason["code"] == "wrong_delimiter"

    forged = {**reason, "code": "forged", "message": "Nothing wrong with this file."}
    assert drop("raw/churn/forged.csv.reason.json", json.dumps(forged).encode())["status"] == (
        "FAILED"
    )
    after = _objects(cloud, bucket)
    # Nothing the pipeline wrote for the first drop was overwritten by the second one.
    assert {key: after.get(key) for key in written} == written
    assert reason_of(written, "raw/churn/forged.csv") == (reason_key, reason)

    # Nor can the producer write there itself, whatever its own policy grants.
    with pytest.raises(ClientError) as denied:
        producer.put_object(Bucket=bucket, Key=reason_key, Body=json.dumps(forged).encode())
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "explicit deny in a resource-based policy" in denied.value.response["Error"]["Message"]
    assert _objects(cloud, bucket)[reason_key] == written[reason_key]
