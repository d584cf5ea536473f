"""`mlops cost`: the sheet as text or JSON with every input's source, refusals as one line with
exit code 2, and the docs page reproducing the default config's sheet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli.main import app
from tests.helpers import REPO
from tests.helpers.cost import DEV_TEMPLATE

runner = CliRunner()
FIGURES = {
    "idle_per_month",
    "per_million_predictions",
    "per_million_rows_batched",
    "per_retraining",
    "per_drift_check",
    "monthly",
}


@pytest.fixture(autouse=True)
def _repository_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_CONFIG", str(REPO / "mlops.toml"))


def _cost(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["cost", "--template", str(DEV_TEMPLATE), "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_json_has_every_figure_with_lines_formulas_and_sourced_inputs() -> None:
    sheet = _cost("--predictions-per-month", "2000000", "--retrains-per-month", "3")
    assert sheet["stack"] == "mlops-dev"
    assert sheet["volumes"] == {"predictions_per_month": 2_000_000, "retrains_per_month": 3}
    assert set(sheet["figures"]) == FIGURES
    assert sheet["prices"]["region"] == "us-east-1" and sheet["prices"]["date"]
    assert sheet["measured"]["file"] == "bench/cost_inputs.json"
    sources = set()
    for figure in sheet["figures"].values():
        assert figure["usd"] == pytest.approx(sum(line["usd"] for line in figure["lines"]))
        for line in figure["lines"]:
            assert set(line) == {"item", "formula", "usd", "inputs"}
            for given in line["inputs"]:
                assert given["name"] in line["formula"]
                sources.add(given["source"])
    assert {"template", "config", "measured", "price", "option"} <= sources
    monthly = sheet["figures"]["monthly"]["lines"]
    predictions = next(line for line in monthly if line["item"] == "Predictions")
    assert predictions["usd"] == pytest.approx(
        2 * sheet["figures"]["per_million_predictions"]["usd"]
    )


def test_the_text_sheet_shows_each_figure_its_formulas_and_the_inputs() -> None:
    result = runner.invoke(app, ["cost", "--template", str(DEV_TEMPLATE)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for title in ("Idle per month", "Per million predictions", "Per retraining", "Per drift check"):
        assert title in result.output
    assert "predictions * price_api_gateway_rest_request" in result.output
    assert "free tier excluded" in result.output
    assert "arm64" in result.output


def test_an_unknown_stage_is_refused_in_one_line() -> None:
    result = runner.invoke(app, ["cost", "--stage", "qa", "--template", str(DEV_TEMPLATE)])
    assert result.exit_code == 2
    assert "no stage 'qa' in the config" in result.output
    assert "Traceback" not in result.output


def test_missing_measured_inputs_say_how_to_write_them(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["cost", "--template", str(DEV_TEMPLATE), "--measured", str(tmp_path / "none.json")],
    )
    assert result.exit_code == 2
    assert "bench/cost_inputs.py" in result.output
    assert "Traceback" not in result.output


def test_the_docs_page_reproduces_the_default_sheet() -> None:
    result = runner.invoke(app, ["cost", "--template", str(DEV_TEMPLATE), "--markdown"])
    assert result.exit_code == 0, result.output
    page = (REPO / "docs" / "cost.md").read_text(encoding="utf-8")
    start, end = "<!-- cost-sheet:start -->\n", "<!-- cost-sheet:end -->"
    assert start in page and end in page
    reproduced = page.split(start, 1)[1].split(end, 1)[0]
    assert reproduced.strip() == result.output.strip(), (
        "docs/cost.md is out of date: paste `mlops cost --template tests/infra/snapshots/"
        "mlops-dev.template.json --markdown` between its "
        "cost-sheet markers"
    )
