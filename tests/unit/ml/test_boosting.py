"""LightGBM and XGBoost estimators: trained, converted to ONNX through onnxmltools' converters
registered with skl2onnx, and held to the parity check; what cannot convert is refused."""

from __future__ import annotations

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.dataset import FeatureType, Task
from functions.common.config.loading import parse_config
from functions.common.config.training import ModelConfig
from functions.ml import sample_data
from functions.ml.boosting import framework_installed
from functions.ml.config_check import check_training_config, training_problems
from functions.ml.onnx_model import OnnxModel, check_parity, export_onnx
from functions.ml.training import fit_model, split_dataset

SCHEMA = dict.fromkeys(sample_data.NUMERIC_FEATURES, FeatureType.NUMERIC) | dict.fromkeys(
    sample_data.CATEGORICAL_FEATURES, FeatureType.CATEGORICAL
)
CASES = [
    pytest.param(Task.CLASSIFICATION, "churned", id="binary"),
    pytest.param(Task.CLASSIFICATION, "contract", id="multiclass"),
    pytest.param(Task.REGRESSION, "monthly_charges", id="regression"),
]
FRAMEWORKS = [
    "lightgbm",
    pytest.param(
        "xgboost",
        marks=pytest.mark.skipif(
            not framework_installed("xgboost"),
            reason="xgboost-cpu is optional in the dev environment (the training image has it)",
        ),
    ),
]


@pytest.mark.parametrize("estimator", FRAMEWORKS)
@pytest.mark.parametrize(("task", "target"), CASES)
def test_converts_with_parity(estimator: str, task: Task, target: str) -> None:
    frame = sample_data.churn_frame(1_500, seed=7)
    schema = {name: kind for name, kind in SCHEMA.items() if name != target}
    split = split_dataset(frame, target=target, task=task, test_size=0.25, seed=3)
    fitted = fit_model(
        split.train,
        target=target,
        task=task,
        schema=schema,
        model=ModelConfig(estimator=estimator, params={"n_estimators": 60}, seed=3),
        estimator=estimator,
    )
    onnx_bytes, signature = export_onnx(
        fitted.pipeline, schema=schema, target=target, task=task, train=split.train
    )

    report = check_parity(
        fitted.pipeline, OnnxModel(onnx_bytes, signature), split.test, tolerance=1e-4
    )

    assert report.passed and report.rows == len(split.test)
    assert fitted.params["random_state"] == 3 and fitted.params["n_estimators"] == 60
    if task is Task.CLASSIFICATION:
        assert signature.classes == sorted(set(frame[target].astype(str)))
        assert report.label_mismatches == report.tie_mismatches


def _config(model: dict[str, object], train: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "dataset": {"name": "churn", "target": "churned", "task": "classification"},
        "model": model,
        **({"train": train} if train else {}),
    }


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            {"estimator": "lightgbm", "params": {"categorical_feature": [0, 2]}},
            "model.params.categorical_feature: categorical splits do not convert to ONNX",
        ),
        (
            {"estimator": "lightgbm", "params": {"linear_tree": True}},
            "model.params.linear_tree: linear trees do not convert",
        ),
        (
            {"estimator": "xgboost", "params": {"enable_categorical": True}},
            "model.params.enable_categorical: categorical splits do not convert to ONNX",
        ),
        (
            {"estimator": "xgboost", "params": {"booster": "gblinear"}},
            "model.params.booster: only tree boosters",
        ),
        (
            {"estimator": "xgboost", "grid": {"booster": ["gbtree", "gblinear"]}},
            "model.grid.booster: only tree boosters",
        ),
        (
            {"factory": "churn_model.pipeline:build"},
            "model.factory: 'churn_model.pipeline:build' needs train.code",
        ),
    ],
)
def test_config_check_refuses_what_onnx_cannot_hold(model: dict[str, object], problem: str) -> None:
    config = parse_config(_config(model))

    assert any(line.startswith(problem) for line in training_problems(config)), training_problems(
        config
    )
    with pytest.raises(ConfigError, match="invalid config"):
        check_training_config(config, "mlops.toml")


def test_config_check_accepts_convertible_boosting_settings() -> None:
    config = parse_config(
        _config({"estimator": "lightgbm", "params": {"num_leaves": 15, "n_estimators": 50}})
    )
    assert training_problems(config) == []
    factory = parse_config(_config({"factory": "pkg.mod:build"}, {"code": "model_code"}))
    assert training_problems(factory) == []


def test_a_lightgbm_typo_is_named_with_the_allowed_names() -> None:
    config = parse_config(_config({"estimator": "lightgbm", "params": {"num_leafs": 15}}))
    (problem,) = training_problems(config)
    assert problem.startswith("model.params.num_leafs: lightgbm takes no hyperparameter")
    assert "num_leaves" in problem


def test_lightgbm_takes_its_own_parameter_names_and_a_refusal_is_named_once() -> None:
    native = parse_config(
        _config(
            {"estimator": "lightgbm", "params": {"verbose": -1, "min_data_in_leaf": 5}},
        )
    )
    assert training_problems(native) == []
    categorical = parse_config(
        _config({"estimator": "lightgbm", "params": {"categorical_feature": [0]}})
    )
    (problem,) = training_problems(categorical)
    assert problem.startswith("model.params.categorical_feature") and "ONNX" in problem
