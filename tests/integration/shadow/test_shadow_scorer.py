"""The shadow scorer's handler against moto, with real models (two logistic regressions on
churn rows, exported to ONNX) registered as the register stage leaves them: production's
capture records in, alias shadow's records out under shadow/<model>/, with its version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import onnxruntime as ort
import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.loading import deployed_config, load_config
from functions.common.errors import ArtifactIntegrityError
from functions.ml.capture_lines import capture_records
from functions.ml.onnx_input import predict_columns
from functions.ml.sample_data import churn_frame
from functions.ml.shadow_report import shadow_report
from functions.shadow import handler, logic
from tests.helpers.cloud import Cloud
from tests.helpers.lambda_context import lambda_context
from tests.helpers.models import FEATURES, Trained, trained_churn
from tests.helpers.registry import publish

REPO_CONFIG = "mlops.toml"
CAPTURE_KEY = "capture/dt=2026-12-02/mlops-dev-capture-1-2026-12-02-20-00-00-0a1b"
SHADOW_KEY = "shadow/churn/dt=2026-12-02/mlops-dev-capture-1-2026-12-02-20-00-00-0a1b.jsonl"


@pytest.fixture(scope="module")
def models() -> dict[int, Trained]:
    asked = churn_frame(40, seed=77, duplicate_share=0.0)
    return {
        1: trained_churn(300, seed=1, c=1.0, asked=asked),
        2: trained_churn(300, seed=2, c=0.002, asked=asked),
    }


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def set_config(**serving: Any) -> None:
        from tests.helpers import REPO

        config = load_config(REPO / REPO_CONFIG)
        updated = config.model_copy(update={"serving": config.serving.model_copy(update=serving)})
        monkeypatch.setenv("MLOPS_CONFIG_JSON", updated.to_json())
        monkeypatch.setattr(logic, "_scorer", None)
        deployed_config.cache_clear()

    return set_config


def _predict(trained: Trained, rows: list[dict[str, Any]]) -> Any:
    session = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return predict_columns(session, columns, trained.signature)


def _capture(trained: Trained, request_id: str, rows: list[dict[str, Any]], **fields: Any) -> bytes:
    prediction = _predict(trained, rows)
    record = {
        "record": "capture",
        "format_version": 2,
        "request_id": request_id,
        "timestamp": "2026-12-02T20:00:00.123Z",
        "model_name": "churn",
        "model_version": 1,
        "alias": "production",
        "route": "v1",
        "rollout": None,
        "first_row": 0,
        "rows": len(rows),
        "request_rows": len(rows),
        "columns": {name: [row[name] for row in rows] for name in FEATURES},
        "predictions": prediction.labels.tolist(),
        "probabilities": prediction.probabilities.tolist(),
        "classes": trained.signature["classes"],
        "latency_ms": 0.7,
        "error": None,
        **fields,
    }
    return json.dumps(record).encode() + b"\n"


def _event(key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "mlops-dev-data"}, "object": {"key": key, "size": 1}},
    }


def _invoke(key: str = CAPTURE_KEY) -> dict[str, Any]:
    return handler.lambda_handler(_event(key), lambda_context("shadow"))


@pytest.fixture
def captured(cloud: Cloud, models: dict[int, Trained]) -> list[dict[str, Any]]:
    """Production (version 1) answered three requests, a candidate one, one failed."""
    rows = models[1].rows
    body = b"".join(
        [
            _capture(models[1], "r1", rows[:10]),
            _capture(models[1], "r2", rows[10:35]),
            _capture(models[1], "r3", rows[35:40]),
            _capture(models[1], "c1", rows[:3], alias="candidate", model_version=2),
            _capture(
                models[1],
                "e1",
                [],
                error="scoring_failed",
                columns={},
                predictions=[],
                probabilities=None,
            ),
        ]
    )
    cloud.s3.put_object(Bucket=cloud.bucket, Key=CAPTURE_KEY, Body=body)
    return list(capture_records(body.splitlines()))


def _shadowed(cloud: Cloud) -> list[dict[str, Any]]:
    return list(capture_records(cloud.body(SHADOW_KEY).splitlines()))


def test_the_shadow_version_scores_production_requests(
    cloud: Cloud, models: dict[int, Trained], captured: list[dict[str, Any]], configure: Any
) -> None:
    configure(shadow=True)
    publish(cloud, models[1])
    publish(cloud, models[2], promote=False)
    ModelRegistry(cloud.table).promote(
        "churn", 2, expected_current=None, reason="t", alias="shadow"
    )

    outcome = _invoke()

    assert outcome["models"]["churn"] == {
        "shadow_version": 2,
        "shadow_key": SHADOW_KEY,
        "scored": 3,
        "rows": 40,
        "skipped": {"candidate": 1, "error": 1},
    }
    records = _shadowed(cloud)
    assert [(r["request_id"], r["rows"]) for r in records] == [("r1", 10), ("r2", 25), ("r3", 5)]
    assert {(r["alias"], r["model_version"], r["production_version"]) for r in records} == {
        ("shadow", 2, 1)
    }
    expected = _predict(models[2], models[1].rows).labels.tolist()
    assert [label for r in records for label in r["predictions"]] == expected
    assert all(r["latency_ms"] > 0 for r in records)

    report = shadow_report(captured, records)
    production = [label for r in captured[:3] for label in r["predictions"]]
    agreement = sum(p == s for p, s in zip(production, expected, strict=True)) / 40
    assert report["requests"] == 3 and report["rows"] == 40
    assert report["agreement"] == pytest.approx(agreement)
    assert report["shadow_versions"] == [2] and report["production_versions"] == [1]

    # EventBridge delivers at least once: the same object is shadowed to the same key (only
    # the timing differs).
    _invoke()
    assert cloud.keys("shadow/") == [SHADOW_KEY]

    def untimed(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "latency_ms"} for r in found]

    assert untimed(_shadowed(cloud)) == untimed(records)


def test_nothing_is_scored_without_shadow_on_or_without_the_alias(
    cloud: Cloud, models: dict[int, Trained], captured: list[dict[str, Any]], configure: Any
) -> None:
    publish(cloud, models[1])
    publish(cloud, models[2], promote=False)
    configure(shadow=True)
    assert _invoke()["models"]["churn"] == {"skipped": "alias shadow is not set"}
    ModelRegistry(cloud.table).promote(
        "churn", 2, expected_current=None, reason="t", alias="shadow"
    )
    configure(shadow=False)
    assert _invoke()["models"]["churn"] == {"skipped": "[serving] shadow is off"}
    assert cloud.keys("shadow/") == []


def test_a_shadow_file_that_fails_its_checksum_is_never_scored(
    cloud: Cloud, models: dict[int, Trained], captured: list[dict[str, Any]], configure: Any
) -> None:
    configure(shadow=True)
    publish(cloud, models[1])
    publish(cloud, models[2], promote=False, tamper=True)
    ModelRegistry(cloud.table).promote(
        "churn", 2, expected_current=None, reason="t", alias="shadow"
    )
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        _invoke()
    assert cloud.keys("shadow/") == []


def test_an_object_outside_capture_is_refused(cloud: Cloud, configure: Any) -> None:
    configure(shadow=True)
    with pytest.raises(logic.NotACaptureObjectError, match="not a capture object"):
        _invoke("shadow/churn/dt=2026-12-02/x.jsonl")
