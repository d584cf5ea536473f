"""MLflow's model format from a version's ONNX bytes and signature (functions.ml.mlflow_format):
the MLmodel document as YAML a YAML reader reads back, the signature in MLflow's column schema,
the input example, and the adapted graph, which predicts what the version's graph predicts when
fed one 1-D column per feature (as MLflow's ONNX wrapper feeds a DataFrame)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

from functions.common.config.dataset import FeatureType, Task
from functions.ml.mlflow_format import (
    MLFLOW_FILES,
    MLFLOW_VERSION,
    input_example,
    mlflow_files,
    mlflow_graph,
    yaml_text,
)
from functions.ml.onnx_model import OnnxModel, Signature
from functions.ml.sample_data import churn_frame
from tests.helpers.models import CHURN_SCHEMA, fit_and_export, fit_churn

CREATED = datetime(2026, 12, 3, 6, 0, 1, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def churn() -> tuple[bytes, Signature, pd.DataFrame]:
    frame = churn_frame(500, seed=12)
    onnx, signature = fit_churn(frame.iloc[:400], {})
    return onnx, signature, frame.iloc[400:]


def _feed(signature: dict[str, Any], rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """What MLflow's wrapper feeds: `df[name].values`, floats cast to float32."""
    feed = {}
    for spec in signature["inputs"]:
        column = rows[spec["name"]]
        if spec["type"] == "categorical":
            feed[spec["name"]] = column.astype(object).where(column.notna(), "").to_numpy()
        else:
            feed[spec["name"]] = column.to_numpy(dtype=np.float64).astype(np.float32)
    return feed


def test_the_folder_has_every_file_and_an_mlmodel_that_yaml_reads(
    churn: tuple[bytes, Signature, pd.DataFrame],
) -> None:
    onnx, signature, _ = churn
    files = mlflow_files(
        onnx, signature.to_dict(), python_version="3.13.0", created_at=CREATED, model_uuid="ab"
    )

    assert sorted(files) == sorted(MLFLOW_FILES)
    mlmodel = yaml.safe_load(files["MLmodel"])
    assert mlmodel["flavors"]["onnx"]["data"] == "model.onnx"
    assert mlmodel["flavors"]["onnx"]["providers"] == ["CPUExecutionProvider"]
    assert mlmodel["flavors"]["onnx"]["code"] is None
    pyfunc = mlmodel["flavors"]["python_function"]
    assert pyfunc == {
        "data": "model.onnx",
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        "loader_module": "mlflow.onnx",
        "python_version": "3.13.0",
    }
    assert mlmodel["mlflow_version"] == MLFLOW_VERSION
    assert mlmodel["model_uuid"] == "ab"
    assert mlmodel["utc_time_created"] == "2026-12-03 06:00:01.250000"
    assert mlmodel["model_size_bytes"] == len(files["model.onnx"])
    assert mlmodel["saved_input_example_info"]["artifact_path"] == "input_example.json"
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert inputs[0] == {"type": "double", "name": "age", "required": True}
    assert {"type": "string", "name": "region", "required": True} in inputs
    outputs = json.loads(mlmodel["signature"]["outputs"])
    assert [o["name"] for o in outputs] == ["label", "probability_no", "probability_yes"]
    env = yaml.safe_load(files["python_env.yaml"])
    assert env["python"] == "3.13.0" and env["dependencies"] == ["-r requirements.txt"]
    conda = yaml.safe_load(files["conda.yaml"])
    assert conda["dependencies"][0] == "python=3.13.0"
    requirements = files["requirements.txt"].decode().split()
    assert requirements[0] == f"mlflow=={MLFLOW_VERSION}"
    assert f"onnxruntime=={signature.library_versions['onnxruntime']}" in requirements
    assert conda["dependencies"][-1] == {"pip": requirements}
    serving = json.loads(files["serving_input_example.json"])
    assert serving == {"dataframe_split": json.loads(files["input_example.json"])}


@pytest.mark.parametrize("estimator", ["logistic_regression", "lightgbm"])
def test_the_adapted_graph_predicts_what_the_version_predicts(estimator: str) -> None:
    frame = churn_frame(500, seed=12)
    _, onnx, signature = fit_and_export(frame.iloc[:400], CHURN_SCHEMA, estimator=estimator)
    rows = frame.iloc[400:].copy()
    rows.loc[rows.index[0], "region"] = "never seen"
    rows.loc[rows.index[1], ["age", "contract"]] = [np.nan, None]
    graph = mlflow_graph(onnx, signature.to_dict())
    session = ort.InferenceSession(graph.SerializeToString())

    assert [(i.name, i.shape) for i in session.get_inputs()][0] == ("age", [None])
    names = [o.name for o in session.get_outputs()]
    label, no, yes = session.run(names, _feed(signature.to_dict(), rows))

    expected = OnnxModel(onnx, signature).predict(rows)
    assert list(label) == list(expected.labels)
    assert np.abs(np.column_stack([no, yes]) - expected.probabilities).max() < 1e-6


