"""Split, build and fit: the scikit-learn half of the train stage.

The pipeline is `preprocess` (a ColumnTransformer) then `model` (an allow-listed estimator):

- numeric columns: median imputation (a column with no value in training is kept and imputed
  as 0, so the graph still has its input), then standard scaling for the linear estimators only.
  Tree ensembles are scale-invariant, and scaling in front of them breaks ONNX parity: the
  exported graph computes in float32, so a scaled value can land one ulp on the other side of a
  split threshold (measured on the churn data: up to 0.11 probability difference on 1-2 % of the
  rows with scaling, 1e-7 without).
- categorical columns: `""` (missing, see `functions.ml.features`) imputed as the constant
  `"__missing__"`, then one-hot encoding that ignores categories unseen in training.

Every estimator with a `random_state` gets the run's seed, so a run is reproducible.

`[model] calibrate` wraps the model step in scikit-learn's `CalibratedClassifierCV` (isotonic or
sigmoid, on seeded stratified folds of the training split); skl2onnx converts it like any step,
so the calibrated model is exported and parity-checked as any other.

`lightgbm` and `xgboost` are the frameworks' own estimators (`functions.ml.boosting`), imported
when a model uses them. A factory (`functions.ml.model_code`) builds the model instead: its
Pipeline as is, or its estimator behind this preprocessing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.training import ESTIMATORS, ModelConfig
from functions.ml.boosting import (
    FRAMEWORKS,
    boosting_steps,
    estimator_class,
    native_param_names,
    unconvertible,
)
from functions.ml.features import model_frame, target_array
from functions.ml.metrics import GREATER_IS_BETTER, primary_metric
from functions.ml.model_code import (
    FeatureContract,
    LoadedFactory,
    ModelCodeError,
    build_estimator,
    reads_columns,
)
from functions.ml.onnx_input import MISSING_CATEGORY

MISSING_FILL = "__missing__"
MODEL_STEP = "model"

_FACTORIES: dict[tuple[Task, str], Callable[[], BaseEstimator]] = {
    (Task.CLASSIFICATION, "logistic_regression"): LogisticRegression,
    (Task.CLASSIFICATION, "random_forest"): RandomForestClassifier,
    (Task.CLASSIFICATION, "hist_gradient_boosting"): HistGradientBoostingClassifier,
    (Task.REGRESSION, "linear_regression"): LinearRegression,
    (Task.REGRESSION, "ridge"): Ridge,
    (Task.REGRESSION, "random_forest"): RandomForestRegressor,
    (Task.REGRESSION, "hist_gradient_boosting"): HistGradientBoostingRegressor,
}
_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 1000},
    **{name: dict(framework.defaults) for name, framework in FRAMEWORKS.items()},
}
_SCALED = frozenset({"logistic_regression", "linear_regression", "ridge"})
# GridSearchCV scorer names of the primary metrics (scikit-learn negates losses).
SCORERS = {"roc_auc": "roc_auc", "f1_macro": "f1_macro", "rmse": "neg_root_mean_squared_error"}


@dataclass(frozen=True)
class Split:
    """A train/test split of the curated rows (each side keeps the original row index)."""

    train: pd.DataFrame
    test: pd.DataFrame
    stratified: bool
    seed: int
    test_size: float
    target: str = ""
    fallback_reason: str | None = None
    """Why a classification split is not stratified (a class too small for both sides)."""
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the split, enough to tell whether two runs held out the same
        rows: sizes, seed, stratification and class counts per side, and a sha256 over the
        sorted hashes of the test rows (values only, independent of row order and index)."""
        return {
            "rows_train": len(self.train),
            "rows_test": len(self.test),
            "test_size": self.test_size,
            "seed": self.seed,
            "stratified": self.stratified,
            "fallback_reason": self.fallback_reason,
            "class_counts": self.class_counts,
            "test_rows_sha256": rows_sha256(self.test),
        }


def rows_sha256(frame: pd.DataFrame) -> str:
    """sha256 of the sorted per-row hashes of `frame` (its values, not its index or order)."""
    hashes = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64))
    return hashlib.sha256(hashes.astype("<u8").tobytes()).hexdigest()


