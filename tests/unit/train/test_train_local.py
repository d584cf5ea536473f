"""`mlops train-local`: the pipeline's ingest, train and evaluate code on a local file, with
sockets disabled (unit tests), so no cloud call can hide in it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from jsonschema import Draft7Validator
from typer.testing import CliRunner

from functions.ml import sample_data
from functions.ml.onnx_model import OnnxModel, Signature
from infra.cli.main import app

OUTPUTS = (
    "model.onnx",
    "model_card.html",
    "model_card.json",
    "metrics.json",
    "reference_profile.json",
    "signature.json",
)


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["train-local", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-local")
    data = root / "churn.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(3_000, seed=3)))
    out = root / "out"
    code, output = _invoke(str(data), "--out", str(out))
    assert code == 0, output
    return out


def test_writes_the_model_its_card_and_its_reports(trained: Path) -> None:
    assert all((trained / name).stat().st_size > 0 for name in OUTPUTS)
    card = (trained / "model_card.html").read_text()
    assert card.startswith("<!DOCTYPE html>")
    assert "churn (unregistered)" in card
    profile = json.loads((trained / "reference_profile.json").read_text())
    assert "age" in json.dumps(profile)
    # The card draws the importances the profile stores, the most important feature first.
    means = profile["importance"]["features"]
    top = max(means, key=means.__getitem__)
    section = card.split('<section id="importance">', 1)[1].split("</section>", 1)[0]
    rows = sorted(means, key=lambda name: section.index(f"<code>{name}</code>"))
    assert rows[0] == top and len(rows) == len(means)
    # The same insight the evaluate stage measures, and the badge of a gate, not a promotion.
    for section_id in ("slices", "calibration", "thresholds"):
        assert f'<section id="{section_id}">' in card
    assert "gate passed" in card and ">promoted<" not in card


def test_writes_the_model_card_json_in_the_toolkit_schema(trained: Path) -> None:
    schema_file = Path(__file__).parents[2] / "data/model_card_toolkit/model_card.schema.json"
    document = json.loads((trained / "model_card.json").read_text())
    Draft7Validator(json.loads(schema_file.read_text())).validate(document)
    evaluation = json.loads((trained / "evaluation.json").read_text())
    brier = evaluation["insight"]["candidate"]["calibration"]["brier"]
    assert str(round(brier, 4))[:5] in json.dumps(document["quantitative_analysis"])


def test_metrics_show_a_model_that_learned_the_signal(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())

    assert metrics["roc_auc"] > 0.75
    assert set(metrics) >= {"accuracy", "f1_macro", "log_loss"}
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert evaluation["result"]["passed"] is True
    assert evaluation["result"]["metrics"] == metrics
    insight = evaluation["insight"]["candidate"]  # as the evaluate stage stores it
    assert (insight["task"], insight["metric"]) == ("binary", "roc_auc")
    assert insight["slices"]["rows"][0]["overall"] == pytest.approx(metrics["roc_auc"])
    assert len(insight["thresholds"]) == 19 and insight["calibration"]["brier"] > 0


def test_the_onnx_model_predicts_the_held_out_rows(trained: Path) -> None:
    session = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    signature = Signature.from_dict(json.loads((trained / "signature.json").read_text()))
    holdout = pd.read_parquet(trained / "holdout.parquet")

    assert {i.name for i in session.get_inputs()} == {i["name"] for i in signature.inputs}
    prediction = OnnxModel((trained / "model.onnx").read_bytes(), signature).predict(holdout)
    assert len(prediction.labels) == len(holdout) > 0
    assert set(prediction.labels) <= {"yes", "no"}
    assert prediction.probabilities is not None
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(prediction.labels == holdout["churned"].to_numpy()))
    assert accuracy == pytest.approx(json.loads((trained / "metrics.json").read_text())["accuracy"])


def test_the_cli_prints_the_metrics_table(tmp_path: Path) -> None:
    data = tmp_path / "churn.parquet"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(1_000, seed=5), "parquet"))

    code, output = _invoke(str(data), "--out", str(tmp_path / "out"))

    assert code == 0, output
    assert "roc_auc" in output
    assert "gate passed" in output


def test_gates_against_a_given_champion(trained: Path, tmp_path: Path) -> None:
    data = tmp_path / "churn.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(2_000, seed=11)))
    out = tmp_path / "out"

    code, output = _invoke(str(data), "--out", str(out), "--champion", str(trained / "model.onnx"))

    assert code == 0, output
    evaluation = json.loads((out / "evaluation.json").read_text())
    champion_auc = evaluation["champion"]["metrics"]["roc_auc"]
    candidate_auc = evaluation["result"]["metrics"]["roc_auc"]
    assert evaluation["result"]["champion_metrics"]["roc_auc"] == champion_auc
    # Both scored on the same held-out rows; [gate] wants roc_auc not worse than the champion.
    assert evaluation["result"]["passed"] is (candidate_auc >= champion_auc)
    flat = " ".join(output.split())
    if candidate_auc < champion_auc:
        assert "gate failed" in flat
        assert "worse than champion" in flat


@pytest.mark.parametrize("name", ["wrong_type.csv", "missing_target.csv", "single_class.csv"])
def test_a_bad_file_fails_with_the_validation_reason(tmp_path: Path, name: str) -> None:
    data = tmp_path / name
    data.write_bytes(sample_data.bad_files()[name])
    out = tmp_path / "out"

    code, output = _invoke(str(data), "--out", str(out))

    assert code == 1
    assert f"rejected ({sample_data.BAD_FILE_REASONS[name]})" in " ".join(output.split())
    assert not out.exists()


def test_a_missing_champion_is_named(tmp_path: Path) -> None:
    data = tmp_path / "churn.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(500)))

    code, output = _invoke(str(data), "--champion", str(tmp_path / "nope.onnx"))

    assert code == 1
    assert "signature.json beside it" in " ".join(output.split())
