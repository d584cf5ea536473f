"""The local cloud's IAM authorization, piece by piece: what a real SDK request needs (the
actions, each on the resource ARN AWS builds for the operation, with its condition keys),
the exception table checked against the service authorization reference, the evaluator's
decisions on the conditions the template uses, SigV4 checking, and the AccessDenied errors
each service's SDK sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import MockRawResponse

from infra.cli.predict_client import SigningCredentials, signed_headers
from infra.local.authz import sigv4
from infra.local.authz.actions import EXCEPTIONS, needed
from infra.local.authz.enforcer import Denial
from infra.local.authz.needs import Resources
from infra.local.authz.policy import Policy, Request, evaluate
from infra.local.authz.principals import Principal
from infra.local.authz.reference import actions_named, context_keys
from infra.local.aws_calls import AwsCall
from infra.local.boundary import classify_request

ACCOUNT = "123456789012"
REGION = "us-east-1"
RESOURCES = Resources(
    ACCOUNT,
    REGION,
    table_keys={"registry": "pk"},
    topic_kms={f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"},
    bucket_kms={"sealed": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k2"},
)


def _call(service: str, operation: str, **params: Any) -> AwsCall:
    """The call a real boto3 request makes, as the local cloud's boundary sees it (in this
    process: moto's stubber's door)."""
    seen: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {}, MockRawResponse(b"{}"))  # type: ignore[arg-type]

    client = boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=REGION,
        aws_access_key_id="ASIAEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 0}, parameter_validation=True),
    )
    client.meta.events.register("before-send", capture)
    try:
        getattr(client, operation)(**params)
    except Exception:
        pass  # the fake response does not parse for every operation; the request was seen
    (request,) = seen
    call = classify_request(request)
    assert call is not None
    assert call.access_key == "ASIAEXAMPLE"
    return call


def _needs(call: AwsCall) -> list[tuple[str, str]]:
    return [(need.action, need.resource) for need in needed(call, RESOURCES)]


def test_s3_operations_need_the_actions_aws_documents_on_object_or_bucket_arns() -> None:
    head = _call("s3", "head_object", Bucket="data", Key="raw/a b.csv")
    assert _needs(head) == [("s3:GetObject", "arn:aws:s3:::data/raw/a b.csv")]
    versioned = _call("s3", "get_object", Bucket="data", Key="models/m.onnx", VersionId="v1")
    assert _needs(versioned) == [("s3:GetObjectVersion", "arn:aws:s3:::data/models/m.onnx")]
    listed = needed(_call("s3", "list_objects_v2", Bucket="data", Prefix="capture/"), RESOURCES)
    assert [(n.action, n.resource) for n in listed] == [("s3:ListBucket", "arn:aws:s3:::data")]
    assert listed[0].context["s3:prefix"] == "capture/"
    copied = _call(
        "s3",
        "copy_object",
        Bucket="data",
        Key="curated/x",
        CopySource={"Bucket": "data", "Key": "raw/x"},
    )
    assert _needs(copied) == [
        ("s3:GetObject", "arn:aws:s3:::data/raw/x"),
        ("s3:PutObject", "arn:aws:s3:::data/curated/x"),
    ]
    sealed = _call("s3", "put_object", Bucket="sealed", Key="k", Body=b"x")
    assert _needs(sealed) == [
        ("s3:PutObject", "arn:aws:s3:::sealed/k"),
        ("kms:GenerateDataKey", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k2"),
    ]


def test_dynamodb_calls_carry_their_partition_keys_and_transactions_need_each_part() -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/registry"
    get = needed(
        _call(
            "dynamodb",
            "get_item",
            TableName="registry",
            Key={"pk": {"S": "MODEL#churn"}, "sk": {"S": "A"}},
        ),
        RESOURCES,
    )
    assert [(n.action, n.resource) for n in get] == [("dynamodb:GetItem", table)]
    assert get[0].context["dynamodb:LeadingKeys"] == ["MODEL#churn"]
    query = needed(
        _call(
            "dynamodb",
            "query",
            TableName="registry",
            IndexName="by-date",
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": "pk"},
            ExpressionAttributeValues={":p": {"S": "MONITOR#churn"}},
        ),
        RESOURCES,
    )
    assert query[0].resource == f"{table}/index/by-date"
    assert query[0].context["dynamodb:LeadingKeys"] == ["MONITOR#churn"]
    transaction = needed(
        _call(
            "dynamodb",
            "transact_write_items",
            TransactItems=[
                {
                    "Put": {
                        "TableName": "registry",
                        "Item": {"pk": {"S": "MODEL#churn"}, "sk": {"S": "V#1"}},
                    }
                },
                {
                    "Update": {
                        "TableName": "registry",
                        "Key": {"pk": {"S": "ALIAS#churn"}, "sk": {"S": "A"}},
                        "UpdateExpression": "SET a = :a",
                        "ExpressionAttributeValues": {":a": {"S": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "registry",
                        "Key": {"pk": {"S": "MODEL#churn"}, "sk": {"S": "A"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ],
        ),
        RESOURCES,
    )
    assert [(n.action, n.context["dynamodb:LeadingKeys"]) for n in transaction] == [
        ("dynamodb:PutItem", ["MODEL#churn"]),
        ("dynamodb:UpdateItem", ["ALIAS#churn"]),
        ("dynamodb:ConditionCheckItem", ["MODEL#churn"]),
    ]
    scan = needed(_call("dynamodb", "scan", TableName="registry"), RESOURCES)
    assert "dynamodb:LeadingKeys" not in scan[0].context


def test_invoke_publish_and_put_events_name_their_resources() -> None:
    invoke = _call("lambda", "invoke", FunctionName="ingest", Qualifier="live", Payload=b"{}")
    assert _needs(invoke) == [
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ingest:live")
    ]
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    publish = needed(_call("sns", "publish", TopicArn=topic, Message="m"), RESOURCES)
    assert [(n.action, n.resource) for n in publish] == [
        ("sns:Publish", topic),
        ("kms:GenerateDataKey", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"),
        ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"),
    ]
    assert publish[1].context["kms:ViaService"] == f"sns.{REGION}.amazonaws.com"
    events = _call(
        "events",
        "put_events",
        Entries=[{"Source": "mlops.monitor", "DetailType": "DriftDetected", "Detail": "{}"}],
    )
    (event,) = needed(events, RESOURCES)
    assert event.resource == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    assert event.context["events:source"] == "mlops.monitor"


def test_every_action_of_the_exception_table_exists_in_the_service_authorization_reference() -> (
    None
):
    named = {action for actions in EXCEPTIONS.values() for action in actions}
    assert actions_named(sorted(named)) == []
    assert actions_named(["s3:GetObjekt"]) == ["s3:GetObjekt"]
    assert "dynamodb:leadingkeys" in context_keys("dynamodb:GetItem")
    assert "s3:prefix" in context_keys("s3:ListBucket")
    assert "aws:resourcetag/project" in context_keys("s3:GetObject")


ROLE = f"arn:aws:iam::{ACCOUNT}:role/predict"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/predict/fn"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/registry"


def _decide(statement: dict[str, Any], action: str, resource: str, **context: Any) -> Any:
    policy = Policy("p", {"Version": "2012-10-17", "Statement": [statement]})
    request = Request(SESSION, action, resource, context, known_keys=context_keys(action))
    return evaluate(request, [policy], account=ACCOUNT)


LEADING = {
    "Effect": "Allow",
    "Action": ["dynamodb:GetItem", "dynamodb:Query"],
    "Resource": TABLE,
    "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MODEL#churn"]}},
}


@pytest.mark.parametrize(
    ("keys", "allowed"),
    [
        (["MODEL#churn"], True),
        (["MODEL#other"], False),
        (["MODEL#churn", "MODEL#other"], False),
        ([], True),  # ForAllValues over no value holds, as AWS documents
    ],
)
def test_leading_keys_partition_the_table(keys: list[str], allowed: bool) -> None:
    decision = _decide(LEADING, "dynamodb:GetItem", TABLE, **{"dynamodb:LeadingKeys": keys})
    assert decision.allowed is allowed


def test_a_condition_on_a_key_the_evaluator_cannot_know_denies_and_names_it() -> None:
    statement = {**LEADING, "Condition": {"StringEquals": {"dynamodb:NoSuchKey": "x"}}}
    decision = _decide(statement, "dynamodb:GetItem", TABLE)
    assert not decision.allowed
    assert "dynamodb:NoSuchKey" in decision.reason
    operator = {**LEADING, "Condition": {"StringSometimes": {"aws:SourceArn": "x"}}}
    decision = _decide(operator, "dynamodb:GetItem", TABLE)
    assert not decision.allowed and "StringSometimes" in decision.reason


def test_an_explicit_deny_wins_and_a_missing_key_fails_a_positive_condition() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["s3:DeleteObject"],
        "Resource": "arn:aws:s3:::data/raw/*",
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/erasure"}},
    }
    bucket = Policy("bucket policy", {"Statement": [deny]})
    identity = [Policy("p", {"Statement": [allow]})]
    request = Request(
        SESSION,
        "s3:DeleteObject",
        "arn:aws:s3:::data/raw/x",
        {"aws:PrincipalArn": ROLE},
        known_keys=context_keys("s3:DeleteObject"),
    )
    decision = evaluate(request, identity, [bucket], account=ACCOUNT)
    assert not decision.allowed and decision.reason.startswith("explicitly denied by bucket policy")
    other = Request(
        SESSION,
        "s3:DeleteObject",
        "arn:aws:s3:::data/curated/x",
        {"aws:PrincipalArn": ROLE},
        known_keys=context_keys("s3:DeleteObject"),
    )
    assert evaluate(other, identity, [bucket], account=ACCOUNT).allowed


def test_a_kms_key_policy_delegating_to_iam_needs_an_identity_grant() -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"
    key_policy = Policy(
        "key policy",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ]
        },
    )
    grant = Policy(
        "p", {"Statement": [{"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key}]}
    )
    request = Request(
        SESSION, "kms:GenerateDataKey", key, {}, known_keys=context_keys("kms:GenerateDataKey")
    )
    assert evaluate(request, [grant], [key_policy], account=ACCOUNT, kms_key=True).allowed
    assert not evaluate(request, [], [key_policy], account=ACCOUNT, kms_key=True).allowed
    assert not evaluate(request, [grant], [], account=ACCOUNT, kms_key=True).allowed


def test_denials_read_as_aws_writes_them_in_each_service_s_error() -> None:
    caller = Principal(SESSION, ROLE, "role", ACCOUNT)
    denial = Denial(
        caller, "s3:GetObject", "arn:aws:s3:::data/raw/x", "no statement", "s3.GetObject"
    )
    assert denial.message == (
        f"User: {SESSION} is not authorized to perform: s3:GetObject on resource: "
        "arn:aws:s3:::data/raw/x because no identity-based policy allows the s3:GetObject action"
    )
    status, headers, body = denial.response("s3")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    status, _, body = denial.response("dynamodb")
    assert status == 400 and json.loads(body)["__type"] == "AccessDeniedException"
    status, _, body = denial.response("sns")
    assert status == 403 and b"<Code>AuthorizationError</Code>" in body
    kms = Denial(
        caller, "kms:GenerateDataKey", "arn:aws:kms:us-east-1:1:key/k", "no", "sns.Publish"
    )
    status, _, body = kms.response("sns")
    assert status == 400 and b"<Code>KMSAccessDenied</Code>" in body
    explicit = Denial(
        caller, "s3:DeleteObject", "r", "explicitly denied by b (#0)", "x", "resource-based"
    )
    assert explicit.message.endswith("with an explicit deny in a resource-based policy")


def test_sigv4_is_checked_as_api_gateway_checks_it() -> None:
    url = "http://127.0.0.1:3000/v1/predict?x=1"
    body = b'{"instances": []}'
    headers = {"Content-Type": "application/json"}
    signed = signed_headers(url, "POST", body, headers, SigningCredentials("AKIAUSER", "s3cret"))
    lowered = {k.lower(): v for k, v in signed.items()}
    lowered["host"] = "127.0.0.1:3000"
    secrets = {"AKIAUSER": "s3cret"}.get

    verified = sigv4.verify("POST", url, lowered, body, "execute-api", secrets)
    assert isinstance(verified, sigv4.Verified) and verified.access_key == "AKIAUSER"
    tampered = sigv4.verify("POST", url, lowered, body + b" ", "execute-api", secrets)
    assert isinstance(tampered, sigv4.Rejected)
    assert tampered.error_type == "InvalidSignatureException"
    unknown = sigv4.verify("POST", url, lowered, body, "execute-api", lambda key: None)
    assert (
        isinstance(unknown, sigv4.Rejected) and unknown.error_type == "UnrecognizedClientException"
    )
    late = datetime.now(UTC) + timedelta(minutes=16)
    expired = sigv4.verify("POST", url, lowered, body, "execute-api", secrets, now=late)
    assert isinstance(expired, sigv4.Rejected) and expired.message == "Signature expired"
    missing = sigv4.verify("POST", url, {"host": "h"}, body, "execute-api", secrets)
    assert isinstance(missing, sigv4.Rejected) and missing.message == "Missing Authentication Token"


def test_an_sdk_sees_the_denial_as_the_service_s_own_error() -> None:
    caller = Principal(SESSION, ROLE, "role", ACCOUNT)
    denial = Denial(caller, "dynamodb:GetItem", TABLE, "no", "dynamodb.GetItem")
    status, headers, body = denial.response("dynamodb")
    client = boto3.session.Session().client(
        "dynamodb",
        region_name=REGION,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"max_attempts": 0}),
    )
    client.meta.events.register(
        "before-send",
        lambda request, **_: AWSResponse(request.url, status, headers, MockRawResponse(body)),  # type: ignore[arg-type]
    )
    with pytest.raises(ClientError) as error:
        client.get_item(TableName="registry", Key={"pk": {"S": "x"}})
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:GetItem" in error.value.response["Error"]["Message"]


def test_the_least_privilege_check_names_unlisted_unused_grants_and_stale_rows() -> None:
    from pathlib import Path

    from infra.local.authz import usage

    docs = (Path(__file__).resolve().parents[3] / "docs" / "local-cloud.md").read_text()
    rows = usage.documented(docs)
    assert len(rows) >= 20 and all(row.why for row in rows)
    tally = usage.Tally()
    xray = usage.Grant("role PipelineTrainFunctionRole1", "xray:PutTraceSegments", "*")
    write = usage.Grant("role PipelineTrainFunctionRole1", "s3:PutObject", "{Data.Arn}/models/*")
    stray = usage.Grant("role PipelineTrainFunctionRole1", "s3:DeleteObject", "{Data.Arn}/*")
    tally.add([xray, write, stray], [write])
    problems = usage.check(tally, rows)
    assert f"unused grant not in the docs: {stray.line()}" in problems
    assert not any(xray.line() in problem for problem in problems)
    assert any(problem.startswith("the docs list a grant no longer unused") for problem in problems)
    with pytest.raises(ValueError, match="markers are missing"):
        usage.documented("# no table")