def split_dataset(
    frame: pd.DataFrame, *, target: str, task: Task, test_size: float, seed: int
) -> Split:
    """Hold out `test_size` of the rows (at random, seeded). Classification splits are
    stratified on the target, unless a class has too few rows to appear on both sides; the
    split then falls back to a plain random one and records why."""
    if len(frame) < 2:
        raise ValueError(f"need at least 2 rows to split, got {len(frame)}")
    stratify = None
    reason = None
    classification = Task(task) is Task.CLASSIFICATION
    if classification:
        labels = target_array(frame, target, task)
        reason = _stratification_problem(labels, len(frame), test_size)
        stratify = labels if reason is None else None
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify
    )
    counts: dict[str, dict[str, int]] = {}
    if classification:
        counts = {"train": _class_counts(train[target]), "test": _class_counts(test[target])}
    return Split(
        train=train,
        test=test,
        stratified=stratify is not None,
        seed=seed,
        test_size=test_size,
        target=target,
        fallback_reason=reason,
        class_counts=counts,
    )


def _stratification_problem(labels: np.ndarray, rows: int, test_size: float) -> str | None:
    classes, counts = np.unique(labels, return_counts=True)
    smallest = int(counts.min())
    if smallest < 2:
        rare = ", ".join(repr(str(c)) for c, n in zip(classes, counts, strict=True) if n < 2)
        return f"class(es) {rare} have a single row; a stratified split needs 2 per class"
    test_rows = int(np.ceil(test_size * rows))
    if test_rows < len(classes) or rows - test_rows < len(classes):
        return (
            f"{test_rows} test row(s) and {rows - test_rows} training row(s) cannot hold all "
            f"{len(classes)} classes"
        )
    return None


def _class_counts(column: pd.Series) -> dict[str, int]:
    counts = column.astype(str).value_counts().sort_index()
    return {str(label): int(count) for label, count in counts.items()}


def _estimator(task: Task, estimator: str) -> BaseEstimator:
    allowed = ESTIMATORS[task]
    if estimator not in allowed:
        raise ValueError(
            f"unknown estimator {estimator!r} for {task.value}; choose one of: {', '.join(allowed)}"
        )
    if estimator in FRAMEWORKS:
        model: BaseEstimator = estimator_class(estimator, task)()
        return model
    return _FACTORIES[(task, estimator)]()


def estimator_param_names(task: Task, estimator: str) -> list[str]:
    """The hyperparameters the estimator takes, as the estimator itself lists them
    (`get_params`), sorted. Raises ValueError for an estimator the task does not allow."""
    return sorted(_estimator(Task(task), estimator).get_params(deep=False))


def estimator_params(
    *, task: Task, estimator: str, params: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """The hyperparameters the estimator gets: defaults, the seed (`random_state`, where the
    estimator has one) and `params`, which win. Unknown names raise ValueError listing the
    allowed ones."""
    allowed = estimator_param_names(task, estimator)
    unknown = sorted(set(params) - set(allowed) - native_param_names(estimator))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for {estimator}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    refused = unconvertible(estimator, params)
    if refused:
        raise ValueError(f"{estimator}: " + "; ".join(refused))
    effective: dict[str, Any] = dict(_DEFAULT_PARAMS.get(estimator, {}))
    if "random_state" in allowed:
        effective["random_state"] = seed
    effective.update(params)
    return effective


def build_pipeline(
    *,
    task: Task,
    estimator: str,
    params: Mapping[str, Any],
    schema: Mapping[str, FeatureType],
    seed: int,
) -> Pipeline:
    """An unfitted `preprocess` + `model` pipeline for `schema` (see the module docstring)."""
    task = Task(task)
    model = _estimator(task, estimator)
    model.set_params(**estimator_params(task=task, estimator=estimator, params=params, seed=seed))
    preprocess = preprocessor(schema, scaled=estimator in _SCALED)
    return Pipeline([("preprocess", preprocess), (MODEL_STEP, model)])


def preprocessor(schema: Mapping[str, FeatureType], *, scaled: bool = False) -> ColumnTransformer:
    """The built-in preprocessing of the feature frame (see the module docstring): imputed
    (and, with `scaled`, standardised) numeric columns, then one-hot encoded categories."""
    numeric = [name for name, kind in schema.items() if FeatureType(kind) is FeatureType.NUMERIC]
    categorical = [name for name in schema if name not in numeric]
    if not schema:
        raise ValueError("the schema has no feature columns")
    branches: list[tuple[str, Any, list[str]]] = []
    if numeric:
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        steps: list[tuple[str, Any]] = [("impute", impute)]
        if scaled:
            steps.append(("scale", StandardScaler()))
        branches.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        encode = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(
                        missing_values=MISSING_CATEGORY,
                        strategy="constant",
                        fill_value=MISSING_FILL,
                    ),
                ),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        branches.append(("categorical", encode, categorical))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)


