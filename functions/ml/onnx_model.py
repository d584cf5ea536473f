"""scikit-learn pipeline -> ONNX graph + signature, scoring with onnxruntime, and the parity
check that the two agree on the held-out rows before a model may be registered.

The graph (skl2onnx, `zipmap=False`) carries the whole preprocessing and has one input per
feature column, named as the column and shaped `[None, 1]`: `tensor(float)` for numeric
columns (NaN is missing), `tensor(string)` for categorical ones (`""` is missing; categories
unseen in training are ignored by the one-hot encoder). Outputs: classifiers `label`
(`tensor(string)`, `[None]`) and `probabilities` (`tensor(float)`, `[None, n_classes]`, columns
in `Signature.classes` order); regressors `variable` (`tensor(float)`, `[None, 1]`).
`functions.ml.onnx_input` builds the inputs; it is the only code serving needs.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from functions.common.config.dataset import FeatureType, Task
from functions.ml.boosting import register_converters, walk_steps
from functions.ml.features import model_frame
from functions.ml.onnx_calibration import install as install_isotonic
from functions.ml.onnx_input import (
    MISSING_CATEGORY,
    ONNX_FLOAT,
    ONNX_STRING,
    Prediction,
    decode_outputs,
    onnx_inputs,
)
from functions.ml.training import final_estimator

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# Enough for every allow-listed converter, and run by every onnxruntime since 1.13, so a
# serving layer whose runtime lags the training image's still loads the graph.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
TIE_TOLERANCE = 1e-6
"""Two classes whose probabilities differ by at most this are a tie: either label is right."""
_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "scipy")

__all__ = [
    "OnnxModel",
    "UnconvertibleStepError",
    "ParityError",
    "ParityReport",
    "Prediction",
    "Signature",
    "check_parity",
    "export_onnx",
]


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns, stored beside the ONNX file (`signature.json`) and
    served by `GET /v1/model`.

    `inputs`: one per feature, in order: `name`, `type` (numeric|categorical), `categories`
    (sorted, seen in training; `[]` for numeric), `nullable` (always true: the graph imputes),
    `onnx_type` (float|string), `aliases` (the producer's column names that ingestion
    normalised to `name`, sorted; serving and batch accept them too). `classes`: class labels
    in probability-column order, None for regression. `onnx_inputs`/`onnx_outputs`: the graph's
    tensors (name, elem_type, shape).
    """

    task: str
    target: str
    inputs: list[dict[str, Any]]
    classes: list[str] | None
    onnx_inputs: list[dict[str, Any]]
    onnx_outputs: list[dict[str, Any]]
    opset: dict[str, int] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> dict[str, FeatureType]:
        return {spec["name"]: FeatureType(spec["type"]) for spec in self.inputs}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            task=data["task"],
            target=data["target"],
            inputs=[dict(spec) for spec in data["inputs"]],
            classes=list(data["classes"]) if data.get("classes") is not None else None,
            onnx_inputs=[dict(spec) for spec in data["onnx_inputs"]],
            onnx_outputs=[dict(spec) for spec in data["onnx_outputs"]],
            opset=dict(data.get("opset") or {}),
            library_versions=dict(data.get("library_versions") or {}),
        )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced (and checked) the model."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def export_onnx(
    pipeline: Pipeline,
    *,
    schema: Mapping[str, FeatureType],
    target: str,
    task: Task,
    train: pd.DataFrame,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> tuple[bytes, Signature]:
    """Convert a fitted pipeline (from `training.build_pipeline`) to ONNX bytes and describe it.
    `train` is the training split: the categories seen there go into the signature. `aliases`:
    feature -> the producer's names for it (`ingestion.producer_names`)."""
    # Imported here: only training exports, and skl2onnx is slow to import, a cost every
    # other function that scores ONNX models (evaluate) would pay at its cold start.
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    task = Task(task)
    initial_types = [
        (
            name,
            FloatTensorType([None, 1])
            if FeatureType(kind) is FeatureType.NUMERIC
            else StringTensorType([None, 1]),
        )
        for name, kind in schema.items()
    ]
    register_converters()
    install_isotonic()
    options = {}
    predictor = final_estimator(pipeline)
    if task is Task.CLASSIFICATION:
        options[id(predictor)] = {"zipmap": False}
    with warnings.catch_warnings():
        # skl2onnx 1.20 passes booleans where onnx expects ints (harmless, one warning a node).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="onnx.helper")
        try:
            onnx_model = convert_sklearn(
                pipeline, initial_types=initial_types, target_opset=TARGET_OPSET, options=options
            )
        except Exception as exc:
            raise UnconvertibleStepError.of(pipeline, exc) from None
    frame = model_frame(train, schema)
    inputs = []
    for name, kind in schema.items():
        categorical = FeatureType(kind) is FeatureType.CATEGORICAL
        seen = sorted(set(frame[name]) - {MISSING_CATEGORY}) if categorical else []
        inputs.append(
            {
                "name": name,
                "type": FeatureType(kind).value,
                "categories": seen,
                "nullable": True,
                "onnx_type": ONNX_STRING if categorical else ONNX_FLOAT,
                "aliases": sorted((aliases or {}).get(name, ())),
            }
        )
    classes = None
    if task is Task.CLASSIFICATION:
        classes = [str(label) for label in predictor.classes_]
    signature = Signature(
        task=task.value,
        target=target,
        inputs=inputs,
        classes=classes,
        onnx_inputs=[_tensor(value) for value in onnx_model.graph.input],
        onnx_outputs=[_tensor(value) for value in onnx_model.graph.output],
        opset={entry.domain or "ai.onnx": entry.version for entry in onnx_model.opset_import},
        library_versions=library_versions(),
    )
    return onnx_model.SerializeToString(), signature


