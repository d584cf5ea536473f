"""LightGBM and XGBoost beside scikit-learn: their estimators (`[model] estimator = "lightgbm"`
or `"xgboost"`, or inside a factory's pipeline), their ONNX converters and what they cannot
convert.

The converters are onnxmltools', registered with skl2onnx (`update_registered_converter`) so
that `skl2onnx.convert_sklearn` converts a pipeline holding `LGBMClassifier`, `LGBMRegressor`,
`XGBClassifier` or `XGBRegressor` like any scikit-learn step. Each framework is imported only
when a model uses it: the training image installs both; the dev environment may lack XGBoost
(its CPU-only package `xgboost-cpu` needs Python 3.12 or newer).

What onnxmltools does not convert faithfully, and training and `mlops config check` therefore
refuse (`unconvertible`):

- categorical splits: LightGBM's `categorical_feature` and XGBoost's `enable_categorical` /
  `feature_types` (a split tests set membership on the framework's own category codes; the
  graph's inputs are the pipeline's numbers). Encode categories in the pipeline instead (the
  built-in preprocessing one-hot encodes them);
- LightGBM's `linear_tree` (leaves hold linear models; the converter keeps only the leaf
  values);
- XGBoost's `booster = "gblinear"` (no trees to convert) and `multi_strategy =
  "multi_output_tree"` (vector leaves);
- a custom (callable) objective of either framework (the converter reads the objective's name
  to pick the output transform).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from functions.common.config.dataset import Task


@dataclass(frozen=True)
class Framework:
    module: str
    requirement: str
    """The pinned package the training image installs."""
    classifier: str
    regressor: str
    defaults: Mapping[str, Any]
    """Hyperparameters set unless the config sets them."""


FRAMEWORKS: dict[str, Framework] = {
    "lightgbm": Framework(
        "lightgbm", "lightgbm==4.7.0", "LGBMClassifier", "LGBMRegressor", {"verbose": -1}
    ),
    "xgboost": Framework("xgboost", "xgboost-cpu==3.4.1", "XGBClassifier", "XGBRegressor", {}),
}
"""Estimator name (`[model] estimator`) -> its framework."""


class MissingFrameworkError(ValueError):
    """A model uses a framework this environment does not have installed."""


def framework_installed(estimator: str) -> bool:
    """Whether `estimator`'s framework can be imported here."""
    try:
        importlib.import_module(FRAMEWORKS[estimator].module)
    except ImportError:
        return False
    return True


def estimator_class(estimator: str, task: Task) -> type:
    """The framework's classifier or regressor class; MissingFrameworkError naming the package
    to install when the framework is not importable here."""
    framework = FRAMEWORKS[estimator]
    try:
        module = importlib.import_module(framework.module)
    except ImportError as exc:
        raise MissingFrameworkError(
            f"estimator {estimator!r} needs the {framework.module} package, which this "
            f"environment lacks ({exc}): the training image installs it; here, "
            f"pip install '{framework.requirement}'"
        ) from None
    register_converters()
    if Task(task) is not Task.CLASSIFICATION:
        regressor: type = getattr(module, framework.regressor)
        return regressor
    if estimator == "xgboost":
        return labelled_xgb_classifier()
    classifier: type = getattr(module, framework.classifier)
    return classifier


@functools.cache
def labelled_xgb_classifier() -> type:
    """`XGBClassifier` for any class labels: XGBoost's own takes only 0..n-1 (its `classes_`
    is `arange(n_classes_)`), the targets here are strings. This one encodes the labels in
    `fit`, and `classes_` and `predict` give them back; its ONNX graph's labels are the
    strings (onnxmltools' converter reads `classes_`)."""
    import numpy as np
    from xgboost import XGBClassifier

    class LabelledXGBClassifier(XGBClassifier):  # type: ignore[misc]
        def fit(self, X: Any, y: Any, **fit_params: Any) -> Any:
            labels, codes = np.unique(np.asarray(y), return_inverse=True)
            self.labels_ = None  # XGBoost's own fit checks its classes_: the codes
            super().fit(X, codes, **fit_params)
            self.labels_ = labels
            return self

        @property
        def classes_(self) -> Any:
            labels = getattr(self, "labels_", None)
            return super().classes_ if labels is None else labels

        def predict(self, X: Any, **kwargs: Any) -> Any:
            return self.classes_[np.asarray(super().predict(X, **kwargs), dtype=int)]

    LabelledXGBClassifier.__module__ = __name__
    LabelledXGBClassifier.__qualname__ = "LabelledXGBClassifier"
    return LabelledXGBClassifier


