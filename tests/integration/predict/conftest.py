"""A real model (trained with functions.ml on churn rows, exported to ONNX) registered in moto
the way the register stage leaves it, and the predict handler invoked with API Gateway proxy
events built from `events/api_predict.json`."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from functions.common.config import ModelConfig, Task, load_config
from functions.common.contracts import ModelVersion
from functions.common.model_registry import ModelRegistry
from functions.ml.onnx_model import export_onnx
from functions.ml.sample_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, churn_frame
from functions.ml.training import fit_model
from functions.register.logic import version_prefix

if TYPE_CHECKING:
    from tests.integration.conftest import Cloud

REPO = Path(__file__).resolve().parents[3]
MODEL = "churn"
STREAM = "mlops-dev-capture"
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    signature: dict[str, Any]
    rows: list[dict[str, Any]]


def _train(c: float, seed: int) -> Trained:
    config = load_config(REPO / "mlops.toml")
    schema = config.dataset.features
    assert schema is not None
    frame = churn_frame(300, seed=seed, duplicate_share=0.0)
    fitted = fit_model(
        frame,
        target="churned",
        task=Task.CLASSIFICATION,
        schema=schema,
        model=ModelConfig(params={"C": c, "max_iter": 1000}),
        estimator="logistic_regression",
    )
    onnx, signature = export_onnx(
        fitted.pipeline, schema=schema, target="churned", task=Task.CLASSIFICATION, train=frame
    )
    rows = churn_frame(50, seed=seed + 100, duplicate_share=0.0)[FEATURES]
    records = [
        {k: (None if v != v else v) for k, v in row.items()}
        for row in rows.astype(object).to_dict("records")
    ]
    return Trained(onnx, signature.to_dict(), records)


@pytest.fixture(scope="session")
def models() -> dict[int, Trained]:
    """Two different models: version 1 and version 2 answer differently."""
    return {1: _train(1.0, 5), 2: _train(0.001, 6)}


def publish(
    cloud: Cloud, trained: Trained, *, promote: bool = True, tamper: bool = False
) -> ModelVersion:
    """Register `trained` as the next version (artifacts under models/churn/<n>/, version item,
    alias), as the register stage does; `tamper` uploads bytes that do not match the hash."""
    registry = ModelRegistry(cloud.table)
    number = registry.allocate_version(MODEL)
    prefix = version_prefix(MODEL, number)
    body = trained.onnx + b"tampered" if tamper else trained.onnx
    cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + "model.onnx", Body=body)
    for name, document in {
        "signature.json": trained.signature,
        "metadata.json": {"model_name": MODEL, "version": number},
    }.items():
        cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + name, Body=json.dumps(document))
    version = ModelVersion(
        model_name=MODEL,
        version=number,
        prefix=prefix,
        onnx_key=prefix + "model.onnx",
        onnx_sha256=hashlib.sha256(trained.onnx).hexdigest(),
        run_id=f"run-{number}",
        data_version="d1",
        data_versions=["d1"],
        metrics={"roc_auc": 0.8 + number / 100},
        created_at="2026-01-01T00:00:00.000Z",
        model_card_key=f"reports/{MODEL}/{number}/x.html",
        promoted=False,
    )
    registry.put_version(version)
    if promote:
        current = registry.get_alias(MODEL)
        registry.promote(
            MODEL, number, expected_current=current.version if current else None, reason="test"
        )
    return version


class Api:
    """Invoke `lambda_handler` with proxy events; `clock` drives the alias TTL."""

    def __init__(self, handler: Any, logic: Any) -> None:
        self.handler = handler
        self.logic = logic
        self.now = 0.0
        self.template = json.loads((REPO / "events" / "api_predict.json").read_text())
        self._ids = 0

    def event(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        event = copy.deepcopy(self.template)
        self._ids += 1
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["requestContext"]["requestId"] = f"req-{self._ids:06d}"
        event["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
        if headers is not None:
            event["headers"] = headers
            event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
        return event

    def reset(self) -> None:
        """A fresh container: config and service rebuilt from the environment."""
        from functions.common.config import deployed_config

        deployed_config.cache_clear()
        self.logic.service.cache_clear()
        self.logic.service().store.clock = lambda: self.now

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = self.handler.lambda_handler(self.event(method, path, body, **kwargs), Context())
        return response["statusCode"], json.loads(response["body"])


@dataclass
class Context:
    function_name: str = "mlops-dev-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-predict"
    aws_request_id: str = "5d7b4a1e-0000-4000-8000-000000000002"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def serving_config(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def configure(**serving: Any) -> None:
        config = load_config(REPO / "mlops.toml")
        updated = config.model_copy(
            update={
                "serving": config.serving.model_copy(update={"alias_ttl_seconds": 5, **serving})
            }
        )
        monkeypatch.setenv("MLOPS_CONFIG_JSON", updated.to_json())

    return configure


@pytest.fixture
def capture_stream(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> str:
    boto3.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{cloud.bucket}",
            "Prefix": "capture/",
        },
    )
    monkeypatch.setenv("CAPTURE_STREAM", STREAM)
    return STREAM


@pytest.fixture
def api(
    cloud: Cloud,
    serving_config: Callable[..., None],
    trimmed_botocore_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    """The handler as deployed: its AWS clients read the trimmed botocore data."""
    from functions.common.aws import SLIM_DATA_ENV
    from functions.predict import handler, logic

    monkeypatch.setenv(SLIM_DATA_ENV, str(trimmed_botocore_data))
    if "MLOPS_CONFIG_JSON" not in os.environ:
        serving_config()
    client = Api(handler, logic)
    client.reset()
    yield client
    logic.service.cache_clear()
