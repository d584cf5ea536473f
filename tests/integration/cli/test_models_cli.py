"""`mlops models list` and `--model` with a portfolio config (two datasets, three models)
against a moto server reached as the local cloud: every model at a glance, and each command on
the model it names, or on the default model, saying which."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.table import RegistryTable
from functions.common.layout import RESULT_FILE, drift_check_prefix
from functions.monitor.state import MonitorStore
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.config import PORTFOLIO
from tests.helpers.registry import model_version

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
CHECK = "20260105T000000Z-5e1f0c"


CODE = '\n[train]\ncode = "model_code"\n'
"""The folder of churn-lgbm's factory (config check wants one named)."""


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default: str | None) -> None:
    """The portfolio config with `default` as `[project] default_model` (None: not set)."""
    line = f'default_model = "{default}"' if default else ""
    path = tmp_path / "mlops.toml"
    path.write_text(PORTFOLIO.replace('default_model = "churn-lgbm"', line, 1) + CODE)
    monkeypatch.setenv("MLOPS_CONFIG", str(path))


def _run(registry: ModelRegistry, model: str, run_id: str, **fields: Any) -> None:
    registry.put_run(
        {
            "run_id": run_id,
            "model_name": model,
            "estimator": "x",
            "started_at": "2026-01-02T00:00:00.000Z",
            "data_version": "data1",
            "metrics": {"roc_auc": 0.8},
            **fields,
        }
    )


