"""Authorization rules of the data stores, S3 and DynamoDB: the object or table (index) ARN a
call acts on, its condition keys (`s3:prefix`, `dynamodb:LeadingKeys`, ...), the actions of a
batch's or transaction's parts, and the KMS actions on the customer managed key that encrypts
the bucket or table (with `kms:ViaService`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from infra.local.authz.needs import Needed, Resources, own_action
from infra.local.authz.reference import resource_types
from infra.local.aws_calls import AwsCall

# S3


def s3(call: AwsCall, res: Resources) -> list[Needed]:
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
    action = own_action(call, "s3")
    kinds = resource_types(action)
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


def dynamodb(call: AwsCall, res: Resources) -> list[Needed]:
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
    action = own_action(call, "dynamodb")
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
