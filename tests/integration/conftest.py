"""AWS, faked by moto: the data bucket (versioned) and the registry table, created the way the
stack creates them, with the environment the stage functions get."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.adapters.aws import reset_clients
from functions.common.config.loading import deployed_config
from functions.common.events import MODEL_PROMOTED, REGISTRY_SOURCE
from functions.common.settings import stage_settings
from tests.helpers.cloud import BUCKET, TABLE, Cloud, create_data_bucket, create_registry_table

REPO = Path(__file__).resolve().parents[2]


def _clear_caches() -> None:
    deployed_config.cache_clear()
    stage_settings.cache_clear()
    reset_clients()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "MLOPS_CONFIG_JSON",
        "AWS_LAMBDA_FUNCTION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("DATA_BUCKET", BUCKET)
    monkeypatch.setenv("REGISTRY_TABLE", TABLE)
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("CODE_VERSION", "test1234")
    monkeypatch.setenv("MLOPS_CONFIG", str(REPO / "mlops.toml"))
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture(scope="session")
def trimmed_botocore_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """botocore's data trimmed to predict's services, as the serving layer carries it."""
    import botocore

    from infra.cdk.cold_start import SLIM_DATA_DIR, write_slim_data

    return write_slim_data(
        Path(botocore.__file__).parent, tmp_path_factory.mktemp("layer") / SLIM_DATA_DIR
    )


@pytest.fixture
def mocked_aws(aws_environment: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def cloud(mocked_aws: None) -> Cloud:
    s3 = boto3.client("s3", region_name="us-east-1")
    create_data_bucket(s3)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    create_registry_table(dynamodb)
    return Cloud(s3=s3, dynamodb=dynamodb)


Received = Callable[[], list[dict[str, Any]]]


Subscribe = Callable[..., Received]


@pytest.fixture
def subscribe_events() -> Subscribe:
    """`subscribe_events(sqs, events, source, detail_type)`: a queue subscribed through an
    EventBridge rule to those events; returns a function giving the details received since
    last asked."""

    def subscribe(sqs: Any, events: Any, source: str, detail_type: str) -> Received:
        name = detail_type.lower()
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = {"source": [source], "detail-type": [detail_type]}
        events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])

        def received() -> list[dict[str, Any]]:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return [json.loads(message["Body"])["detail"] for message in messages]

        return received

    return subscribe


@pytest.fixture
def subscribe_promotions(subscribe_events: Subscribe) -> Callable[[Any, Any], Received]:
    """`subscribe_promotions(sqs, events)`: ModelPromoted events, as a queue gets them."""

    def subscribe(sqs: Any, events: Any) -> Received:
        return subscribe_events(sqs, events, REGISTRY_SOURCE, MODEL_PROMOTED)

    return subscribe


@pytest.fixture
def promotions(cloud: Cloud, subscribe_promotions: Callable[[Any, Any], Received]) -> Received:
    """ModelPromoted events, as a queue subscribed through an EventBridge rule receives them."""
    return subscribe_promotions(boto3.client("sqs"), boto3.client("events"))