REGISTER_HINT = (
    "register a converter for it with skl2onnx.update_registered_converter(<the step's class>, "
    "<alias>, <shape calculator>, <converter>) in the model code (see docs/own-model.md), or "
    "replace the step with one skl2onnx converts"
)


class UnconvertibleStepError(ValueError):
    """A fitted pipeline step skl2onnx cannot convert; the message names the step (its path of
    step names, `__`-joined as scikit-learn's parameters are) and how to register a converter."""

    def __init__(self, message: str, step: str | None) -> None:
        super().__init__(message)
        self.step = step

    @classmethod
    def of(cls, pipeline: Any, error: Exception) -> UnconvertibleStepError:
        """The error for `error`, raised by skl2onnx converting `pipeline`: the first step
        without a registered converter, else the step the error names (skl2onnx names the
        class), else the conversion's own message."""
        from skl2onnx._supported_operators import sklearn_operator_name_map

        steps = list(walk_steps(pipeline))
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        culprit = next(
            (
                (path, step)
                for path, step in steps
                if not _container(step) and type(step) not in sklearn_operator_name_map
            ),
            None,
        ) or next(((path, step) for path, step in steps if type(step).__name__ in str(error)), None)
        if culprit is None:
            return cls(f"the pipeline did not convert to ONNX ({reason}); {REGISTER_HINT}", None)
        path, step = culprit
        kind = f"{type(step).__module__}.{type(step).__qualname__}"
        return cls(
            f"pipeline step {path!r} ({kind}) has no ONNX converter ({reason}); {REGISTER_HINT}",
            path,
        )


def _container(step: Any) -> bool:
    return (
        hasattr(step, "steps") or hasattr(step, "transformer_list") or hasattr(step, "transformers")
    )


_ELEM_TYPES = {1: "float", 7: "int64", 8: "string", 11: "double"}


def _tensor(value: Any) -> dict[str, Any]:
    tensor = value.type.tensor_type
    shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    return {
        "name": value.name,
        "elem_type": _ELEM_TYPES.get(tensor.elem_type, str(tensor.elem_type)),
        "shape": shape,
    }


class OnnxModel:
    """An exported model scored with onnxruntime (what serving and evaluation run)."""

    def __init__(self, onnx_bytes: bytes, signature: Signature) -> None:
        self.signature = signature
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self._outputs = [output["name"] for output in signature.onnx_outputs]

    def predict(self, frame: pd.DataFrame) -> Prediction:
        """Labels (and probabilities) for the rows of `frame`: `model_frame`, then the shared
        `onnx_inputs` conversion, then the graph."""
        features = model_frame(frame, self.signature.schema)
        columns = {name: features[name].to_numpy() for name in features.columns}
        feed = onnx_inputs(columns, self.signature.inputs)
        return decode_outputs(self.session.run(self._outputs, feed), self.signature.classes)


@dataclass(frozen=True)
class ParityReport:
    rows: int
    max_abs_difference: float
    """Classification: max |probability difference|; regression: max |prediction difference|."""
    label_mismatches: int
    """Rows whose labels differ (ties included)."""
    tie_mismatches: int
    """Label mismatches on rows whose top two probabilities are within 1e-6 (allowed)."""
    passed: bool
    tolerance: float = 0.0
    max_relative_difference: float | None = None
    """Regression: max |difference| / max(|prediction|, mean |prediction|): what is checked."""
    worst_row: str | None = None
    """The failing (or most different) test row's index label, as Python writes it: `17`,
    `'C000017'`."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ParityError(Exception):
    """scikit-learn and ONNX disagree on held-out rows; the message names the worst row."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


