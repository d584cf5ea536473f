"""Shadow traffic through the local cloud deployed from the synthesized app with `[serving]
shadow = true`: version 1 promoted by a drop through the pipeline, version 2 registered beside
it; `mlops models shadow start 2`, predictions through the API (`mlops predict`), the capture
stream's objects invoke the shadow function (EventBridge, as on AWS), its records land under
shadow/churn/ with version 2, the report compares them with production's, and `stop` drops the
alias."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.layout import version_prefix
from functions.ml import sample_data
from functions.ml.capture_lines import capture_records
from tests.helpers.config import repo_config
from tests.helpers.models import records, trained_churn
from tests.helpers.registry import model_version
from tests.helpers.served import Served, serving_first_model

pytestmark = pytest.mark.slow

REQUESTS = 3
ROWS = 5


@pytest.fixture(scope="module")
def served(synth_with_config: Any) -> Iterator[Served]:
    cdk_out = synth_with_config(repo_config(serving={"shadow": True}))
    with serving_first_model(cdk_out, Served) as served:
        yield served


def _register_second(served: Served) -> int:
    """Version 2 of churn, registered as the register stage leaves it, not promoted."""
    trained = trained_churn(400, seed=41, c=0.01)
    registry = ModelRegistry(
        served.cloud.outputs["RegistryTableName"], served.cloud.client("dynamodb")
    )
    number = registry.allocate_version("churn")
    prefix = version_prefix("churn", number)
    served.s3.put_object(Bucket=served.bucket, Key=prefix + "model.onnx", Body=trained.onnx)
    served.s3.put_object(
        Bucket=served.bucket, Key=prefix + "signature.json", Body=json.dumps(trained.signature)
    )
    registry.put_version(model_version(number, trained))
    return number


def _shadow_records(served: Served, wanted: int, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [
            record
            for key in served.keys("shadow/churn/")
            for record in capture_records(served.get(key).splitlines())
        ]
        if sum(record["rows"] for record in found) >= wanted:
            return found
        time.sleep(1)
    raise AssertionError(f"{len(found)} shadow records after {timeout} s: {found}")


def test_shadow_scores_captured_requests_and_reports_agreement(
    served: Served, tmp_path: Path
) -> None:
    second = _register_second(served)
    assert "shadow of churn set: none -> version 2" in served.cli(
        "models", "shadow", "start", str(second)
    )

    for seed in range(REQUESTS):
        rows = records(sample_data.churn_frame(ROWS, seed=500 + seed, duplicate_share=0.0))
        path = tmp_path / f"rows-{seed}.json"
        path.write_text(json.dumps(rows))
        assert "model version 1" in served.cli("predict", "--file", str(path))

    shadowed = _shadow_records(served, REQUESTS * ROWS)
    assert {(r["alias"], r["model_version"]) for r in shadowed} == {("shadow", 2)}
    assert all(r["error"] is None and r["latency_ms"] > 0 for r in shadowed)
    captured = [
        record
        for key in served.keys("capture/")
        for record in capture_records(served.get(key).splitlines())
    ]
    assert {(r["request_id"], r["first_row"]) for r in shadowed} <= {
        (r["request_id"], r["first_row"]) for r in captured
    }

    report = json.loads(served.cli("models", "shadow", "report", "--json"))
    assert report["rows"] == REQUESTS * ROWS
    assert (report["shadow_versions"], report["production_versions"]) == ([2], [1])
    assert report["task"] == "classification" and 0 <= report["agreement"] <= 1
    assert sum(sum(row.values()) for row in report["confusion"].values()) == REQUESTS * ROWS
    assert report["latency_ms"]["shadow"]["p50"] > 0
    text = served.cli("models", "shadow", "report")
    assert "agreement with production:" in text

    assert "stopped (was version 2)" in served.cli("models", "shadow", "stop")
    history = served.cli("models", "history", "--alias", "shadow")
    assert "promote" in history and "drop" in history