def factory_pipeline(factory: LoadedFactory, contract: FeatureContract) -> Pipeline:
    """The unfitted pipeline a factory builds (see `functions.ml.model_code`): its Pipeline as
    is, or its estimator as the `model` step behind the built-in preprocessing. Raises
    ModelCodeError for what the factory returns that cannot be trained here or converted
    (a LightGBM or XGBoost step set to what ONNX cannot hold, `boosting.unconvertible`)."""
    built = build_estimator(factory, contract)
    if reads_columns(built):
        pipeline = built if isinstance(built, Pipeline) else Pipeline([(MODEL_STEP, built)])
    else:
        schema = dict.fromkeys(contract.numeric, FeatureType.NUMERIC) | dict.fromkeys(
            contract.categorical, FeatureType.CATEGORICAL
        )
        pipeline = Pipeline([("preprocess", preprocessor(schema)), (MODEL_STEP, built)])
    problems = [
        f"step {path!r} ({type(step).__name__}) {problem}"
        for path, framework, step in boosting_steps(pipeline)
        for problem in unconvertible(framework, step.get_params(deep=False))
    ]
    if problems:
        raise ModelCodeError(f"model.factory {factory.spec!r}: " + "; ".join(problems))
    return pipeline


def final_estimator(pipeline: Any) -> Any:
    """The estimator at the end of a (possibly nested) Pipeline: the one that predicts."""
    while hasattr(pipeline, "steps"):
        pipeline = pipeline.steps[-1][1]
    return pipeline


