"""`mlops models shadow start|stop|report|promote` against a moto server reached as the local
cloud, with real models (logistic regressions on churn rows, exported to ONNX): alias moves
recorded in the alias history, the report read from capture/ and shadow/, and promotion only
through the gate against the champion."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.layout import HOLDOUT_FILE, run_prefix, version_prefix
from functions.ml.sample_data import churn_frame
from infra.cli.main import app
from tests.helpers import REPO
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.models import Trained, trained_churn
from tests.helpers.registry import model_version

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
GATE = "[gate.metrics.roc_auc]\nmin_absolute_change = 0.001\n"


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained() -> dict[str, Trained]:
    return {
        "weak": trained_churn(40, seed=11, c=1.0),
        "strong": trained_churn(1500, seed=12, c=1.0),
    }


class Stack:
    def __init__(self, server: str) -> None:
        self.s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
        self.dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1")
        create_registry_table(self.dynamodb, TABLE)
        create_data_bucket(self.s3, BUCKET, versioned=False)
        self.registry = ModelRegistry(TABLE, self.dynamodb)

    def register(self, trained: Trained) -> int:
        """The next version, as the register stage leaves it, with its run's held-out rows."""
        number = self.registry.allocate_version("churn")
        run_id = f"2026120{number}T000000Z-run"
        prefix = version_prefix("churn", number)
        self.s3.put_object(Bucket=BUCKET, Key=prefix + "model.onnx", Body=trained.onnx)
        self.s3.put_object(
            Bucket=BUCKET, Key=prefix + "signature.json", Body=json.dumps(trained.signature)
        )
        holdout = io.BytesIO()
        churn_frame(600, seed=99, duplicate_share=0.0).to_parquet(holdout)
        self.s3.put_object(
            Bucket=BUCKET, Key=run_prefix("churn", run_id) + HOLDOUT_FILE, Body=holdout.getvalue()
        )
        self.registry.put_version(model_version(number, trained, run_id=run_id))
        return number

    def put_lines(self, key: str, records: list[dict[str, Any]]) -> None:
        body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def stack(local_state: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    config = (REPO / "mlops.toml").read_text()
    start = config.index("[gate.metrics.roc_auc]")
    end = config.index("[drift]")
    config = config[:start] + GATE + "\n" + config[end:]
    config = config.replace("[serving]\n", "[serving]\nshadow = true\n", 1)
    path = tmp_path / "mlops.toml"
    path.write_text(config)
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    local_state.write_outputs(
        {"DataBucketName": BUCKET, "RegistryTableName": TABLE, "EventBusName": "default"}
    )
    return Stack(local_state.endpoint)


def test_start_and_stop_move_alias_shadow_in_its_history(
    stack: Stack, trained: dict[str, Trained]
) -> None:
    first = stack.register(trained["weak"])
    second = stack.register(trained["strong"])
    stack.registry.promote("churn", first, expected_current=None, reason="first")

    refused = mlops("models", "shadow", "start", str(first))
    assert refused.exit_code == 1 and "is production already" in refused.output

    started = mlops("models", "shadow", "start", str(second), "--reason", "try it")
    assert started.exit_code == 0, started.output
    assert "shadow of churn set: none -> version 2" in started.output
    assert stack.registry.get_alias("churn", "shadow").version == second
    listed = json.loads(mlops("models", "list", "--json").output)
    assert [(m["production_version"], m["shadow_version"]) for m in listed] == [(first, second)]

    stopped = mlops("models", "shadow", "stop")
    assert stopped.exit_code == 0 and "stopped (was version 2)" in stopped.output
    assert stack.registry.get_alias("churn", "shadow") is None
    history = stack.registry.history("churn", "shadow")
    assert [(c.kind, c.from_version, c.to_version, c.reason) for c in history] == [
        ("promote", None, 2, "try it"),
        ("drop", 2, None, "stopped from the mlops CLI"),
    ]
    assert "nothing to stop" in mlops("models", "shadow", "stop").output


def _record(request_id: str, predictions: list[str], alias: str, version: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "record": "capture",
        "format_version": 2,
        "request_id": request_id,
        "timestamp": now,
        "model_name": "churn",
        "model_version": version,
        "alias": alias,
        "first_row": 0,
        "rows": len(predictions),
        "columns": {},
        "predictions": predictions,
        "probabilities": None,
        "classes": ["no", "yes"],
        "latency_ms": 1.5 if alias == "shadow" else 1.0,
        "error": None,
    }


def test_report_joins_shadow_records_to_their_captures(stack: Stack) -> None:
    day = datetime.now(UTC).date().isoformat()
    stack.put_lines(
        f"capture/dt={day}/capture-1",
        [
            _record("a", ["no", "yes", "no"], "production", 1),
            _record("b", ["yes"], "production", 1),
        ],
    )
    stack.put_lines(
        f"shadow/churn/dt={day}/capture-1.jsonl",
        [_record("a", ["no", "no", "no"], "shadow", 2), _record("b", ["yes"], "shadow", 2)],
    )
    result = mlops("models", "shadow", "report", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["requests"], report["rows"]) == (2, 4)
    assert report["agreement"] == pytest.approx(0.75)
    assert report["confusion"] == {"no": {"no": 2, "yes": 0}, "yes": {"no": 1, "yes": 1}}
    assert report["latency_ms"]["shadow"]["p50"] == 1.5

    text = mlops("models", "shadow", "report", "--since", "2h").output
    assert "agreement with production: 75.00%" in text
    assert "shadow version(s) 2 vs production 1" in text
    bad = mlops("models", "shadow", "report", "--since", "yesterday")
    assert bad.exit_code == 2 and "neither a day" in bad.output


def test_promote_goes_through_the_gate_against_the_champion(
    stack: Stack, trained: dict[str, Trained]
) -> None:
    weak = stack.register(trained["weak"])
    twin = stack.register(trained["weak"])
    strong = stack.register(trained["strong"])
    stack.registry.promote("churn", weak, expected_current=None, reason="first")

    # The same model again is not better than the champion by 0.001: refused, nothing moves.
    mlops("models", "shadow", "start", str(twin))
    refused = mlops("models", "shadow", "promote")
    assert refused.exit_code == 1, refused.output
    assert "did not pass the gate against champion version 1" in refused.output
    assert stack.registry.get_alias("churn").version == weak
    assert stack.registry.get_alias("churn", "shadow").version == twin

    stack.registry.promote("churn", strong, expected_current=twin, reason="t", alias="shadow")
    promoted = mlops("models", "shadow", "promote")
    assert promoted.exit_code == 0, promoted.output
    assert "production of churn promoted: version 1 -> version 3" in promoted.output
    assert stack.registry.get_alias("churn").version == strong
    assert stack.registry.get_alias("churn", "shadow") is None
    last = stack.registry.history("churn")[-1]
    assert last.reason == (
        "shadow version 3 passed the gate (1 criteria) against champion version 1"
    )
