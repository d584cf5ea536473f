"""One predict function serving three configured models against moto, with real ONNX models:
each route reaches the model it names, an unknown model is a 404 listing the served ones (and
reads nothing), models load on first use into an LRU cache bounded by its cap, each model
follows its own alias TTL and rollout, a version is served by number (sha256-checked), and the
metrics carry the model they are about."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from functions.adapters.registry.aliases import CANDIDATE
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.loading import parse_config
from tests.helpers import REPO
from tests.helpers.models import Trained
from tests.helpers.predict_api import Api
from tests.helpers.registry import publish
from tests.integration.predict.test_handler import expected

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

A, B, C = "churn-a", "churn-b", "churn-c"


@pytest.fixture
def portfolio(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Configure three models of the churn dataset, `churn-a` the default; `overrides` are
    each model's `[models.<name>.serving]`."""

    def configure(**overrides: dict[str, Any]) -> None:
        raw = tomllib.loads((REPO / "mlops.toml").read_text())
        raw["project"]["default_model"] = A
        raw["model"].pop("name", None)
        raw["serving"] = {**raw.get("serving", {}), "alias_ttl_seconds": 5}
        raw["models"] = {
            name: {"dataset": "churn", "serving": overrides.get(name.replace("-", "_"), {})}
            for name in (A, B, C)
        }
        monkeypatch.setenv("MLOPS_CONFIG_JSON", parse_config(raw).to_json())

    return configure


@pytest.fixture
def api3(api: Api, portfolio: Callable[..., None]) -> Api:
    portfolio()
    api.reset()
    return api


def _emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def _rows(trained: Trained) -> list[dict[str, Any]]:
    return trained.rows[:4]


