"""The one conversion of feature values into model inputs, shared by training and serving.

numpy only: the predict function imports this module and must never import pandas or
scikit-learn (they would not fit its package). `functions.ml.features.model_frame` uses the same
per-value rules, so a row is encoded identically when the model is trained, checked for parity
and served:

- categorical: None and NaN become `""` (missing: skl2onnx's string imputer only recognises
  `missing_values=""`), strings stay as they are, anything else becomes `str(value)`;
- numeric: None and NaN become NaN, numbers and numeric strings become floats, anything else is
  a ValueError naming the column.

The exported graph has one input per feature column, shaped `[n, 1]`: `tensor(float)`
(float32) for numeric columns, `tensor(string)` for categorical ones. `onnx_inputs` builds those
tensors from plain columns (name -> list of values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

MISSING_CATEGORY = ""
NUMERIC = "numeric"
CATEGORICAL = "categorical"
ONNX_FLOAT = "float"
ONNX_STRING = "string"
_ONNX_DTYPES: dict[str, Any] = {ONNX_FLOAT: np.float32, "double": np.float64, ONNX_STRING: object}


def category(value: Any) -> str:
    """One categorical value as the model sees it (`""` means missing)."""
    if value is None:
        return MISSING_CATEGORY
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    if isinstance(value, float | np.floating) and math.isnan(value):
        return MISSING_CATEGORY
    return str(value)


def number(value: Any) -> float:
    """One numeric value as the model sees it (NaN means missing)."""
    if value is None:
        return math.nan
    return float(value)


_categories = np.frompyfunc(category, 1, 1)
_numbers = np.frompyfunc(number, 1, 1)


def categorical_values(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A 1-D object array of Python strings, `""` for missing (`category` per value)."""
    if isinstance(values, np.ndarray):
        values = values.reshape(-1)
        if values.dtype.kind == "U":
            return values.astype(object)
    # Fast paths for the usual cases (all strings, maybe None): the same result as `category`.
    kinds = set(map(type, values))
    if kinds <= {str}:
        return _object_array(values)
    if kinds <= {str, type(None)}:
        return _object_array([MISSING_CATEGORY if value is None else value for value in values])
    return np.asarray(_categories(_as_1d(values)), dtype=object).reshape(-1)


def numeric_values(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A 1-D float64 array, NaN for missing. Raises ValueError for a non-numeric value."""
    array = _as_1d(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    return np.asarray(_numbers(array), dtype=np.float64).reshape(-1)


def _as_1d(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.reshape(-1)
    return _object_array(values)


def _object_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A new 1-D object array of `values`."""
    if isinstance(values, np.ndarray):
        return values.astype(object)
    array = np.empty(len(values), dtype=object)
    # element-wise: never let numpy build a 2-D array from nested items
    array[:] = values if isinstance(values, list) else list(values)
    return array


class NamedTwiceError(ValueError):
    """A row gives one feature under two names: its normalised name and an alias, or two
    aliases."""

    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__(
            f"feature {name!r} is given twice, as {first!r} and as {second!r}; give one of them"
        )
        self.name = name
        self.second = second


def by_feature_name(row: Mapping[Any, Any], aliases: Mapping[str, str]) -> dict[Any, Any]:
    """`row` keyed by feature names: a key that is an alias (the producer's column name that
    ingestion normalised) becomes its feature's name; other keys stay. Raises NamedTwiceError
    when two keys name the same feature."""
    rekeyed: dict[Any, Any] = {}
    given: dict[Any, Any] = {}
    for key, value in row.items():
        name = aliases.get(key, key) if type(key) is str else key
        if name in rekeyed:
            raise NamedTwiceError(name, given[name], key)
        rekeyed[name] = value
        given[name] = key
    return rekeyed


def onnx_inputs(
    columns: Mapping[str, Sequence[Any]], signature_inputs: Sequence[Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """The feed for `InferenceSession.run`: one `[n, 1]` array per signature input.

    `signature_inputs` are `Signature.inputs` (each with `name`, `type` and, from export on,
    `onnx_type`). Extra columns are ignored; a missing column, columns of different lengths or
    a non-numeric value in a numeric column raise ValueError naming the column.
    """
    missing = [spec["name"] for spec in signature_inputs if spec["name"] not in columns]
    if missing:
        raise ValueError(f"missing input column(s): {', '.join(missing)}")
    feed: dict[str, np.ndarray] = {}
    lengths: dict[str, int] = {}
    with np.errstate(over="ignore"):  # beyond float32's range is +-inf, as in a cast
        for spec in signature_inputs:
            name = spec["name"]
            values = columns[name]
            lengths[name] = len(values)
            if spec["type"] == CATEGORICAL:
                converted = categorical_values(values)
            elif isinstance(values, np.ndarray) and values.dtype.kind == "f":
                converted = values  # cast once below, straight to the graph's type
            else:
                try:
                    converted = numeric_values(values)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"column {name!r} must be numeric: {error}") from None
            dtype = _ONNX_DTYPES[spec.get("onnx_type") or _default_onnx_type(spec["type"])]
            feed[name] = converted.astype(dtype, copy=False).reshape(-1, 1)
    if len(set(lengths.values())) > 1:
        raise ValueError(f"input columns have different lengths: {lengths}")
    return feed


def _default_onnx_type(kind: str) -> str:
    return ONNX_STRING if kind == CATEGORICAL else ONNX_FLOAT


@dataclass(frozen=True)
class Prediction:
    """Model output: `labels` (class names, or values for regression) and, for classifiers,
    `probabilities` (n x classes, in `classes` order, float64)."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    classes: tuple[str, ...] | None = None


class Session(Protocol):
    """The part of `onnxruntime.InferenceSession` used here (kept as a protocol so that this
    module does not import onnxruntime)."""

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


def decode_outputs(outputs: Sequence[Any], classes: Sequence[str] | None) -> Prediction:
    """Turn the graph's outputs (label, then probabilities for classifiers; the prediction for
    regressors) into a Prediction."""
    if classes is None:
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        return Prediction(labels=values, probabilities=None)
    labels = np.asarray(outputs[0], dtype=object).reshape(-1)
    probabilities = np.asarray(outputs[1], dtype=np.float64).reshape(len(labels), len(classes))
    return Prediction(labels=labels, probabilities=probabilities, classes=tuple(classes))


def predict_columns(
    session: Session, columns: Mapping[str, Sequence[Any]], signature: Mapping[str, Any]
) -> Prediction:
    """Score plain columns with a session, given the signature as a dict (`Signature.to_dict`):
    what the predict function does, without pandas."""
    feed = onnx_inputs(columns, signature["inputs"])
    names = [output["name"] for output in signature["onnx_outputs"]]
    return decode_outputs(session.run(names, feed), signature.get("classes"))
