"""Isotonic calibration in ONNX as scikit-learn computes it.

scikit-learn's `IsotonicRegression` (inside `CalibratedClassifierCV(method="isotonic")`)
interpolates linearly between its thresholds (`X_thresholds_`, `y_thresholds_`), after
clipping the score to their range. skl2onnx 1.20's converter instead returns the `y` of the
nearest threshold, a step function: on the churn data its probabilities differed from
scikit-learn's by up to 0.04 on 6-10 % of the held-out rows, failing the parity check.

`install()` replaces that one piece of the converter (`_transform_isotonic` of
`skl2onnx.operator_converters.calibrated_classifier_cv`, called per class with the score
column) with the interpolation below; the rest of the calibrated classifier's graph (the base
estimator's scores, the normalisation, the averaging over folds) stays skl2onnx's.
Imported by the export only (skl2onnx is slow to import).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_INSTALLED = False


def install() -> None:
    """Make skl2onnx convert isotonic calibrators by linear interpolation (once per process)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from skl2onnx.operator_converters import calibrated_classifier_cv

    calibrated_classifier_cv._transform_isotonic = _interpolated_isotonic
    _INSTALLED = True


def _interpolated_isotonic(
    scope: Any, container: Any, model: Any, T: str, k: int, dtype: Any, proto_type: int
) -> str:
    """The graph of `model.calibrators[k].predict(T)` (T: one score per row): clip to the
    thresholds' range, find each score's segment, interpolate. Returns the output's name,
    shaped (rows, 1) as skl2onnx's own step expects."""
    from onnx import TensorProto

    calibrator = model.calibrators[k]
    x_points = np.asarray(calibrator.X_thresholds_)
    y_points = np.asarray(calibrator.y_thresholds_)
    proto = (
        proto_type if proto_type in (TensorProto.FLOAT, TensorProto.DOUBLE) else TensorProto.FLOAT
    )
    numpy_type = np.float64 if proto == TensorProto.DOUBLE else np.float32

    def name(prefix: str) -> str:
        return str(scope.get_unique_variable_name(prefix))

    def node(op: str, inputs: list[str], **attributes: Any) -> str:
        output = name(f"iso_{op.lower()}")
        container.add_node(
            op, inputs, output, name=scope.get_unique_operator_name(f"Iso{op}"), **attributes
        )
        return output

    def constant(prefix: str, values: Any, kind: int, shape: list[int]) -> str:
        constant_name = name(prefix)
        container.add_initializer(constant_name, kind, shape, np.asarray(values).ravel().tolist())
        return constant_name

    column = node("Reshape", [T, constant("iso_shape", [-1, 1], TensorProto.INT64, [2])])
    if len(x_points) == 1:  # a constant calibrator
        zero = node("Mul", [column, constant("iso_zero", [0.0], proto, [])])
        return node("Add", [zero, constant("iso_y", y_points, proto, [])])
    if calibrator.out_of_bounds == "clip":
        low = constant("iso_low", [x_points[0]], proto, [])
        high = constant("iso_high", [x_points[-1]], proto, [])
        column = node("Clip", [column, low, high])
    points = len(x_points)
    x_row = constant("iso_x_row", x_points.astype(numpy_type), proto, [1, points])
    x_flat = constant("iso_x", x_points.astype(numpy_type), proto, [points])
    y_flat = constant("iso_y", y_points.astype(numpy_type), proto, [points])
    # segment i: the number of thresholds <= score, minus one, within [0, points - 2]
    below = node("Cast", [node("LessOrEqual", [x_row, column])], to=TensorProto.INT64)
    axis = constant("iso_axis", [1], TensorProto.INT64, [1])
    count = node("ReduceSum", [below, axis], keepdims=1)
    one = constant("iso_one", [1], TensorProto.INT64, [])
    first = constant("iso_first", [0], TensorProto.INT64, [])
    last = constant("iso_last", [points - 2], TensorProto.INT64, [])
    index = node("Clip", [node("Sub", [count, one]), first, last])
    following = node("Add", [index, one])
    x0 = node("Gather", [x_flat, index], axis=0)
    x1 = node("Gather", [x_flat, following], axis=0)
    y0 = node("Gather", [y_flat, index], axis=0)
    y1 = node("Gather", [y_flat, following], axis=0)
    slope = node("Div", [node("Sub", [y1, y0]), node("Sub", [x1, x0])])
    return node("Add", [y0, node("Mul", [node("Sub", [column, x0]), slope])])
