"""The worked example of docs/own-model.md: `examples/own-model.toml` trains the churn
pipeline of `examples/model_code` (an engineered ratio feature, then LightGBM) through
`mlops train-local`, and the ratio is computed inside the ONNX graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from typer.testing import CliRunner

from functions.ml import sample_data
from functions.ml.onnx_model import OnnxModel, Signature
from infra.cli.main import app

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "own-model.toml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("own-model")
    data = root / "churn.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(3_000, seed=3)))
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(EXAMPLE))
        result = CliRunner().invoke(app, ["train-local", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_factory_from_the_code_folder_trained_the_model(trained: Path) -> None:
    run = json.loads((trained / "run.json").read_text())

    assert run["estimator"] == "factory churn_model.pipeline:build"
    code = run["model_code"]
    assert code["module_file"] == str(REPO / "examples/model_code/churn_model/pipeline.py")
    assert len(code["sha256"]) == 64
    assert run["parity"]["passed"] and run["parity"]["max_abs_difference"] < 1e-4
    assert json.loads((trained / "metrics.json").read_text())["roc_auc"] > 0.75


def test_the_ratio_is_computed_inside_the_graph(trained: Path) -> None:
    graph = onnx.load(trained / "model.onnx").graph
    operators = [node.op_type for node in graph.node]

    assert {"Div", "Where", "Greater"} <= set(operators)
    assert "TreeEnsembleClassifier" in operators
    # The graph takes the raw columns: the ratio is not an input, it is computed from two.
    assert {i.name for i in graph.input} == set(sample_data.NUMERIC_FEATURES) | set(
        sample_data.CATEGORICAL_FEATURES
    )


def test_the_graph_scores_like_the_fitted_pipeline_on_changed_charges(trained: Path) -> None:
    """Moving total_charges (which only the ratio and one raw column read) moves the ONNX
    probabilities exactly as the scikit-learn pipeline's: the ratio is the same in both."""
    signature = Signature.from_dict(json.loads((trained / "signature.json").read_text()))
    model = OnnxModel((trained / "model.onnx").read_bytes(), signature)
    holdout = pd.read_parquet(trained / "holdout.parquet")
    shifted = holdout.assign(total_charges=holdout["total_charges"] * 1.7)

    before = model.predict(holdout).probabilities
    after = model.predict(shifted).probabilities
    assert before is not None and after is not None
    assert np.abs(after - before).max() > 0.01
    session = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]


def test_a_factory_set_to_categorical_splits_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "code" / "cats"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "factory.py").write_text(
        "from lightgbm import LGBMClassifier\n"
        "def build(contract):\n"
        "    return LGBMClassifier(categorical_feature=[0], verbose=-1)\n"
    )
    config = EXAMPLE.read_text().replace("churn_model.pipeline:build", "cats.factory:build")
    (tmp_path / "mlops.toml").write_text(config.replace('"model_code"', '"code"'))
    data = tmp_path / "churn.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(400, seed=1)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(tmp_path / "mlops.toml"))
        result = CliRunner().invoke(app, ["train-local", str(data), "--out", str(tmp_path / "o")])

    assert result.exit_code == 1
    assert "step 'model' (LGBMClassifier) categorical_feature: categorical splits" in " ".join(
        result.output.split()
    )
    assert "Traceback" not in result.output
