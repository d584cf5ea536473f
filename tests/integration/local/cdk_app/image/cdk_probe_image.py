"""The probe app's container-image function: a nightly summary of the bucket."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def summarize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3 = boto3.client("s3")
    bucket = os.environ["BUCKET"]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    summary = {"job": event["job"], "objects": len(keys)}
    s3.put_object(Bucket=bucket, Key="reports/summary.json", Body=json.dumps(summary))
    return summary
