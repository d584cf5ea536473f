"""`Ratio`: one column divided by another (total charges / months of tenure: the average
monthly bill), computed in scikit-learn and, identically, inside the ONNX graph.

scikit-learn's `FunctionTransformer` would compute it in Python, but skl2onnx has no converter
for an arbitrary function. A small transformer with its own converter does: importing this
module registers the shape calculator and the converter with skl2onnx
(`update_registered_converter`), so a pipeline holding a `Ratio` converts like any other.

The division is done in float32 in both places (the graph's numbers are float32), so the two
agree to the bit, and a tree split on the ratio sends a row the same way in both. A
denominator that is not positive (or missing) gives NaN, for the next step to impute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import OnnxDiv, OnnxGather, OnnxGreater, OnnxWhere
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import BaseEstimator, TransformerMixin


class Ratio(TransformerMixin, BaseEstimator):
    """Two input columns (numerator, denominator) -> one column, their ratio."""

    def fit(self, X: Any, y: Any = None) -> Ratio:
        columns = np.asarray(X).shape[1]
        if columns != 2:
            raise ValueError(f"Ratio takes 2 columns (numerator, denominator), got {columns}")
        self.n_features_in_ = 2
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(X, dtype=np.float32)
        numerator, denominator = values[:, 0], values[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(denominator > 0, numerator / denominator, np.float32(np.nan))
        return ratio.astype(np.float64).reshape(-1, 1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["ratio"], dtype=object)


def _shape(operator: Any) -> None:
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([rows, 1])


def _convert(scope: Any, operator: Any, container: Any) -> None:
    version = container.target_opset
    values = operator.inputs[0]
    numerator = OnnxGather(values, np.array([0], dtype=np.int64), axis=1, op_version=version)
    denominator = OnnxGather(values, np.array([1], dtype=np.int64), axis=1, op_version=version)
    ratio = OnnxWhere(
        OnnxGreater(denominator, np.array([0], dtype=np.float32), op_version=version),
        OnnxDiv(numerator, denominator, op_version=version),
        np.array([np.nan], dtype=np.float32),
        op_version=version,
        output_names=operator.outputs[:1],
    )
    ratio.add_to(scope, container)


update_registered_converter(Ratio, "ChurnModelRatio", _shape, _convert)