def _tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` as Open Inference Protocol input tensors, one `[n, 1]` tensor per feature."""
    return [
        {
            "name": name,
            "shape": [len(rows), 1],
            "datatype": "BYTES" if isinstance(rows[0][name], str) else "FP32",
            "data": [row[name] for row in rows],
        }
        for name in rows[0]
    ]


def test_each_route_answers_with_the_model_it_names(
    api3: Api, cloud: Cloud, models: dict[int, Trained], capsys: pytest.CaptureFixture[str]
) -> None:
    publish(cloud, models[1], model=A)
    publish(cloud, models[2], model=B)
    rows = _rows(models[1])

    status, body = api3.call("POST", f"/v1/models/{B}/predict", {"instances": rows})
    assert status == 200, body
    assert (body["model_name"], body["model_version"]) == (B, 1)
    np.testing.assert_allclose(
        body["probabilities"], expected(models[2], rows).probabilities, atol=1e-7
    )
    default = api3.call("POST", "/v1/predict", {"instances": rows})[1]
    assert default["model_name"] == A
    np.testing.assert_allclose(
        default["probabilities"], expected(models[1], rows).probabilities, atol=1e-7
    )
    inputs = _tensors(rows)
    status, v2 = api3.call("POST", f"/v2/models/{B}/infer", {"inputs": inputs})
    assert status == 200, v2
    assert v2["model_name"] == B
    assert api3.call("GET", f"/v1/models/{B}")[1]["model_name"] == B
    assert api3.call("GET", f"/v2/models/{B}")[1]["name"] == B
    assert api3.call("GET", "/v1/model")[1]["model_name"] == A

    # A configured model with nothing promoted: 503 on its routes, listed as no_model.
    status, body = api3.call("POST", f"/v1/models/{C}/predict", {"instances": rows})
    assert (status, body["error"]) == (503, "no_model")
    status, listing = api3.call("GET", "/v1/models")
    assert status == 200
    assert listing["default_model"] == A
    assert [
        (m["name"], m["default"], m["status"], m["production_version"]) for m in listing["models"]
    ] == [(A, True, "ready", 1), (B, False, "ready", 1), (C, False, "no_model", None)]
    assert {m["name"]: m["loaded"] for m in listing["models"]} == {A: True, B: True, C: False}

    # Every request metric carries the model it served.
    blobs = [blob for blob in _emf(capsys.readouterr().out) if "Predictions" in blob]
    assert sorted(blob["model"] for blob in blobs) == [A, B, B]
    assert all(
        blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]]
        for blob in blobs
    )


def test_an_unknown_model_is_404_listing_the_models_and_reads_nothing(
    api3: Api, cloud: Cloud, models: dict[int, Trained], capsys: pytest.CaptureFixture[str]
) -> None:
    publish(cloud, models[1], model=A)
    assert api3.call("GET", f"/v1/models/{A}")[0] == 200  # publishes no metric
    publish(cloud, models[2], model="not-configured")  # in the registry and bucket, not served
    rows = _rows(models[1])
    for method, path, body in (
        ("POST", "/v1/models/not-configured/predict", {"instances": rows}),
        ("GET", "/v1/models/not-configured", None),
        ("POST", "/v2/models/not-configured/infer", {"inputs": []}),
        ("GET", "/v2/models/not-configured", None),
        ("GET", "/v2/models/not-configured/versions/1", None),
        ("POST", "/v1/models/not-configured/feedback", {"feedback": []}),
    ):
        status, answer = api3.call(method, path, body)
        assert status == 404, (path, answer)
        # v2 routes answer the Open Inference Protocol's error object: the sentence as
        # `error`, the code as `code`.
        v2 = path.startswith("/v2/")
        assert answer["code" if v2 else "error"] == "model_not_found"
        assert answer["models"] == [A, B, C]
        assert "available models: churn-a, churn-b, churn-c" in answer["error" if v2 else "message"]
    assert set(api3.logic.service().models.loaded) == {A}
    # The refusals are counted without a model (the previous request's does not leak in).
    errors = [blob for blob in _emf(capsys.readouterr().out) if "ClientErrors" in blob]
    assert len(errors) == 6 and not any("model" in blob for blob in errors)


def test_models_load_on_first_use_and_the_least_recently_used_is_unloaded_past_the_cap(
    api3: Api, cloud: Cloud, models: dict[int, Trained], capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (A, B, C):
        publish(cloud, models[1], model=name)
    size = len(models[1].onnx)
    cache = api3.logic.service().models
    cache.cap_bytes = int(size * 2.5)  # two models fit, three do not
    rows = _rows(models[1])

    def predict(name: str) -> None:
        status, body = api3.call("POST", f"/v1/models/{name}/predict", {"instances": rows})
        assert status == 200 and body["model_name"] == name, body

    capsys.readouterr()
    predict(A)
    predict(B)
    assert cache.loaded == {A: size, B: size}
    predict(C)  # A is the least recently used
    assert cache.loaded == {B: size, C: size}
    predict(B)  # a hit: B becomes the most recent
    predict(A)  # loaded again; C is now the least recently used
    assert cache.loaded == {B: size, A: size}
    blobs = _emf(capsys.readouterr().out)
    loads = [blob["model"] for blob in blobs if "ModelsLoaded" in blob]
    unloads = [blob["model"] for blob in blobs if "ModelsUnloaded" in blob]
    assert loads == [A, B, C, A]
    assert unloads == [A, C]


def test_each_model_follows_its_own_alias_ttl(
    api: Api, portfolio: Callable[..., None], cloud: Cloud, models: dict[int, Trained]
) -> None:
    portfolio(churn_b={"alias_ttl_seconds": 100})
    api.reset()
    rows = _rows(models[1])
    for name in (A, B):
        publish(cloud, models[1], model=name)

    def version(name: str) -> int:
        status, body = api.call("POST", f"/v1/models/{name}/predict", {"instances": rows})
        assert status == 200, body
        return int(body["model_version"])

    assert (version(A), version(B)) == (1, 1)
    for name in (A, B):
        publish(cloud, models[2], model=name)
    api.now += 10
    assert (version(A), version(B)) == (2, 1)  # A re-read its alias after 5 s, B waits 100 s
    api.now += 100
    assert version(B) == 2


def test_only_the_model_with_a_rollout_routes_to_its_candidate(
    api: Api, portfolio: Callable[..., None], cloud: Cloud, models: dict[int, Trained]
) -> None:
    portfolio(churn_b={"candidate_share": 0.5, "candidate_min_requests": 1000})
    api.reset()
    registry = ModelRegistry(cloud.table)
    for name in (A, B):
        publish(cloud, models[1], model=name)
        candidate = publish(cloud, models[2], model=name, promote=False)
        registry.promote(
            name, candidate.version, expected_current=None, reason="canary", alias=CANDIDATE
        )
    cache = api.logic.service().models
    cache.served(B).store.random = random.Random(7)
    rows = _rows(models[1])

    def aliases(name: str) -> set[str]:
        answers = [
            api.call("POST", f"/v1/models/{name}/predict", {"instances": rows})[1]
            for _ in range(12)
        ]
        return {answer["alias"] for answer in answers}

    assert aliases(A) == {"production"}
    assert aliases(B) == {"production", "candidate"}


def test_a_version_is_served_by_number_and_checked_like_any(
    api3: Api, cloud: Cloud, models: dict[int, Trained], capsys: pytest.CaptureFixture[str]
) -> None:
    publish(cloud, models[1], model=B)
    publish(cloud, models[2], model=B)  # production is version 2
    publish(cloud, models[1], model=B, promote=False, tamper=True)  # version 3: bad bytes
    rows = _rows(models[1])

    status, metadata = api3.call("GET", f"/v2/models/{B}/versions/1")
    assert status == 200, metadata
    assert (metadata["name"], metadata["versions"]) == (B, ["1"])
    inputs = _tensors(rows)
    status, body = api3.call("POST", f"/v2/models/{B}/versions/1/infer", {"inputs": inputs})
    assert status == 200, body
    assert (body["model_version"], body["parameters"]["alias"]) == ("1", "version")
    np.testing.assert_allclose(
        body["outputs"][1]["data"],
        expected(models[1], rows).probabilities.reshape(-1),
        atol=1e-6,
    )
    # Production is untouched by the versioned request.
    assert api3.call("GET", f"/v2/models/{B}")[1]["versions"] == ["2"]
    assert api3.call("GET", f"/v2/models/{B}/versions/2")[1]["versions"] == ["2"]

    for path, error in (
        (f"/v2/models/{B}/versions/9", "version_not_found"),
        (f"/v2/models/{B}/versions/x1", "version_not_found"),
    ):
        status, body = api3.call("GET", path)
        assert (status, body["code"]) == (404, error), body
    capsys.readouterr()
    status, body = api3.call("GET", f"/v2/models/{B}/versions/3")
    assert (status, body["code"]) == (503, "model_integrity"), body
    integrity = [blob for blob in _emf(capsys.readouterr().out) if "ModelIntegrityFailures" in blob]
    assert [blob["model"] for blob in integrity] == [B]
