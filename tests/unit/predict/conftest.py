"""A real ONNX model (trained in-process, no AWS) served through a ModelStore whose registry
and bucket are fakes; `logic.service` is replaced so handler tests need no network."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.common.config.serving import ServingConfig
from functions.common.contracts import AliasState, ModelVersion
from tests.helpers.models import Trained, trained_churn
from tests.helpers.predict_api import CONTEXT, api_event
from tests.helpers.registry import model_version


@pytest.fixture(scope="session")
def trained() -> Trained:
    return trained_churn(200, seed=3)


class FakeRegistry:
    def __init__(self, trained: Trained) -> None:
        self.version = model_version(1, trained, promoted=True)

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

    def store(
        self, items: list[dict[str, Any]], lookback_hours: int | None = None
    ) -> dict[str, int]:
        self.items.extend(items)
        return {"stored": len(items), "duplicates": 0}


@pytest.fixture
def make_service(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    from functions.common.sensitive import SensitiveColumns
    from functions.predict import logic
    from functions.predict.model_store import ModelStore
    from functions.predict.models import ModelCache, Served

    def make(**serving: Any) -> Any:
        registry = FakeRegistry(trained)
        config = ServingConfig(**serving)

        def served(name: str) -> Served:
            store = ModelStore(
                model_name=name,
                registry=registry,  # type: ignore[arg-type]
                fetch_bytes=lambda key: trained.onnx,
                fetch_json=lambda key: trained.signature,
                ttl_seconds=60,
            )
            return Served(
                name=name,
                store=store,
                serving=config,
                sensitive=SensitiveColumns(),
                feedback_lookback_hours=24,
            )

        svc = logic.Service(
            settings=logic.PredictSettings(data_bucket="b", registry_table="t"),
            serving=config,
            models=ModelCache(
                names=["churn"], default="churn", make=served, cap_bytes=config.model_cache_bytes
            ),
            registry=registry,  # type: ignore[arg-type]
            capture=None,
            feedback=FakeFeedback(),  # type: ignore[arg-type]
        )
        monkeypatch.setattr(logic, "service", lambda: svc)
        return svc

    return make


@pytest.fixture
def call(make_service: Callable[..., Any]) -> Iterator[Callable[..., tuple[int, Any]]]:
    from functions.predict import handler

    make_service()

    def invoke(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(api_event(method, path, body, **kwargs), CONTEXT)
        return response["statusCode"], json.loads(response["body"])

    yield invoke
