"""Splitting, pipeline building and fitting: every allow-listed estimator, reproducibly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from functions.common.config.dataset import Task
from functions.common.config.training import ModelConfig
from functions.ml.features import model_frame, target_array
from functions.ml.sample_data import churn_frame
from functions.ml.training import FitResult, build_pipeline, fit_model, split_dataset
from tests.helpers.estimators import estimator_cases
from tests.helpers.models import CHURN_SCHEMA

# Regression variant: predict monthly charges from the rest (missing ages, payment methods,
# regions and total charges included).
REGRESSION_SCHEMA = {name: kind for name, kind in CHURN_SCHEMA.items() if name != "monthly_charges"}
SMALL = {"random_forest": {"n_estimators": 5}, "hist_gradient_boosting": {"max_iter": 10}}
CASES = estimator_cases()


def _data(task: Task, rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, str, dict]:
    frame = churn_frame(rows, seed)
    if task is Task.CLASSIFICATION:
        return frame, "churned", CHURN_SCHEMA
    return frame, "monthly_charges", REGRESSION_SCHEMA


def _fit(task: Task, estimator: str, model: ModelConfig, rows: int) -> FitResult:
    """`estimator` fitted by `fit_model` on `rows` rows of `_data(task)`."""
    frame, target, schema = _data(task, rows=rows)
    return fit_model(
        frame, target=target, task=task, schema=schema, model=model, estimator=estimator
    )


@pytest.mark.parametrize(("task", "estimator"), CASES, ids=lambda v: str(v))
def test_every_allow_listed_estimator_fits_and_predicts(task: Task, estimator: str) -> None:
    frame, target, schema = _data(task)
    assert frame[list(schema)].isna().any().any(), "the data should have missing values"

    pipeline = build_pipeline(
        task=task, estimator=estimator, params=SMALL.get(estimator, {}), schema=schema, seed=1
    )
    pipeline.fit(model_frame(frame, schema), target_array(frame, target, task))
    predicted = pipeline.predict(model_frame(frame.head(20), schema))

    assert len(predicted) == 20
    if task is Task.CLASSIFICATION:
        assert set(predicted) <= {"yes", "no"}
    else:
        assert np.isfinite(predicted.astype(float)).all()


def test_an_unknown_estimator_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'catboost'.*logistic_regression, random_forest"):
        build_pipeline(
            task=Task.CLASSIFICATION, estimator="catboost", params={}, schema=CHURN_SCHEMA, seed=0
        )
    with pytest.raises(ValueError, match="'ridge' for classification"):
        build_pipeline(
            task=Task.CLASSIFICATION, estimator="ridge", params={}, schema=CHURN_SCHEMA, seed=0
        )


def test_an_unknown_hyperparameter_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'n_trees' for random_forest; allowed: .*n_estimators"):
        build_pipeline(
            task=Task.REGRESSION,
            estimator="random_forest",
            params={"n_trees": 10},
            schema=REGRESSION_SCHEMA,
            seed=0,
        )


def test_the_seed_reaches_the_estimator_and_params_are_applied() -> None:
    pipeline = build_pipeline(
        task=Task.CLASSIFICATION,
        estimator="random_forest",
        params={"n_estimators": 7},
        schema=CHURN_SCHEMA,
        seed=123,
    )

    model = pipeline.named_steps["model"]
    assert (model.random_state, model.n_estimators) == (123, 7)


def test_same_seed_same_split_and_same_predictions() -> None:
    frame, target, schema = _data(Task.CLASSIFICATION, rows=400)
    model = ModelConfig(params={"n_estimators": 5}, seed=9)

    def run() -> tuple[dict, np.ndarray]:
        split = split_dataset(
            frame, target=target, task=Task.CLASSIFICATION, test_size=0.25, seed=9
        )
        fit = fit_model(
            split.train,
            target=target,
            task=Task.CLASSIFICATION,
            schema=schema,
            model=model,
            estimator="random_forest",
        )
        return split.describe(), fit.pipeline.predict_proba(model_frame(split.test, schema))

    first, second = run(), run()
    other = split_dataset(frame, target=target, task=Task.CLASSIFICATION, test_size=0.25, seed=10)

    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert other.describe()["test_rows_sha256"] != first[0]["test_rows_sha256"]


def test_classification_split_is_stratified_and_recorded() -> None:
    frame, target, _ = _data(Task.CLASSIFICATION, rows=500)

    split = split_dataset(frame, target=target, task=Task.CLASSIFICATION, test_size=0.2, seed=3)
    record = split.describe()

    assert json.loads(json.dumps(record)) == record
    assert record["stratified"] is True
    assert record["fallback_reason"] is None
    assert (record["rows_train"], record["rows_test"]) == (400, 100)
    counts = record["class_counts"]
    overall = frame[target].value_counts(normalize=True)
    for label in ("yes", "no"):
        assert counts["train"][label] + counts["test"][label] == (frame[target] == label).sum()
        assert abs(counts["test"][label] / 100 - overall[label]) <= 0.01
    assert set(split.test.index).isdisjoint(split.train.index)


def test_a_class_too_small_to_stratify_falls_back_with_a_reason() -> None:
    frame, target, _ = _data(Task.CLASSIFICATION, rows=100)
    frame.loc[frame.index[0], target] = "maybe"

    split = split_dataset(frame, target=target, task=Task.CLASSIFICATION, test_size=0.2, seed=3)

    assert split.stratified is False
    assert split.fallback_reason is not None and "'maybe'" in split.fallback_reason
    assert split.describe()["fallback_reason"] == split.fallback_reason


def test_the_test_rows_hash_ignores_row_order() -> None:
    frame, target, _ = _data(Task.REGRESSION, rows=200)
    split = split_dataset(frame, target=target, task=Task.REGRESSION, test_size=0.3, seed=1)
    shuffled = split.test.sample(frac=1.0, random_state=0).reset_index(drop=True)

    from functions.ml.training import rows_sha256

    assert split.stratified is False
    assert rows_sha256(shuffled) == split.describe()["test_rows_sha256"]


def test_grid_search_records_every_combination_and_uses_the_best() -> None:
    model = ModelConfig(
        params={"max_iter": 5}, grid={"max_depth": [2, 3], "learning_rate": [0.1, 0.3]}
    )

    fit = _fit(Task.CLASSIFICATION, "hist_gradient_boosting", model, rows=300)

    assert fit.search is not None
    assert fit.search["metric"] == "roc_auc"
    assert len(fit.search["candidates"]) == 4
    best = max(fit.search["candidates"], key=lambda c: c["mean_score"])
    assert fit.search["best"] == best
    assert fit.params["max_iter"] == 5
    assert {k: fit.params[k] for k in ("max_depth", "learning_rate")} == best["params"]
    assert fit.pipeline.named_steps["model"].max_depth == best["params"]["max_depth"]
    assert json.loads(json.dumps(fit.search)) == fit.search


def test_regression_grid_search_reports_rmse_as_a_positive_loss() -> None:
    fit = _fit(Task.REGRESSION, "ridge", ModelConfig(grid={"alpha": [0.1, 10.0]}), rows=200)

    assert fit.search is not None
    assert fit.search["metric"] == "rmse" and fit.search["greater_is_better"] is False
    scores = [c["mean_score"] for c in fit.search["candidates"]]
    assert all(score > 0 for score in scores)
    assert fit.search["best"]["mean_score"] == min(scores)


def test_an_unknown_grid_parameter_is_an_error() -> None:
    with pytest.raises(ValueError, match="'depth'"):
        _fit(Task.REGRESSION, "random_forest", ModelConfig(grid={"depth": [1, 2]}), rows=50)
