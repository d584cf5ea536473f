"""`mlops config check` and synth refuse configs that would only fail at training time
(hyperparameters the estimator does not take, gate metrics the task does not compute), naming
the key and the allowed values; `mlops config init` writes a valid config for a new dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from functions.common.config.base import ConfigError
from infra.cdk.config import deploy_config
from infra.cli.main import app

runner = CliRunner()

REGRESSION = """
[dataset]
name = "wine"
target = "quality"
task = "regression"

[model]
estimator = "ridge"
{model}

{extra}
"""


def _flat(text: str) -> str:
    return " ".join(text.split())


def _config(tmp_path: Path, model: str = "", extra: str = "") -> Path:
    path = tmp_path / "wine.toml"
    path.write_text(REGRESSION.format(model=model, extra=extra))
    return path


def test_a_hyperparameter_ridge_does_not_take_fails_config_check(tmp_path: Path) -> None:
    config = _config(tmp_path, model="params = { C = 1.0, alpha = 0.5 }")
    result = runner.invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2, result.output
    output = _flat(result.output)
    assert "model.params.C" in output
    assert "ridge takes no hyperparameter 'C'" in output
    # The allowed names are Ridge's own (get_params), not a list kept by hand.
    from sklearn.linear_model import Ridge

    assert f"allowed: {', '.join(sorted(Ridge().get_params()))}" in output
    assert "Traceback" not in result.output


def test_a_grid_parameter_the_estimator_does_not_take_fails_config_check(tmp_path: Path) -> None:
    config = _config(tmp_path, model="[model.grid]\nalpha = [0.1, 1.0]\ngamma = [1, 2]")
    result = runner.invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2, result.output
    assert "model.grid.gamma: ridge takes no hyperparameter 'gamma'" in _flat(result.output)


def test_a_gate_metric_regression_does_not_compute_fails_config_check(tmp_path: Path) -> None:
    config = _config(tmp_path, extra="[gate.metrics.roc_auc]\nthreshold = 0.8")
    result = runner.invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 2, result.output
    assert (
        "gate.metrics.roc_auc: regression does not compute roc_auc; allowed: mae, r2, rmse"
        in _flat(result.output)
    )


def test_synth_fails_on_them_too_naming_a_stage_override(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        extra="[stages.dev]\n[stages.prod]\n[stages.prod.model]\nparams = { C = 2.0 }",
    )
    assert runner.invoke(app, ["config", "check", str(config)]).exit_code == 2
    with pytest.raises(ConfigError) as raised:
        deploy_config(stage="dev", commit="test", config_file=str(config))
    assert "stages.prod.model.params.C: ridge takes no hyperparameter 'C'" in str(raised.value)


def _wine(rows: int = 240) -> pd.DataFrame:
    """A new dataset with the producer's own column names (spaces, slashes, units) and gaps."""
    rng = np.random.default_rng(7)
    alcohol = rng.normal(11, 1.2, rows)
    frame = pd.DataFrame(
        {
            "Alcohol %": alcohol.round(2),
            "od280/od315_of_diluted_wines": rng.normal(2.6, 0.7, rows).round(3),
            "Colour": rng.choice(["red", "white", "rosé"], rows),
            "Quality Score": (alcohol * 0.5 + rng.normal(0, 0.3, rows)).round(2),
        }
    )
    frame.loc[::17, "Colour"] = None
    frame.loc[::23, "Alcohol %"] = None
    return frame


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_config_init_writes_a_minimal_valid_config_that_trains(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _wine()
    if task == "classification":
        frame["Quality Score"] = np.where(frame["Quality Score"] > 5.6, "good", "plain")
    data = tmp_path / "Wine Reviews.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "wine.toml"

    result = runner.invoke(
        app, ["config", "init", "--task", task, "--from", str(data), "--out", str(config)]
    )

    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert 'name = "wine-reviews"' in text
    assert 'target = "quality_score"' in text
    assert f'task = "{task}"' in text
    assert 'od280_od315_of_diluted_wines = "numeric"' in text
    assert 'colour = "categorical"' in text
    assert runner.invoke(app, ["config", "check", str(config)]).exit_code == 0
    again = runner.invoke(
        app, ["config", "init", "--task", task, "--from", str(data), "--out", str(config)]
    )
    assert again.exit_code == 2 and "already exists" in _flat(again.output)

    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    trained = runner.invoke(app, ["train-local", str(data), "--out", str(tmp_path / "out")])
    assert trained.exit_code == 0, trained.output
    assert "gate passed" in _flat(trained.output)


def test_config_check_prints_a_key_pattern_as_written(tmp_path: Path) -> None:
    """Rich markup would read `[a-z]` in the pattern as a tag and print `'^{0,30}$'`."""
    config = tmp_path / "wine.toml"
    config.write_text(REGRESSION.format(model="", extra="").replace('"wine"', '"Wine"'))

    result = runner.invoke(app, ["config", "check", str(config)])

    assert result.exit_code == 2
    assert "dataset.name" in result.output
    assert "'^[a-z][a-z0-9-]{0,30}[a-z0-9]$'" in result.output


def test_config_init_refuses_a_bad_dataset_name_naming_the_key(tmp_path: Path) -> None:
    data = tmp_path / "wine.csv"
    _wine().to_csv(data, index=False)

    result = runner.invoke(
        app,
        [
            *("config", "init", "--task", "regression", "--from", str(data)),
            *("--name", "Wine Reviews", "--out", str(tmp_path / "wine.toml")),
        ],
    )

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "dataset.name" in _flat(result.output) and "pattern" in _flat(result.output)


def test_config_init_reads_a_semicolon_file_with_delimiter_and_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "wine.csv"
    _wine().to_csv(data, index=False, sep=";")
    config = tmp_path / "wine.toml"
    init = ["config", "init", "--task", "regression", "--from", str(data), "--out", str(config)]

    refused = runner.invoke(app, init)
    assert refused.exit_code == 1
    assert "wrong_delimiter" in refused.output and "--delimiter ';'" in _flat(refused.output)

    result = runner.invoke(app, [*init, "--delimiter", ";"])

    assert result.exit_code == 0, result.output
    assert 'delimiter = ";"' in config.read_text()
    assert 'colour = "categorical"' in config.read_text()
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    trained = runner.invoke(app, ["train-local", str(data), "--out", str(tmp_path / "out")])
    assert trained.exit_code == 0, trained.output


def test_config_check_of_a_portfolio_lists_every_dataset_and_model_with_its_estimator(
    tmp_path: Path,
) -> None:
    from tests.helpers.config import PORTFOLIO

    config = tmp_path / "mlops.toml"
    config.write_text(PORTFOLIO + '\n[train]\ncode = "model_code"\n')
    (tmp_path / "model_code").mkdir()

    result = runner.invoke(app, ["config", "check", str(config)], env={"COLUMNS": "120"})

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1]
        for line in result.output.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 2
    }
    assert rows["dataset churn"] == "churn (drops under raw/churn/)"
    assert rows["dataset prices"] == "prices (drops under raw/prices/)"
    assert rows["model churn"] == "random_forest on churn"
    assert rows["model churn-lgbm"] == "churn_features:build on churn, the default model"
    assert rows["model prices"] == "ridge on prices"
