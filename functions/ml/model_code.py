"""Your own model code: `[model] factory = "package.module:function"`, a function in the folder
`[train] code` names, builds the model instead of an allow-listed estimator.

The contract: the function is called with one `FeatureContract` (the feature columns by
type, the task, the target, the seed and `[model] params`) and returns an unfitted
scikit-learn estimator or Pipeline:

- a Pipeline (or any estimator whose first step reads columns by name, e.g. a
  ColumnTransformer) receives the feature frame as is: one column per feature, numeric
  columns as float64 with NaN for missing, categorical ones as strings with `""` for missing.
  It does all the preprocessing itself;
- any other estimator (an `LGBMClassifier`, a `RandomForestRegressor` ...) is put behind the
  built-in preprocessing (`functions.ml.training.preprocessor`).

Either way the fitted model is converted to ONNX with skl2onnx, every step through a
registered converter, and must pass the parity check. A step without a converter fails the
run with `UnconvertibleStepError` (`functions.ml.onnx_model`). The code is imported from the
folder (put first on `sys.path`); serving never imports it, it scores the ONNX graph.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.common.config.dataset import FeatureType, Task

MODEL_CODE_DIR = "model_code"
"""Where an image ships the `[train] code` folder, under its code root (the Lambda task root,
`/opt/program` in the SageMaker image)."""


class ModelCodeError(ValueError):
    """The factory cannot be loaded, or what it returns is not a model; the message names the
    factory and the problem."""


@dataclass(frozen=True)
class FeatureContract:
    """What a factory is told about the model to build."""

    task: Task
    """classification or regression."""
    numeric: tuple[str, ...]
    """Numeric feature columns (float64, NaN is missing), in the dataset's order."""
    categorical: tuple[str, ...]
    """Categorical feature columns (strings, `""` is missing), in the dataset's order."""
    target: str
    seed: int
    """The run's seed (`[model] seed`): give it to anything random."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """`[model] params`, passed through untouched for the factory to use as it likes."""

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    @classmethod
    def from_schema(
        cls,
        schema: Mapping[str, FeatureType],
        *,
        task: Task,
        target: str,
        seed: int,
        params: Mapping[str, Any] | None = None,
    ) -> FeatureContract:
        numeric = tuple(n for n, kind in schema.items() if FeatureType(kind) is FeatureType.NUMERIC)
        categorical = tuple(n for n in schema if n not in numeric)
        return cls(Task(task), numeric, categorical, target, seed, dict(params or {}))


@dataclass(frozen=True)
class LoadedFactory:
    spec: str
    function: Callable[[FeatureContract], Any]
    module_file: str
    """The file the factory's module was imported from (the shipped copy in an image)."""
    code_sha256: str | None
    """sha256 over the code folder's files (paths and contents), None without a folder."""

    def describe(self) -> dict[str, Any]:
        """What the run record keeps about the model code."""
        return {"factory": self.spec, "module_file": self.module_file, "sha256": self.code_sha256}


def load_factory(spec: str, code_dir: Path | None) -> LoadedFactory:
    """Import `package.module:function` with `code_dir` first on sys.path. Raises
    ModelCodeError naming the factory and what is wrong (no folder, no module, no such
    function, not callable)."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ModelCodeError(f"model.factory {spec!r}: write it as package.module:function")
    if code_dir is not None:
        if not code_dir.is_dir():
            raise ModelCodeError(
                f"model.factory {spec!r}: the model code folder {code_dir} (train.code) does "
                "not exist"
            )
        folder = str(code_dir.resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    where = f"in {code_dir}" if code_dir is not None else "(no train.code folder is configured)"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise ModelCodeError(
                f"model.factory {spec!r}: module {module_name!r} not found {where}"
            ) from None
        raise ModelCodeError(
            f"model.factory {spec!r}: module {module_name!r} imports {missing!r}, which is not "
            "installed (the training image has only its pinned packages)"
        ) from None
    except Exception as exc:
        raise ModelCodeError(
            f"model.factory {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise ModelCodeError(
            f"model.factory {spec!r}: module {module_name!r} ({module.__file__}) has no "
            f"{function_name!r}"
        )
    if not callable(function):
        raise ModelCodeError(
            f"model.factory {spec!r}: {function_name!r} is a {type(function).__name__}, not a "
            "function"
        )
    return LoadedFactory(
        spec, function, str(module.__file__), code_sha256(code_dir) if code_dir else None
    )


def build_estimator(factory: LoadedFactory, contract: FeatureContract) -> Any:
    """Call the factory and check what it returns: an unfitted scikit-learn estimator (a
    fresh `clone` of it is returned), with `predict_proba` for classification. Raises
    ModelCodeError otherwise, and for an exception the factory raises."""
    from sklearn.base import clone

    try:
        built = factory.function(contract)
    except Exception as exc:
        raise ModelCodeError(
            f"model.factory {factory.spec!r} raised {type(exc).__name__}: {exc}"
        ) from None
    described = f"{type(built).__module__}.{type(built).__qualname__}"
    if not (hasattr(built, "fit") and hasattr(built, "get_params")):
        raise ModelCodeError(
            f"model.factory {factory.spec!r} returned a {described}, not an unfitted "
            "scikit-learn estimator or Pipeline (it needs fit and get_params)"
        )
    try:
        estimator = clone(built)
    except Exception as exc:
        raise ModelCodeError(
            f"model.factory {factory.spec!r} returned a {described} that scikit-learn cannot "
            f"clone: {exc}"
        ) from None
    if contract.task is Task.CLASSIFICATION and not hasattr(estimator, "predict_proba"):
        raise ModelCodeError(
            f"model.factory {factory.spec!r} returned a {described} without predict_proba: "
            "a classification model must give class probabilities"
        )
    return estimator


def reads_columns(estimator: Any) -> bool:
    """Whether `estimator` takes the feature frame itself (a Pipeline, or a ColumnTransformer
    first), rather than a numeric matrix behind the built-in preprocessing."""
    first = estimator.steps[0][1] if hasattr(estimator, "steps") else estimator
    return hasattr(estimator, "steps") or hasattr(first, "transformers")


def code_sha256(folder: Path) -> str:
    """sha256 over the folder's files (relative paths and contents; bytecode left out)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or "__pycache__" in relative.parts or path.suffix == ".pyc":
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def shipped_code_dir(code_root: str | None) -> Path | None:
    """The model code folder an image ships under `code_root` (`MODEL_CODE_DIR`), None
    without a code root."""
    return Path(code_root) / MODEL_CODE_DIR if code_root else None
