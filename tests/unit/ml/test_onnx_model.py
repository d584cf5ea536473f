"""ONNX export: every allow-listed estimator converts and agrees with scikit-learn, also on
missing values and categories never seen in training; disagreement is caught."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pytest

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.training import ESTIMATORS, ModelConfig
from functions.ml.onnx_model import (
    OnnxModel,
    ParityError,
    Prediction,
    Signature,
    check_parity,
)
from functions.ml.sample_data import churn_frame
from tests.helpers.estimators import estimator_cases, estimator_param
from tests.helpers.models import CHURN_SCHEMA, fit_and_export

N = FeatureType.NUMERIC
# Every churn feature but monthly charges, the regression target.
SCHEMA = {name: kind for name, kind in CHURN_SCHEMA.items() if name != "monthly_charges"}
TARGETS = {Task.CLASSIFICATION: "churned", Task.REGRESSION: "monthly_charges"}
SMALL = {"random_forest": {"n_estimators": 5}, "hist_gradient_boosting": {"max_iter": 15}}
CASES = estimator_cases()
TOLERANCE = ModelConfig().parity_tolerance


def _train_and_export(
    task: Task, estimator: str, params: dict | None = None
) -> tuple[object, bytes, Signature, pd.DataFrame]:
    train = churn_frame(300, seed=1)
    pipeline, onnx_bytes, signature = fit_and_export(
        train,
        SCHEMA,
        ModelConfig(params=SMALL.get(estimator, {}) if params is None else params),
        target=TARGETS[task],
        task=task,
        estimator=estimator,
    )
    return pipeline, onnx_bytes, signature, train


def _hard_test_rows() -> pd.DataFrame:
    """Held-out rows with missing values of every kind and categories unseen in training, typed
    as curated Parquet reads back (Arrow strings)."""
    test = churn_frame(120, seed=2)
    test.loc[test.index[:10], "age"] = np.nan
    test.loc[test.index[5:15], "total_charges"] = np.nan
    test.loc[test.index[10:20], "region"] = "atlantis"
    test.loc[test.index[20:25], "contract"] = "three year"
    test.loc[test.index[25:30], "internet_service"] = None
    for name in ("contract", "payment_method", "internet_service", "region"):
        test[name] = test[name].astype(pd.ArrowDtype(pa.string()))
    return test


@pytest.mark.parametrize(("task", "estimator"), CASES, ids=lambda v: str(v))
def test_every_estimator_exports_and_matches_scikit_learn(task: Task, estimator: str) -> None:
    pipeline, onnx_bytes, signature, _ = _train_and_export(task, estimator)
    # What serving does: load the bytes and the signature as stored (JSON).
    stored = Signature.from_dict(json.loads(json.dumps(signature.to_dict())))
    model = OnnxModel(onnx_bytes, stored)
    test = _hard_test_rows()

    report = check_parity(pipeline, model, test, tolerance=TOLERANCE)
    prediction = model.predict(test)

    assert report.passed and report.rows == len(test)
    assert report.max_abs_difference <= TOLERANCE
    assert report.label_mismatches == report.tie_mismatches
    assert len(prediction.labels) == len(test)
    if task is Task.CLASSIFICATION:
        assert stored.classes == ["no", "yes"]
        assert prediction.probabilities is not None
        assert prediction.probabilities.shape == (len(test), 2)
        np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert stored.classes is None and prediction.probabilities is None
        assert report.max_relative_difference is not None
        assert report.max_relative_difference <= TOLERANCE


def test_the_graph_has_one_typed_input_per_column() -> None:
    _, onnx_bytes, signature, _ = _train_and_export(Task.CLASSIFICATION, "logistic_regression")
    graph = onnx.load_from_string(onnx_bytes).graph

    inputs = {value.name: value.type.tensor_type for value in graph.input}

    assert list(inputs) == list(SCHEMA)
    for name, kind in SCHEMA.items():
        expected = onnx.TensorProto.FLOAT if kind is N else onnx.TensorProto.STRING
        assert inputs[name].elem_type == expected
        assert [d.dim_value or None for d in inputs[name].shape.dim] == [None, 1]
    assert [o["name"] for o in signature.onnx_outputs] == ["label", "probabilities"]


def test_the_signature_lists_categories_seen_in_training() -> None:
    _, _, signature, train = _train_and_export(Task.CLASSIFICATION, "logistic_regression")

    inputs = {spec["name"]: spec for spec in signature.inputs}

    assert [spec["name"] for spec in signature.inputs] == list(SCHEMA)
    assert inputs["region"]["categories"] == sorted(train["region"].dropna().unique())
    assert inputs["region"]["type"] == "categorical" and inputs["region"]["nullable"] is True
    assert inputs["age"]["categories"] == [] and inputs["age"]["type"] == "numeric"
    assert signature.target == "churned" and signature.task == "classification"
    assert {"scikit-learn", "skl2onnx", "onnxruntime"} <= set(signature.library_versions)
    assert Signature.from_dict(signature.to_dict()) == signature


def test_a_model_that_disagrees_with_the_pipeline_fails_parity_naming_the_row() -> None:
    pipeline, _, _, _ = _train_and_export(Task.CLASSIFICATION, "logistic_regression")
    _, other_bytes, other_signature, _ = _train_and_export(
        Task.CLASSIFICATION, "logistic_regression", {"C": 0.001}
    )
    test = _hard_test_rows()

    with pytest.raises(ParityError) as caught:
        check_parity(pipeline, OnnxModel(other_bytes, other_signature), test, tolerance=TOLERANCE)

    report = caught.value.report
    assert not report.passed
    assert report.max_abs_difference > TOLERANCE
    assert report.worst_row is not None and int(report.worst_row) in test.index
    assert f"test row {report.worst_row} " in str(caught.value)


def test_a_perturbed_regression_graph_fails_parity() -> None:
    pipeline, onnx_bytes, signature, _ = _train_and_export(Task.REGRESSION, "ridge")
    graph = onnx.load_from_string(onnx_bytes)
    # Nudge the regressor's intercept: every prediction moves by 1 (about 1.5 %).
    (regressor,) = [node for node in graph.graph.node if node.op_type == "LinearRegressor"]
    (intercepts,) = [a for a in regressor.attribute if a.name == "intercepts"]
    intercepts.floats[0] += 1.0

    with pytest.raises(ParityError, match="relative difference"):
        check_parity(
            pipeline,
            OnnxModel(graph.SerializeToString(), signature),
            _hard_test_rows(),
            tolerance=TOLERANCE,
        )


def _stub(expected: np.ndarray, onnx_probabilities: np.ndarray, onnx_labels: list[str]):
    """A pipeline and a model whose outputs are given (to test the label rules alone)."""
    classes = ["a", "b"]
    pipeline = SimpleNamespace(predict_proba=lambda _: expected, classes_=np.array(classes))
    model = SimpleNamespace(
        signature=SimpleNamespace(schema={"x": N}, classes=classes),
        predict=lambda _: Prediction(np.array(onnx_labels, dtype=object), onnx_probabilities),
    )
    return pipeline, model


def test_a_label_flip_on_an_exact_tie_is_allowed_but_not_elsewhere() -> None:
    test = pd.DataFrame({"x": [1.0, 2.0]}, index=[10, 11])
    probabilities = np.array([[0.5, 0.5], [0.2, 0.8]])
    tie_pipeline, tie_model = _stub(probabilities, probabilities, ["b", "b"])
    flip_pipeline, flip_model = _stub(probabilities, probabilities, ["a", "a"])

    report = check_parity(tie_pipeline, tie_model, test, tolerance=TOLERANCE)

    assert report.passed and (report.label_mismatches, report.tie_mismatches) == (1, 1)
    with pytest.raises(ParityError, match="different labels on test row 11"):
        check_parity(flip_pipeline, flip_model, test, tolerance=TOLERANCE)


@pytest.mark.parametrize(
    "estimator", [estimator_param(name) for name in ESTIMATORS[Task.CLASSIFICATION]]
)
def test_multiclass_models_export_with_every_class(estimator: str) -> None:
    train = churn_frame(300, seed=1)
    schema = {name: kind for name, kind in SCHEMA.items() if name != "contract"}
    pipeline, onnx_bytes, signature = fit_and_export(
        train,
        schema,
        ModelConfig(params=SMALL.get(estimator, {})),
        target="contract",
        estimator=estimator,
    )

    report = check_parity(
        pipeline, OnnxModel(onnx_bytes, signature), _hard_test_rows(), tolerance=TOLERANCE
    )

    assert signature.classes == ["month-to-month", "one year", "two year"]
    assert report.passed


def test_a_feature_without_values_in_training_still_exports() -> None:
    train = churn_frame(200, seed=1).assign(age=np.nan)
    pipeline, onnx_bytes, signature = fit_and_export(train, SCHEMA)

    report = check_parity(
        pipeline, OnnxModel(onnx_bytes, signature), _hard_test_rows(), tolerance=TOLERANCE
    )

    assert report.passed
    assert [spec["name"] for spec in signature.inputs] == list(SCHEMA)
