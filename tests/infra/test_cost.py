"""`mlops cost` prices the stack it synthesizes: a memory size changed in the config reaches
the per-prediction cost through the template."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli.main import app
from tests.helpers.cost import DEV_TEMPLATE

runner = CliRunner()


def _duration_line(sheet: dict) -> dict:  # type: ignore[type-arg]
    lines = sheet["figures"]["per_million_predictions"]["lines"]
    return dict(next(line for line in lines if line["item"] == "Lambda duration (predict)"))


def test_the_predict_memory_in_the_config_moves_the_per_prediction_cost(
    use_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    baseline = runner.invoke(app, ["cost", "--json", "--template", str(DEV_TEMPLATE)])
    assert baseline.exit_code == 0, baseline.output
    use_config("[serving]\n", "[serving]\nmemory_mb = 2048\n", 1)
    out = tmp_path / "cdk.out"
    monkeypatch.setattr("infra.cli.cost.COST_CDK_OUT", out)

    result = runner.invoke(app, ["cost", "--stage", "dev", "--json"])

    assert result.exit_code == 0, result.output
    sheet = json.loads(result.output[result.output.index("{") :])
    assert sheet["template"] == str(out / "mlops-dev.template.json")
    before, after = _duration_line(json.loads(baseline.output)), _duration_line(sheet)
    memory = {i["name"]: i for i in after["inputs"]}["predict_memory_mb"]
    assert memory["value"] == 2048 and memory["source"] == "template"
    assert after["usd"] == pytest.approx(2 * before["usd"])
    per_million = sheet["figures"]["per_million_predictions"]["usd"]
    assert per_million - json.loads(baseline.output)["figures"]["per_million_predictions"][
        "usd"
    ] == pytest.approx(before["usd"])
