"""The model sections: the estimator (`[model]`), the promotion gate (`[gate]`) and the training
job (`[train]`, with its SageMaker backend)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from functions.common.config.base import NAME_PATTERN, Section
from functions.common.config.dataset import Task
from functions.common.config.insight import FairnessGateConfig
from functions.common.config.portfolio import FACTORY_PATTERN

_ECR_IMAGE = r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+([:@][\w.:-]+)?$"

ESTIMATORS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: (
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
        "xgboost",
    ),
    Task.REGRESSION: (
        "linear_regression",
        "ridge",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
        "xgboost",
    ),
}
"""The estimator allow-list per task (`[model] estimator`). `lightgbm` and `xgboost` are
LightGBM's and XGBoost's scikit-learn estimators, converted to ONNX by onnxmltools."""


class ModelConfig(Section):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    """Registered model name (`models/<name>/<version>/`); defaults to the dataset name."""
    estimator: str | None = None
    """One of `ESTIMATORS[task]`; defaults to logistic_regression / linear_regression."""
    factory: Annotated[str, Field(pattern=FACTORY_PATTERN)] | None = None
    """`package.module:function` in `[train] code`: returns the unfitted estimator or Pipeline
    (instead of `estimator`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters passed to the estimator (scikit-learn names)."""
    grid: dict[str, list[Any]] | None = None
    """Optional small grid search: parameter -> candidate values, scored by cross-validation
    on the training split; the best combination is refitted on the whole training split."""
    cv_folds: Annotated[int, Field(ge=2, le=10)] = 3
    test_size: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2
    seed: int = 42
    reference_sample_rows: Annotated[int, Field(ge=0, le=100_000)] = 1_000
    """Rows of training data kept (at random) in the reference profile for exact drift tests."""
    parity_tolerance: Annotated[float, Field(gt=0.0, le=1e-2)] = 1e-4
    """Max |probability difference| (or relative prediction difference for regression)
    between scikit-learn and ONNX on the test split; a larger one fails the run."""
    calibrate: Literal["isotonic", "sigmoid"] | None = None
    """Classification only: calibrate the classifier's probabilities (scikit-learn's
    `CalibratedClassifierCV`, cross-validated on the training split with `cv_folds` folds);
    the calibrated model is what is exported to ONNX and parity-checked."""

    @model_validator(mode="after")
    def _estimator_or_factory(self) -> ModelConfig:
        if self.estimator is not None and self.factory is not None:
            raise ValueError("set estimator or factory, not both")
        return self

    @field_validator("grid")
    @classmethod
    def _grid_small(cls, value: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if value is not None:
            combinations = 1
            for name, options in value.items():
                if not options:
                    raise ValueError(f"grid parameter {name!r} has no values")
                combinations *= len(options)
            if combinations > 50:
                raise ValueError(f"grid has {combinations} combinations; keep it to 50 or fewer")
        return value


class MetricThreshold(Section):
    """MLflow's `MetricThreshold` semantics for one metric."""

    threshold: float | None = None
    """Absolute bound: the candidate's value must be >= it (<= when lower is better)."""
    min_absolute_change: Annotated[float, Field(ge=0.0)] | None = None
    """The candidate must beat the champion by at least this (absolute; 0 = not worse)."""
    min_relative_change: Annotated[float, Field(ge=0.0)] | None = None
    """The candidate must beat the champion by at least this fraction of its value."""
    greater_is_better: bool | None = None
    """Defaults from the metric (True for scores, False for losses/errors)."""


class GateConfig(Section):
    metrics: dict[str, MetricThreshold] = Field(default_factory=dict)
    """Metric name -> criteria. Empty: the task's primary metric (roc_auc for binary,
    f1_macro for multiclass, rmse for regression) must not be worse than the champion's."""
    fairness: FairnessGateConfig = FairnessGateConfig()
    """Bounds on the candidate's disparity across `[dataset] fairness_attributes`."""


# Graviton (arm64) SageMaker instance families: a digit, then "g" (m7g, c6gn, r6gd, x2gd).
_GRAVITON_FAMILY = r"^[a-z]+\d+g[a-z]*$"


class SageMakerTrainingConfig(Section):
    """The SageMaker training job (`[train] backend = "sagemaker"`)."""

    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")] = "ml.m5.xlarge"
    instance_count: Annotated[int, Field(ge=1, le=1)] = 1
    """scikit-learn fits on one machine; more instances would only train copies."""
    volume_gb: Annotated[int, Field(ge=1, le=16_384)] = 30
    """The instance's storage volume: the training set is copied onto it."""
    max_runtime_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    """SageMaker stops the job after this long (the task then fails)."""
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    """The training image is built for this; Graviton (`ml.*g.*`) instances need arm64."""
    image: Annotated[str, Field(pattern=_ECR_IMAGE)] | None = None
    """An ECR image URI to train with instead of the one built from this repo; it must run
    `functions.train.sagemaker_entry` as its `train` program."""

    @property
    def graviton(self) -> bool:
        return re.match(_GRAVITON_FAMILY, self.instance_type.split(".")[1]) is not None

    @model_validator(mode="after")
    def _architecture_fits_instance(self) -> SageMakerTrainingConfig:
        needed = "arm64" if self.graviton else "x86_64"
        if self.architecture != needed:
            raise ValueError(
                f"train.sagemaker.architecture {self.architecture!r} does not run on "
                f"{self.instance_type} ({'Graviton' if self.graviton else 'x86_64'}): "
                f"use architecture = {needed!r}"
            )
        return self


class TrainConfig(Section):
    backend: Literal["lambda", "sagemaker"] = "lambda"
    """Where the Train step runs: the train Lambda function, or a SageMaker training job
    running the same training code (`[train.sagemaker]`)."""
    memory_mb: Annotated[int, Field(ge=512, le=10240)] = 3008
    timeout_seconds: Annotated[int, Field(ge=30, le=900)] = 900
    ephemeral_storage_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    reserved_concurrency: Annotated[int, Field(ge=1, le=100)] = 5
    """Reserved concurrency of each training-side pipeline function (train, or prepare and
    collect with SageMaker; evaluate; register): at most this many run at once, and the
    account's other functions keep the rest. Invocations beyond it are throttled, and the
    pipeline retries them."""
    sagemaker: SageMakerTrainingConfig = SageMakerTrainingConfig()
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")] | None = None
    """A folder of the repository (relative to the config file) holding the model code that
    `factory` names: shipped in the training image, `train-local` and the SageMaker job."""
