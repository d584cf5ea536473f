"""A real ONNX model (trained in-process, no AWS) served through a ModelStore whose registry
and bucket are fakes; `logic.service` is replaced so handler tests need no network."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.common.config import ModelConfig, ServingConfig, Task, load_config
from functions.common.contracts import AliasState, ModelVersion
from functions.ml.onnx_model import export_onnx
from functions.ml.sample_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, churn_frame
from functions.ml.training import fit_model

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mlops")

REPO = Path(__file__).resolve().parents[3]
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    signature: dict[str, Any]
    row: dict[str, Any]


@pytest.fixture(scope="session")
def trained() -> Trained:
    config = load_config(REPO / "mlops.toml")
    schema = config.dataset.features
    assert schema is not None
    frame = churn_frame(200, seed=3, duplicate_share=0.0)
    fitted = fit_model(
        frame,
        target="churned",
        task=Task.CLASSIFICATION,
        schema=schema,
        model=ModelConfig(params={"C": 1.0, "max_iter": 1000}),
        estimator="logistic_regression",
    )
    onnx, signature = export_onnx(
        fitted.pipeline, schema=schema, target="churned", task=Task.CLASSIFICATION, train=frame
    )
    row = {k: v.item() if hasattr(v, "item") else v for k, v in frame[FEATURES].iloc[0].items()}
    return Trained(onnx, signature.to_dict(), row)


class FakeRegistry:
    def __init__(self, trained: Trained) -> None:
        self.version = ModelVersion(
            model_name="churn",
            version=1,
            prefix="models/churn/1/",
            onnx_key="models/churn/1/model.onnx",
            onnx_sha256=hashlib.sha256(trained.onnx).hexdigest(),
            run_id="r1",
            data_version="d1",
            data_versions=["d1"],
            metrics={"roc_auc": 0.8},
            created_at="2026-01-01T00:00:00.000Z",
            model_card_key="reports/x",
            promoted=True,
        )

    def get_alias(self, model: str, alias: str = "production") -> AliasState:
        return AliasState(
            model_name=model,
            alias=alias,
            version=1,
            previous_version=None,
            updated_at="2026-01-02T00:00:00.000Z",
            execution=None,
            reason="test",
            revision=1,
        )

    def get_version(self, model: str, version: int) -> ModelVersion:
        return self.version


class FakeFeedback:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def store(self, items: list[dict[str, Any]]) -> dict[str, int]:
        self.items.extend(items)
        return {"stored": len(items), "duplicates": 0}


@pytest.fixture
def make_service(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    from functions.predict import logic
    from functions.predict.model_store import ModelStore

    def make(**serving: Any) -> Any:
        store = ModelStore(
            model_name="churn",
            registry=FakeRegistry(trained),  # type: ignore[arg-type]
            fetch_bytes=lambda key: trained.onnx,
            fetch_json=lambda key: trained.signature,
            ttl_seconds=60,
        )
        svc = logic.Service(
            settings=logic.PredictSettings(data_bucket="b", registry_table="t"),
            serving=ServingConfig(**serving),
            store=store,
            capture=None,
            feedback=FakeFeedback(),  # type: ignore[arg-type]
        )
        monkeypatch.setattr(logic, "service", lambda: svc)
        return svc

    return make


@dataclass
class Context:
    function_name: str = "mlops-dev-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-predict"
    aws_request_id: str = "5d7b4a1e-0000-4000-8000-000000000003"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


TEMPLATE = json.loads((REPO / "events" / "api_predict.json").read_text())


def event(
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    result = copy.deepcopy(TEMPLATE)
    result["httpMethod"] = method
    result["path"] = path
    result["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
    if headers is not None:
        result["headers"] = headers
        result["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return result


@pytest.fixture
def call(make_service: Callable[..., Any]) -> Iterator[Callable[..., tuple[int, Any]]]:
    from functions.predict import handler

    make_service()

    def invoke(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(event(method, path, body, **kwargs), Context())
        return response["statusCode"], json.loads(response["body"])

    yield invoke
