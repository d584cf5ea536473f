"""CloudWatch Logs subscription filters to Firehose in the local cloud
(`infra.local.log_subscriptions`): only the events a filter's pattern matches are sent, a
pattern the local cloud does not implement is refused when the filter is put, and Firehose's
record processing (decompression, message extraction, a newline per record) leaves the log
messages themselves in the bucket, one per line."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.local import hooks
from infra.local.log_subscriptions import UnsupportedFilterPattern, compile_pattern, processed

GROUP = "/aws/lambda/predict"
PATTERN = '{ $.record = "capture" }'
EXTRACT = {
    "Enabled": True,
    "Processors": [
        {
            "Type": "Decompression",
            "Parameters": [{"ParameterName": "CompressionFormat", "ParameterValue": "GZIP"}],
        },
        {
            "Type": "CloudWatchLogProcessing",
            "Parameters": [{"ParameterName": "DataMessageExtraction", "ParameterValue": "true"}],
        },
        {"Type": "AppendDelimiterToRecord"},
    ],
}


@pytest.mark.parametrize(
    ("message", "matched"),
    [
        ('{"record":"capture","rows":2}', True),
        ('{"record": "capture"}', True),
        ('{"record":"captured"}', False),
        ('{"record":["capture"]}', False),
        ('{"level":"INFO","message":"{\\"record\\":\\"capture\\"}"}', False),
        ("START RequestId: 1 Version: $LATEST", False),
        ('{"record":"capture"', False),
        ('{"other":1}', False),
    ],
)
def test_the_json_equality_pattern_matches_as_cloudwatch_logs_does(
    message: str, matched: bool
) -> None:
    assert compile_pattern(PATTERN)(message) is matched


def test_conjunctions_numbers_nested_paths_and_not_equal() -> None:
    matches = compile_pattern('{ $.a.b = 3 && $.c != "x" }')
    assert matches('{"a":{"b":3.0},"c":"y"}')
    assert not matches('{"a":{"b":3},"c":"x"}')
    assert not matches('{"a":{"b":3}}')  # a missing property matches neither = nor !=
    assert compile_pattern("")("anything at all")


@pytest.mark.parametrize(
    "pattern",
    ["ERROR", '{ $.record = "cap*" }', "{ $.a = 1 || $.b = 2 }", "[ip, user]", "{ $.a > 1 }"],
)
def test_patterns_the_local_cloud_does_not_implement_are_refused(pattern: str) -> None:
    with pytest.raises(UnsupportedFilterPattern, match="local cloud"):
        compile_pattern(pattern)


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        hooks.install()
        s3, logs, firehose = (
            boto3.client(name, region_name="us-east-1") for name in ("s3", "logs", "firehose")
        )
        s3.create_bucket(Bucket="data")
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName="s")
        yield {"s3": s3, "logs": logs, "firehose": firehose}


def _now() -> int:
    return int(time.time() * 1000)


def _stream(aws: dict[str, Any], name: str, processing: dict[str, Any] | None) -> str:
    destination: dict[str, Any] = {
        "RoleARN": "arn:aws:iam::123456789012:role/firehose",
        "BucketARN": "arn:aws:s3:::data",
        "Prefix": f"{name}/",
    }
    if processing:
        destination["ProcessingConfiguration"] = processing
    return str(
        aws["firehose"].create_delivery_stream(
            DeliveryStreamName=name, ExtendedS3DestinationConfiguration=destination
        )["DeliveryStreamARN"]
    )


def _bodies(aws: dict[str, Any], prefix: str) -> list[bytes]:
    listed = aws["s3"].list_objects_v2(Bucket="data", Prefix=prefix).get("Contents", [])
    return [aws["s3"].get_object(Bucket="data", Key=item["Key"])["Body"].read() for item in listed]


def test_only_matching_events_reach_the_bucket_one_message_per_line(aws: dict[str, Any]) -> None:
    arn = _stream(aws, "capture", EXTRACT)
    aws["logs"].put_subscription_filter(
        logGroupName=GROUP,
        filterName="capture",
        filterPattern=PATTERN,
        destinationArn=arn,
        roleArn="arn:aws:iam::123456789012:role/logs",
    )
    records = ['{"record":"capture","request_id":"a"}', '{"record":"capture","request_id":"b"}']
    messages = ["START RequestId: x", records[0], '{"level":"INFO"}', records[1], "END"]
    aws["logs"].put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": _now() + i, "message": m} for i, m in enumerate(messages)],
    )
    aws["logs"].put_log_events(
        logGroupName=GROUP,
        logStreamName="s",
        logEvents=[{"timestamp": _now(), "message": "REPORT RequestId: x"}],
    )

    assert _bodies(aws, "capture/") == [("\n".join(records) + "\n").encode()]


def test_without_processing_firehose_delivers_cloudwatch_logs_gzipped_batches(
    aws: dict[str, Any],
) -> None:
    arn = _stream(aws, "raw", None)
    aws["logs"].put_subscription_filter(
        logGroupName=GROUP, filterName="all", filterPattern="", destinationArn=arn, roleArn="r"
    )
    aws["logs"].put_log_events(
        logGroupName=GROUP, logStreamName="s", logEvents=[{"timestamp": _now(), "message": "hello"}]
    )

    [body] = _bodies(aws, "raw/")
    batch = json.loads(gzip.decompress(body))
    assert batch["messageType"] == "DATA_MESSAGE" and batch["logGroup"] == GROUP
    assert [event["message"] for event in batch["logEvents"]] == ["hello"]


def test_an_unimplemented_pattern_is_refused_when_the_filter_is_put(aws: dict[str, Any]) -> None:
    arn = _stream(aws, "capture", EXTRACT)
    with pytest.raises(ClientError, match="local cloud"):
        aws["logs"].put_subscription_filter(
            logGroupName=GROUP,
            filterName="capture",
            filterPattern='{ $.record = "cap*" }',
            destinationArn=arn,
            roleArn="r",
        )


def test_control_messages_are_dropped_and_unknown_processors_refused() -> None:
    control = gzip.compress(
        json.dumps({"messageType": "CONTROL_MESSAGE", "logEvents": []}).encode()
    )
    assert processed(control, EXTRACT) == []
    with pytest.raises(ValueError, match="Lambda"):
        processed(b"x", {"Enabled": True, "Processors": [{"Type": "Lambda"}]})