@pytest.fixture
def portfolio(local_state: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    """The portfolio config without a default model (the first, churn, is the default); churn
    in production with a candidate in rollout and a drift check that found drift; churn-lgbm
    trained once and rejected; prices never trained."""
    _config(tmp_path, monkeypatch, default=None)
    server = local_state.endpoint
    local_state.write_outputs({"DataBucketName": BUCKET, "RegistryTableName": TABLE})
    dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1")
    create_registry_table(dynamodb, TABLE)
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
    create_data_bucket(s3, BUCKET, versioned=False)
    registry = ModelRegistry(TABLE, dynamodb)
    _run(registry, "churn", "20260101T000000Z-aaa", status="registered", version=1)
    _run(registry, "churn", "20260102T000000Z-bbb", status="registered", version=2)
    registry.put_version(model_version(1, model="churn", run_id="20260101T000000Z-aaa"))
    registry.put_version(model_version(2, model="churn", run_id="20260102T000000Z-bbb"))
    registry.promote("churn", 1, expected_current=None, reason="first")
    registry.promote("churn", 2, expected_current=None, reason="canary", alias="candidate")
    _run(registry, "churn-lgbm", "20260103T000000Z-ccc", status="evaluated", gate_passed=False)
    result = {
        "format_version": 1,
        "check_id": CHECK,
        "model_name": "churn",
        "checked_at": "2026-01-05T00:00:00.000Z",
        "verdict": "drift",
    }
    s3.put_object(
        Bucket=BUCKET,
        Key=drift_check_prefix("churn", CHECK) + RESULT_FILE,
        Body=json.dumps(result).encode(),
    )
    MonitorStore(RegistryTable(TABLE, dynamodb), "churn").record_check(
        CHECK, datetime(2026, 1, 5, tzinfo=UTC)
    )
    return registry


def test_models_list_shows_every_model_with_its_state(portfolio: ModelRegistry) -> None:
    result = mlops("models", "list")

    assert result.exit_code == 0, result.output
    assert "3 models" in result.output
    assert "Models (default: churn)" in result.output
    lines = result.output.splitlines()
    churn = lines.index(next(line for line in lines if "│ churn " in line))
    assert "canary" in lines[churn] and "20260102T000000Z-bbb" in lines[churn]
    assert "drift" in lines[churn] and "│ 1 " in lines[churn]
    below = lines[churn + 1]
    assert "on churn" in below and "candidate 2" in below and "2026-01-05" in below
    challenger = lines.index(next(line for line in lines if "│ churn-lgbm" in line))
    assert "not promoted" in lines[challenger] and "20260103T000000Z-ccc" in lines[challenger]
    assert "rejected" in lines[challenger + 1]
    prices = lines.index(next(line for line in lines if "│ prices" in line))
    assert "not trained" in lines[prices] and "on prices" in lines[prices + 1]


def test_models_list_json_is_one_record_per_model(portfolio: ModelRegistry) -> None:
    result = mlops("models", "list", "--json")

    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["churn", "churn-lgbm", "prices"]
    churn = rows["churn"]
    assert (churn["dataset"], churn["status"]) == ("churn", "canary")
    assert (churn["production_version"], churn["candidate_version"]) == (1, 2)
    assert churn["shadow_version"] is None
    assert churn["last_run"]["run_id"] == "20260102T000000Z-bbb"
    assert churn["last_drift"] == {
        "check_id": CHECK,
        "checked_at": "2026-01-05T00:00:00.000Z",
        "verdict": "drift",
    }
    challenger = rows["churn-lgbm"]
    assert challenger["status"] == "not promoted"
    assert challenger["last_run"]["status"] == "rejected"
    assert challenger["production_version"] is None and challenger["last_drift"] is None
    assert rows["prices"]["dataset"] == "prices"
    assert (rows["prices"]["status"], rows["prices"]["last_run"]) == ("not trained", None)


def test_models_list_when_the_registry_has_no_drift_result_left(
    portfolio: ModelRegistry, local_state: Any
) -> None:
    s3 = boto3.client("s3", endpoint_url=local_state.endpoint, region_name="us-east-1")
    s3.delete_object(Bucket=BUCKET, Key=drift_check_prefix("churn", CHECK) + RESULT_FILE)

    rows = json.loads(mlops("models", "list", "--json").stdout)

    assert rows[0]["last_drift"] == {"check_id": CHECK, "checked_at": None, "verdict": None}


def test_model_option_picks_the_model_a_command_acts_on(portfolio: ModelRegistry) -> None:
    default = mlops("runs", "list")
    challenger = mlops("runs", "list", "--model", "churn-lgbm")
    versions = mlops("models", "versions", "--model", "churn-lgbm")

    assert default.exit_code == 0, default.output
    assert "model churn\n" in default.output and "20260101T000000Z-aaa" in default.output
    assert "20260103T000000Z-ccc" not in default.output
    assert challenger.exit_code == 0, challenger.output
    assert "model churn-lgbm" in challenger.output
    assert "20260103T000000Z-ccc" in challenger.output and "aaa" not in challenger.output
    assert "No versions of churn-lgbm are registered yet." in versions.output


def test_the_configured_default_model_is_the_default(
    portfolio: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, default="churn-lgbm")
    assert "Models (default: churn-lgbm)" in mlops("models", "list").output

    result = mlops("runs", "list")

    assert result.exit_code == 0, result.output
    assert "model churn-lgbm" in result.output and "20260103T000000Z-ccc" in result.output


def test_an_unknown_model_is_one_line_naming_the_configured_models(
    portfolio: ModelRegistry, tmp_path: Path
) -> None:
    for command in (
        ("runs", "list"),
        ("models", "versions"),
        ("models", "promote", "1"),
        ("runs", "start", "--no-wait"),
    ):
        result = mlops(*command, "--model", "churn-xgb", "--state-dir", str(tmp_path / "no"))

        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert lines == [
            "error: --model 'churn-xgb' is not a configured model: churn, churn-lgbm, prices"
        ], command


def test_models_list_is_readable_at_80_columns(
    portfolio: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    result = mlops("models", "list")

    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    assert "…" not in result.stdout and "20260102T000000Z-bbb" in result.stdout


def test_smoke_checks_the_production_alias_of_every_model(
    portfolio: ModelRegistry, local_state: Any
) -> None:
    s3 = boto3.client("s3", endpoint_url=local_state.endpoint, region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="models/churn/1/model.onnx", Body=b"")

    result = mlops("smoke")

    lines = result.output.splitlines()
    churn = next(line for line in lines if "alias production of churn:" in line)
    assert churn.startswith("pass") and "version 1 of 'churn'" in churn
    prices = next(line for line in lines if "alias production of prices:" in line)
    assert prices.startswith("pass") and "no model of 'prices' promoted yet" in prices
    assert any(line.startswith("pass alias production of churn-lgbm:") for line in lines)


def test_predict_refuses_a_model_that_is_not_configured(
    portfolio: ModelRegistry, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text("[]")

    result = mlops("predict", "--file", str(rows), "--model", "nope", "--url", "http://x/")

    assert result.exit_code == 2
    assert "--model 'nope' is not a configured model: churn, churn-lgbm, prices" in result.output


def test_train_local_refuses_a_model_that_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the shared roc_auc gate, which prices (regression) would inherit.
    config = tmp_path / "portfolio.toml"
    config.write_text(PORTFOLIO.replace("[gate.metrics.roc_auc]\nthreshold = 0.7\n", "", 1) + CODE)
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    data = tmp_path / "churn.csv"
    data.write_text("age,churned\n1,yes\n")

    result = mlops("train-local", str(data), "--model", "nope", "--out", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "--model 'nope' is not a configured model: churn, churn-lgbm, prices" in result.output
    assert not (tmp_path / "out").exists()
