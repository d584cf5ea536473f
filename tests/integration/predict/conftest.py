"""Real models (trained with functions.ml on churn rows, exported to ONNX) for the predict
handler, invoked with API Gateway proxy events built from `events/api_predict.json`; tests
register them with `tests.helpers.registry.publish`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.loading import load_config
from functions.ml.sample_data import churn_frame
from tests.helpers.cloud import Cloud
from tests.helpers.models import Trained, trained_churn
from tests.helpers.predict_api import Api

REPO = Path(__file__).resolve().parents[3]
STREAM = "mlops-dev-capture"


def _trained(c: float, seed: int) -> Trained:
    asked = churn_frame(50, seed=seed + 100, duplicate_share=0.0)
    return trained_churn(300, seed=seed, c=c, asked=asked)


@pytest.fixture(scope="session")
def models() -> dict[int, Trained]:
    """Two different models: version 1 and version 2 answer differently."""
    return {1: _trained(1.0, 5), 2: _trained(0.001, 6)}


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
def capture_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[], list[dict[str, Any]]]:
    """Capture on (the stack's CAPTURE_STREAM set); returns a reader of the capture records
    the function wrote to stdout since the last read: the log events the log group's
    subscription filter (`{ $.record = "capture" }`) hands to Firehose."""
    monkeypatch.setenv("CAPTURE_STREAM", STREAM)

    def records() -> list[dict[str, Any]]:
        lines = capsys.readouterr().out.splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"record":"capture"')]

    return records


@pytest.fixture
def api(
    cloud: Cloud,
    serving_config: Callable[..., None],
    trimmed_botocore_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    """The handler as deployed: its AWS clients read the trimmed botocore data."""
    from functions.adapters.aws import SLIM_DATA_ENV
    from functions.predict import handler, logic

    monkeypatch.setenv(SLIM_DATA_ENV, str(trimmed_botocore_data))
    if "MLOPS_CONFIG_JSON" not in os.environ:
        serving_config()
    client = Api(handler, logic)
    client.reset()
    yield client
    logic.service.cache_clear()
