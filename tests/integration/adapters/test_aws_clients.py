"""Clients from botocore's data trimmed to a function's services (`infra.cdk.cold_start`,
`MLOPS_BOTOCORE_DATA`): the same API and the same endpoints as with botocore's own data, a
clear error for a service left out, and botocore's own data when the copy cannot be used."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.loaders
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import UnknownServiceError
from botocore.model import ServiceModel

from functions.adapters import aws
from infra.cdk.cold_start import (
    PREDICT_SERVICES,
    BotocoreDataError,
    write_slim_data,
)

BOTOCORE = Path(botocore.__file__).parent


@pytest.fixture
def clean_clients() -> Iterator[None]:
    aws.reset_clients()
    yield
    aws.reset_clients()


class _Sent(Exception):
    """Raised instead of sending: carries the URL the request would have gone to."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _refuse(request: Any, **_: Any) -> None:
    raise _Sent(request.url)


def _url_of(client: Any, operation: str, params: dict[str, Any]) -> str:
    client.meta.events.register("before-send", _refuse)
    with pytest.raises(_Sent) as sent:
        getattr(client, operation)(**params)
    return sent.value.url


def _loader_session(data: Path | None) -> boto3.session.Session:
    core = botocore.session.Session()
    if data is not None:
        core.register_component("data_loader", aws._TrimmedDataLoader(str(data)))
    return boto3.session.Session(botocore_session=core)


CALLS = {
    "s3": ("get_object", {"Bucket": "mlops-dev-data", "Key": "models/churn/1/model.onnx"}),
    "dynamodb": ("get_item", {"TableName": "registry", "Key": {"pk": {"S": "MODEL#churn"}}}),
    "firehose": (
        "put_record_batch",
        {"DeliveryStreamName": "capture", "Records": [{"Data": b"{}\n"}]},
    ),
    "events": ("put_events", {"Entries": [{"Source": "mlops", "DetailType": "x", "Detail": "{}"}]}),
}


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"])
@pytest.mark.parametrize(
    "settings",
    [{}, {"use_fips_endpoint": True}, {"use_dualstack_endpoint": True}],
    ids=["default", "fips", "dualstack"],
)
def test_requests_go_where_botocores_own_data_sends_them(
    trimmed_botocore_data: Path,
    region: str,
    settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = Config(region_name=region, **settings)
    full, slim = _loader_session(None), _loader_session(trimmed_botocore_data)
    urls = {}
    for service, (operation, params) in CALLS.items():
        try:
            expected = _url_of(full.client(service, config=config), operation, params)
        except Exception as exc:  # e.g. no FIPS endpoint in that partition: the same error
            with pytest.raises(type(exc)):
                _url_of(slim.client(service, config=config), operation, params)
            continue
        urls[service] = expected
        assert _url_of(slim.client(service, config=config), operation, params) == expected
    assert "s3" in urls or settings


@pytest.mark.parametrize("service", PREDICT_SERVICES)
def test_trimmed_models_have_every_operation_shape_and_member(
    trimmed_botocore_data: Path, service: str
) -> None:
    full = ServiceModel(botocore.loaders.Loader().load_service_model(service, "service-2"))
    slim = ServiceModel(
        aws._TrimmedDataLoader(str(trimmed_botocore_data)).load_service_model(service, "service-2")
    )
    assert slim.metadata == full.metadata
    assert slim.operation_names == full.operation_names
    assert slim.shape_names == full.shape_names
    for name in full.shape_names:
        a, b = full.shape_for(name), slim.shape_for(name)
        assert (a.type_name, a.serialization, a.metadata) == (
            b.type_name,
            b.serialization,
            b.metadata,
        )
        if a.type_name == "structure":
            assert list(a.members) == list(b.members)
    assert slim.client_context_parameters == full.client_context_parameters
    size = sum(f.stat().st_size for f in (trimmed_botocore_data / service).rglob("*"))
    assert size < 400_000


def test_predicts_clients_come_from_the_copy_and_work(
    trimmed_botocore_data: Path,
    mocked_aws: None,
    clean_clients: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(aws.SLIM_DATA_ENV, str(trimmed_botocore_data))
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="mlops-dev-data")
    s3.put_object(Bucket="mlops-dev-data", Key="models/x", Body=b"onnx")
    assert s3.get_object(Bucket="mlops-dev-data", Key="models/x")["Body"].read() == b"onnx"
    session = aws._sessions[str(trimmed_botocore_data)]
    assert session._session.get_component("data_loader").search_paths[0] == str(
        trimmed_botocore_data
    )
    # Functions without the variable (on the local cloud, in the same process) keep their own.
    monkeypatch.delenv(aws.SLIM_DATA_ENV)
    assert aws.client("s3") is not s3


def test_a_service_left_out_of_the_copy_fails_naming_it(
    trimmed_botocore_data: Path, clean_clients: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(aws.SLIM_DATA_ENV, str(trimmed_botocore_data))
    with pytest.raises(UnknownServiceError, match=r"lambda \(not in the trimmed botocore data"):
        aws.client("lambda")


@pytest.mark.parametrize("problem", ["missing", "other_botocore"])
def test_a_copy_that_cannot_be_used_is_named_and_botocores_own_data_read(
    trimmed_botocore_data: Path,
    tmp_path: Path,
    problem: str,
    clean_clients: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    data = tmp_path / "copy"
    if problem == "other_botocore":
        write_slim_data(BOTOCORE, data, ["s3"])
        (data / "VERSION").write_text("1.0.0\n")
    monkeypatch.setenv(aws.SLIM_DATA_ENV, str(data))
    with caplog.at_level(logging.WARNING, logger="functions.adapters.aws"):
        client = aws.client("lambda")  # not in any copy: botocore's own data has it
    assert client.meta.service_model.service_name == "lambda"
    (record,) = caplog.records
    assert str(data) in record.getMessage()
    if problem == "other_botocore":
        assert f"botocore 1.0.0, this is botocore {botocore.__version__}" in record.getMessage()


def test_writing_a_copy_for_an_unknown_service_names_it(tmp_path: Path) -> None:
    with pytest.raises(BotocoreDataError, match="no service model for no-such-service"):
        write_slim_data(BOTOCORE, tmp_path / "copy", ["s3", "no-such-service"])
    with pytest.raises(BotocoreDataError, match="not a botocore data directory"):
        write_slim_data(tmp_path, tmp_path / "copy", ["s3"])