@functools.cache
def register_converters() -> tuple[str, ...]:
    """Register onnxmltools' converters for every installed framework's estimators with
    skl2onnx (once per process); returns the frameworks registered. A factory's pipeline may
    hold these estimators too, so training calls it before every conversion."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    registered = []
    for name, framework in FRAMEWORKS.items():
        try:
            module = importlib.import_module(framework.module)
        except ImportError:
            continue
        if name == "lightgbm":
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
                convert_lightgbm as convert,
            )
        else:
            from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
                convert_xgboost as convert,
            )
        update_registered_converter(
            getattr(module, framework.classifier),
            f"{name}_classifier",
            calculate_linear_classifier_output_shapes,
            convert,
            options=classifier_options,
        )
        update_registered_converter(
            getattr(module, framework.regressor),
            f"{name}_regressor",
            calculate_linear_regressor_output_shapes,
            convert,
        )
        if name == "xgboost":
            update_registered_converter(
                labelled_xgb_classifier(),
                "xgboost_labelled_classifier",
                calculate_linear_classifier_output_shapes,
                convert,
                options=classifier_options,
            )
        registered.append(name)
    return tuple(registered)


_REFUSED: dict[str, dict[str, str]] = {
    "lightgbm": {
        "categorical_feature": "categorical splits do not convert to ONNX; encode the "
        "categories in the pipeline (one-hot or ordinal) instead",
        "linear_tree": "linear trees do not convert to ONNX (the converter keeps only leaf values)",
    },
    "xgboost": {
        "enable_categorical": "categorical splits do not convert to ONNX; encode the "
        "categories in the pipeline (one-hot or ordinal) instead",
        "feature_types": "categorical feature types do not convert to ONNX; encode the "
        "categories in the pipeline instead",
        "booster": "only tree boosters (gbtree, dart) convert to ONNX",
        "multi_strategy": "multi-output trees do not convert to ONNX",
    },
}


def native_param_names(estimator: str) -> frozenset[str]:
    """The framework's own parameter names and aliases its scikit-learn estimator takes as
    keyword arguments beyond `get_params` (LightGBM: `verbose`, `min_data_in_leaf` ...), as
    the installed framework lists them; empty for other estimators or when it is missing."""
    if estimator != "lightgbm" or not framework_installed(estimator):
        return frozenset()
    from lightgbm.basic import _ConfigAliases

    aliases = _ConfigAliases._get_all_param_aliases()
    return frozenset(aliases) | frozenset(alias for names in aliases.values() for alias in names)


def unconvertible(estimator: str, params: Mapping[str, Any]) -> list[str]:
    """`param: why` for every hyperparameter value of a LightGBM or XGBoost estimator that
    onnxmltools cannot convert (see the module docstring); [] for other estimators."""
    refused = _REFUSED.get(estimator, {})
    problems = []
    for name, value in params.items():
        if callable(value) and name == "objective":
            problems.append("objective: a custom (callable) objective does not convert to ONNX")
            continue
        if name not in refused or not _set(name, value):
            continue
        problems.append(f"{name}: {refused[name]}")
    return problems


def _set(name: str, value: Any) -> bool:
    """Whether a refusable hyperparameter is set to a value that needs what cannot convert."""
    if name == "booster":
        return value == "gblinear"
    if name == "multi_strategy":
        return value == "multi_output_tree"
    if name == "feature_types":
        return value is not None and any(str(kind) == "c" for kind in value)
    if name in ("categorical_feature",):
        return value not in (None, "auto", "", [], ())
    return bool(value)


def framework_of(step: Any) -> str | None:
    """ "lightgbm" or "xgboost" for an estimator of those frameworks, else None."""
    module = type(step).__module__.partition(".")[0]
    return module if module in FRAMEWORKS else None


def boosting_steps(estimator: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(step path, framework, estimator) for every LightGBM or XGBoost estimator in
    `estimator` (itself, a Pipeline's steps, a ColumnTransformer's or FeatureUnion's
    transformers, recursively)."""
    for name, step in walk_steps(estimator, path):
        framework = framework_of(step)
        if framework is not None:
            yield name, framework, step


def walk_steps(estimator: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, step) for `estimator` and every step inside it; paths join step names with
    `__`, as scikit-learn's parameter names do."""
    yield path or type(estimator).__name__, estimator
    children: list[tuple[str, Any]] = []
    if hasattr(estimator, "steps"):
        children = list(estimator.steps)
    elif hasattr(estimator, "transformer_list"):
        children = list(estimator.transformer_list)
    elif hasattr(estimator, "transformers"):
        fitted = getattr(estimator, "transformers_", None)
        children = [(name, step) for name, step, _ in fitted or estimator.transformers]
    for name, child in children:
        if child is None or isinstance(child, str):
            continue  # "drop", "passthrough"
        yield from walk_steps(child, f"{path}__{name}" if path else name)
