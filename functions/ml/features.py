"""Curated rows -> the frame a model is fitted on and scored with.

`model_frame` applies the per-value rules of `functions.ml.onnx_input` (the module the predict
function uses), after turning pandas' own missing values (`<NA>`, NaN, None) into None. So a
row gets the same encoding whether it comes from curated Parquet during training or from a JSON
request in serving.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from functions.common.config.dataset import FeatureType, Task
from functions.ml.onnx_input import categorical_values, numeric_values


def model_frame(frame: pd.DataFrame, schema: Mapping[str, FeatureType]) -> pd.DataFrame:
    """The feature columns in schema order, with `frame`'s index: numeric -> float64 (NaN for
    missing), categorical -> object dtype of Python `str` (`""` for missing). Extra columns are
    dropped; a missing one is a ValueError naming it."""
    absent = [name for name in schema if name not in frame.columns]
    if absent:
        raise ValueError(
            f"feature column(s) missing from the data: {', '.join(absent)} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    data: dict[str, pd.Series] = {}
    for name, kind in schema.items():
        if FeatureType(kind) is FeatureType.NUMERIC:
            values = _numeric(frame[name], name)
            data[name] = pd.Series(values, index=frame.index, dtype=np.float64)
        else:
            values = categorical_values(frame[name].to_numpy(dtype=object, na_value=None))
            data[name] = pd.Series(values, index=frame.index, dtype=object)
    return pd.DataFrame(data, index=frame.index)


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    if series.dtype == np.float64:
        return series.to_numpy()
    try:
        if series.dtype == object:
            return numeric_values(series.to_numpy(dtype=object, na_value=None))
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"column {name!r} must be numeric: {error}") from None


def target_array(frame: pd.DataFrame, target: str, task: Task) -> np.ndarray:
    """The target as labels (numpy `str`) for classification, float64 for regression. A missing
    column or missing values (ingestion drops such rows) raise ValueError."""
    if target not in frame.columns:
        raise ValueError(f"target column {target!r} is missing from the data")
    column = frame[target]
    missing = int(column.isna().sum())
    if missing:
        raise ValueError(f"target column {target!r} has {missing} missing value(s)")
    if Task(task) is Task.CLASSIFICATION:
        return categorical_values(column.to_numpy(dtype=object)).astype(str)
    return _numeric(column, target)
