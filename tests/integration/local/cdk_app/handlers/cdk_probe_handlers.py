"""The probe app's zip function: rejects drops starting with "bad", registers the others."""

from __future__ import annotations

import os
from typing import Any

import boto3


class InvalidDropError(Exception):
    """The drop's content is rejected."""


def validate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bucket = event["detail"]["bucket"]["name"]
    key = event["detail"]["object"]["key"]
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    if body.startswith(b"bad"):
        raise InvalidDropError(f"{key} starts with 'bad'")
    boto3.client("dynamodb").put_item(
        TableName=os.environ["TABLE"], Item={"pk": {"S": key}, "size": {"N": str(len(body))}}
    )
    return {"key": key, "bytes": len(body)}