def test_a_regressor_keeps_its_prediction_output() -> None:
    frame = churn_frame(300, seed=4)
    schema = {"age": FeatureType.NUMERIC, "contract": FeatureType.CATEGORICAL}
    _, onnx, signature = fit_and_export(
        frame, schema, target="monthly_charges", task=Task.REGRESSION, estimator="ridge"
    )
    files = mlflow_files(onnx, signature.to_dict(), python_version="3.13.0")
    outputs = json.loads(yaml.safe_load(files["MLmodel"])["signature"]["outputs"])
    assert outputs == [{"type": "float", "name": "variable", "required": True}]

    session = ort.InferenceSession(files["model.onnx"])
    (predicted,) = session.run(None, _feed(signature.to_dict(), frame))
    expected = OnnxModel(onnx, signature).predict(frame).labels
    assert np.abs(np.asarray(predicted).reshape(-1) - expected).max() < 1e-4


def test_a_single_input_keeps_its_column_shape() -> None:
    """MLflow feeds a one-input graph the DataFrame's 2-D values, so the input stays [n, 1]."""
    frame = churn_frame(300, seed=5)
    _, onnx, signature = fit_and_export(frame, {"tenure_months": FeatureType.NUMERIC})
    session = ort.InferenceSession(mlflow_graph(onnx, signature.to_dict()).SerializeToString())
    assert [i.shape for i in session.get_inputs()] == [[None, 1]]
    values = frame[["tenure_months"]].to_numpy(dtype=np.float32)
    _, *probabilities = session.run(None, {"tenure_months": values})
    expected = OnnxModel(onnx, signature).predict(frame).probabilities
    assert np.abs(np.column_stack(probabilities) - expected).max() < 1e-6


def test_a_signature_that_does_not_match_the_graph_is_refused(
    churn: tuple[bytes, Signature, pd.DataFrame],
) -> None:
    onnx, signature, _ = churn
    wrong = signature.to_dict()
    wrong["onnx_inputs"] = wrong["onnx_inputs"][1:]
    with pytest.raises(ValueError, match="the graph's inputs .* are not the signature's"):
        mlflow_graph(onnx, wrong)


def test_the_input_example_takes_typical_training_values_then_missing_ones() -> None:
    signature = {
        "inputs": [
            {"name": "age", "type": "numeric", "categories": []},
            {"name": "plan", "type": "categorical", "categories": ["basic", "pro"]},
            {"name": "seats", "type": "numeric", "categories": []},
        ]
    }
    profile = {
        "features": {
            "age": {"type": "numeric", "mean": 41.23456},
            "plan": {"type": "categorical", "counts": {"basic": 3, "pro": 9, "": 20}},
            "seats": {"type": "numeric", "mean": None},
        }
    }
    assert input_example(signature, profile) == {
        "columns": ["age", "plan", "seats"],
        "data": [[41.23, "pro", 0.0], [None, "", None]],
    }
    assert input_example(signature)["data"][0] == [0.0, "basic", 0.0]


@pytest.mark.parametrize(
    "value",
    ["yes", "3.11", "a: b", "-r x.txt", 'it\'s "quoted"', "", "null", "x\ny", "ünï"],
)
def test_yaml_strings_read_back_as_written(value: str) -> None:
    document = {"key": value, "list": [value, {"nested": value}], "n": 1.5, "none": None}
    assert yaml.safe_load(yaml_text(document)) == document


def test_a_subgraph_reading_an_input_reads_the_unsqueezed_column() -> None:
    """An `If` branch reads the outer graph's input by name: it gets the [n, 1] column too."""
    from onnx import TensorProto, helper

    def branch(name: str, source: str) -> Any:
        out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [None, 1])
        return helper.make_graph(
            [helper.make_node("Identity", [source], [f"{name}_out"])], name, [], [out]
        )

    columns = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in "ab"]
    node = helper.make_node(
        "If", ["yes"], ["variable"], then_branch=branch("then", "a"), else_branch=branch("e", "b")
    )
    graph = helper.make_graph(
        [node],
        "choice",
        columns,
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("yes", TensorProto.BOOL, [], [True])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    signature = {
        "inputs": [{"name": n, "type": "numeric"} for n in "ab"],
        "classes": None,
        "onnx_inputs": [{"name": n, "elem_type": "float", "shape": [None, 1]} for n in "ab"],
        "onnx_outputs": [{"name": "variable", "elem_type": "float", "shape": [None, 1]}],
    }

    adapted = mlflow_graph(model.SerializeToString(), signature)
    session = ort.InferenceSession(adapted.SerializeToString())
    a = np.array([1.5, 2.5], dtype=np.float32)
    (chosen,) = session.run(None, {"a": a, "b": np.zeros(2, dtype=np.float32)})
    assert chosen.tolist() == [[1.5], [2.5]]