def grid_problems(estimator: str, grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """`boosting.unconvertible` for every candidate value of a grid."""
    return list(
        dict.fromkeys(
            problem
            for name, values in grid.items()
            for value in values
            for problem in unconvertible(estimator, {name: value})
        )
    )


@dataclass(frozen=True)
class FitResult:
    pipeline: Pipeline
    params: dict[str, Any]
    """Effective estimator hyperparameters: defaults, seed, the config's and the best grid's."""
    search: dict[str, Any] | None
    """The grid search record (every combination's mean/std score, the best), if one ran."""
    fit_seconds: float
    metric: str | None = None
    """The metric the grid search optimised (the task's primary metric), if one ran."""


def fit_model(
    train: pd.DataFrame,
    *,
    target: str,
    task: Task,
    schema: Mapping[str, FeatureType],
    model: ModelConfig,
    estimator: str,
    factory: LoadedFactory | None = None,
) -> FitResult:
    """Fit the configured pipeline (the factory's, with `factory`) on the training split. With
    `model.grid`, run a cross-validated grid search (stratified, shuffled, seeded folds for
    classification; the task's primary metric as score) and refit the best combination on the
    whole split. A factory's grid names its pipeline's own parameters (`model__num_leaves`)."""
    task = Task(task)
    features = model_frame(train, schema)
    y = target_array(train, target, task)
    if factory is not None:
        contract = FeatureContract.from_schema(
            schema, task=task, target=target, seed=model.seed, params=model.params
        )
        pipeline = factory_pipeline(factory, contract)
        params = {
            name: json_value(value)
            for name, value in final_estimator(pipeline).get_params(deep=False).items()
            if value is None or isinstance(value, (str, int, float, bool, np.generic))
        }
        unknown = sorted(set(model.grid or {}) - set(pipeline.get_params(deep=True)))
        if unknown:
            raise ModelCodeError(
                f"model.grid names {', '.join(map(repr, unknown))}, not parameters of the "
                f"pipeline model.factory {factory.spec!r} builds (use its own names, e.g. "
                f"{MODEL_STEP}__<parameter>)"
            )
        grid_names = {name: list(values) for name, values in (model.grid or {}).items()}
    else:
        params = estimator_params(
            task=task, estimator=estimator, params=model.params, seed=model.seed
        )
        if model.grid:
            estimator_params(
                task=task,
                estimator=estimator,
                params=dict.fromkeys(model.grid),
                seed=model.seed,
            )
            refused = grid_problems(estimator, model.grid)
            if refused:
                raise ValueError(f"{estimator}: " + "; ".join(refused))
        pipeline = build_pipeline(
            task=task, estimator=estimator, params=model.params, schema=schema, seed=model.seed
        )
        grid_names = {
            f"{MODEL_STEP}__{name}": list(values) for name, values in (model.grid or {}).items()
        }
    if model.calibrate is not None:
        if task is not Task.CLASSIFICATION:
            raise ValueError(
                f"model.calibrate {model.calibrate!r} calibrates a classifier's probabilities; "
                f"the task is {task.value}"
            )
        frameworks = sorted({framework for _, framework, _ in boosting_steps(pipeline)})
        if frameworks:
            raise ValueError(
                f"model.calibrate is not available for {', '.join(frameworks)}: skl2onnx "
                "converts a calibrated LightGBM or XGBoost model with probabilities that differ "
                "from the model's (measured: by up to 0.46), so it could not pass parity"
            )
        last = pipeline.steps[-1][0]
        pipeline = calibrated(pipeline, model.calibrate, folds=model.cv_folds, seed=model.seed)
        grid_names = {_calibrated_name(name, last): values for name, values in grid_names.items()}
    started = time.perf_counter()
    if not model.grid:
        pipeline.fit(features, y)
        return FitResult(pipeline, params, None, time.perf_counter() - started)
    metric = primary_metric(task, len(np.unique(y)) if task is Task.CLASSIFICATION else 0)
    folds = (
        StratifiedKFold(model.cv_folds, shuffle=True, random_state=model.seed)
        if task is Task.CLASSIFICATION
        else KFold(model.cv_folds, shuffle=True, random_state=model.seed)
    )
    search = GridSearchCV(
        pipeline,
        grid_names,
        scoring=SCORERS[metric],
        cv=folds,
        refit=True,
        error_score="raise",
    )
    search.fit(features, y)
    seconds = time.perf_counter() - started
    record = _search_record(search, metric, model.cv_folds)
    return FitResult(
        pipeline=search.best_estimator_,
        params={**params, **record["best"]["params"]},
        search=record,
        fit_seconds=seconds,
        metric=metric,
    )


CALIBRATED_STEP = "estimator"
"""The parameter prefix of the estimator inside `CalibratedClassifierCV`."""


def calibrated(pipeline: Pipeline, method: str, *, folds: int, seed: int) -> Pipeline:
    """`pipeline` with its last step wrapped in `CalibratedClassifierCV(method)`: fitted on
    `folds` seeded, shuffled, stratified folds of what `pipeline` is fitted on, its
    probabilities the average of the folds' calibrated ones."""
    name, step = pipeline.steps[-1]
    wrapped = CalibratedClassifierCV(
        step,
        method=method,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        ensemble=True,
    )
    return Pipeline([*pipeline.steps[:-1], (name, wrapped)])


def _calibrated_name(name: str, last: str) -> str:
    """A grid parameter as it is named once the last step (`last`) is wrapped for
    calibration: the last step's own parameters move inside the wrapper, others stay."""
    step, _, rest = name.partition("__")
    return f"{step}__{CALIBRATED_STEP}__{rest}" if step == last and rest else name


def _search_record(search: GridSearchCV, metric: str, folds: int) -> dict[str, Any]:
    results = search.cv_results_
    # scikit-learn maximises, so losses come negated; record them in their natural sign.
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    prefix = f"{MODEL_STEP}__"
    candidates = [
        {
            "params": {
                name.removeprefix(prefix).removeprefix(f"{CALIBRATED_STEP}__"): json_value(value)
                for name, value in params.items()
            },
            "mean_score": sign * float(mean),
            "std_score": float(std),
            "rank": int(rank),
        }
        for params, mean, std, rank in zip(
            results["params"],
            results["mean_test_score"],
            results["std_test_score"],
            results["rank_test_score"],
            strict=True,
        )
    ]
    best = candidates[int(search.best_index_)]
    return {
        "metric": metric,
        "greater_is_better": GREATER_IS_BETTER[metric],
        "cv_folds": folds,
        "candidates": candidates,
        "best": best,
    }


def json_value(value: Any) -> Any:
    """numpy scalars -> Python scalars (hyperparameter values in JSON records)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