def check_parity(
    pipeline: Pipeline, model: OnnxModel, test: pd.DataFrame, *, tolerance: float
) -> ParityReport:
    """Score `test` with both and compare. Classification fails when a probability differs by
    more than `tolerance`, or a label differs on a row that is not an exact tie (top-2
    probabilities within 1e-6); regression fails when a prediction differs by more than
    `tolerance` relative to max(|prediction|, mean |prediction|) (relative for large values,
    absolute-like for values near zero). Raises ParityError naming the worst row."""
    features = model_frame(test, model.signature.schema)
    onnx = model.predict(test)
    if len(test) == 0:
        return ParityReport(0, 0.0, 0, 0, True, tolerance)
    if model.signature.classes is None:
        return _regression_parity(pipeline.predict(features), onnx, test.index, tolerance)
    expected = pipeline.predict_proba(features)
    # What `predict` returns for these estimators, without scoring the rows a second time.
    labels = np.asarray(pipeline.classes_).astype(str)[np.argmax(expected, axis=1)]
    return _classification_parity(expected, labels, onnx, test.index, tolerance)


def _classification_parity(
    expected: np.ndarray,
    labels: np.ndarray,
    onnx: Prediction,
    index: pd.Index,
    tolerance: float,
) -> ParityReport:
    assert onnx.probabilities is not None
    difference = np.nan_to_num(
        np.abs(onnx.probabilities - expected).max(axis=1), nan=np.inf, posinf=np.inf
    )
    worst = int(np.argmax(difference))
    mismatched = labels != onnx.labels.astype(str)
    top2 = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else expected
    tie = (top2[:, -1] - top2[:, 0]) <= TIE_TOLERANCE
    real = mismatched & ~tie
    probabilities_ok = bool(difference[worst] <= tolerance)
    row = worst if not probabilities_ok or not real.any() else int(np.flatnonzero(real)[0])
    report = ParityReport(
        rows=len(labels),
        max_abs_difference=float(difference[worst]),
        label_mismatches=int(mismatched.sum()),
        tie_mismatches=int((mismatched & tie).sum()),
        passed=probabilities_ok and not real.any(),
        tolerance=tolerance,
        worst_row=_row(index, row),
    )
    if report.passed:
        return report
    if not probabilities_ok:
        message = (
            f"ONNX and scikit-learn disagree on test row {_row(index, row)} (position {row}): "
            f"probabilities differ by {difference[row]:.3g} > tolerance {tolerance:g} "
            f"(scikit-learn {_rounded(expected[row])}, ONNX {_rounded(onnx.probabilities[row])})"
        )
    else:
        message = (
            f"ONNX and scikit-learn predict different labels on test row {_row(index, row)} "
            f"(position {row}): {str(labels[row])!r} vs {str(onnx.labels[row])!r}, not a tie "
            f"({int(real.sum())} such row(s))"
        )
    raise ParityError(message, report)


def _regression_parity(
    expected: np.ndarray, onnx: Prediction, index: pd.Index, tolerance: float
) -> ParityReport:
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    absolute = np.nan_to_num(np.abs(onnx.labels - expected), nan=np.inf, posinf=np.inf)
    scale = np.maximum(np.abs(expected), max(float(np.mean(np.abs(expected))), 1e-12))
    relative = absolute / scale
    worst = int(np.argmax(relative))
    report = ParityReport(
        rows=len(expected),
        max_abs_difference=float(absolute.max()),
        label_mismatches=0,
        tie_mismatches=0,
        passed=bool(relative[worst] <= tolerance),
        tolerance=tolerance,
        max_relative_difference=float(relative[worst]),
        worst_row=_row(index, worst),
    )
    if not report.passed:
        raise ParityError(
            f"ONNX and scikit-learn disagree on test row {_row(index, worst)} (position {worst}): "
            f"{onnx.labels[worst]:.6g} vs {expected[worst]:.6g}, relative difference "
            f"{relative[worst]:.3g} > tolerance {tolerance:g}",
            report,
        )
    return report


def _row(index: pd.Index, position: int) -> str:
    """A row's index label as written in Python (`17`, `'C000017'`), without numpy types."""
    label = index[position]
    return repr(label.item() if isinstance(label, np.generic) else label)


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]
