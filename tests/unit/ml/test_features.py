"""Curated rows -> model frame: the encoding a model is trained on and served with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from functions.common.config.dataset import FeatureType, Task
from functions.ml.features import model_frame, target_array

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL
SCHEMA = {"age": N, "region": C, "charges": N}


def _curated() -> pd.DataFrame:
    """Rows as ingestion writes them: float64 numerics, Arrow strings with <NA> for missing."""
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "charges": [10.5, np.nan, 30.0],
            "region": pd.array(["north", None, "east"], dtype=pd.ArrowDtype(pa.string())),
            "age": [40.0, 51.0, np.nan],
            "churned": pd.array(["yes", "no", "no"], dtype=pd.ArrowDtype(pa.string())),
        },
        index=[7, 8, 9],
    )


def test_model_frame_keeps_schema_order_and_drops_other_columns() -> None:
    frame = model_frame(_curated(), SCHEMA)

    assert list(frame.columns) == ["age", "region", "charges"]
    assert list(frame.index) == [7, 8, 9]


def test_missing_values_become_nan_and_empty_string() -> None:
    frame = model_frame(_curated(), SCHEMA)

    assert frame["age"].dtype == np.float64
    assert np.isnan(frame["age"].iloc[2])
    assert frame["region"].dtype == object
    assert frame["region"].tolist() == ["north", "", "east"]
    assert all(type(value) is str for value in frame["region"])


@pytest.mark.parametrize(
    "values",
    [
        pd.array([1.0, None, 3.0], dtype="Float64"),
        pd.array([1, None, 3], dtype="Int64"),
        pd.array([1.0, None, 3.0], dtype=pd.ArrowDtype(pa.float64())),
        pd.Series([1.0, None, "3"], dtype=object),
        pd.Series([1.0, pd.NA, 3.0], dtype=object),
    ],
)
def test_numeric_columns_of_any_dtype_become_float64_with_nan(values: object) -> None:
    frame = model_frame(pd.DataFrame({"x": values}), {"x": N})

    assert frame["x"].dtype == np.float64
    assert frame["x"].iloc[[0, 2]].tolist() == [1.0, 3.0]
    assert np.isnan(frame["x"].iloc[1])


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_every_kind_of_missing_category_becomes_empty_string(missing: object) -> None:
    frame = model_frame(pd.DataFrame({"c": pd.Series(["a", missing], dtype=object)}), {"c": C})

    assert frame["c"].tolist() == ["a", ""]


def test_a_missing_feature_column_is_named() -> None:
    with pytest.raises(ValueError, match="region"):
        model_frame(pd.DataFrame({"age": [1.0]}), {"age": N, "region": C})


def test_a_non_numeric_value_in_a_numeric_column_is_named() -> None:
    with pytest.raises(ValueError, match="'age' must be numeric"):
        model_frame(pd.DataFrame({"age": pd.Series([1.0, "forty"], dtype=object)}), {"age": N})


def test_target_labels_are_strings_and_regression_targets_floats() -> None:
    curated = _curated()

    labels = target_array(curated, "churned", Task.CLASSIFICATION)
    values = target_array(curated.assign(y=[1, 2, 3]), "y", Task.REGRESSION)

    assert labels.tolist() == ["yes", "no", "no"]
    assert labels.dtype.kind == "U"
    assert values.dtype == np.float64
    assert values.tolist() == [1.0, 2.0, 3.0]


def test_a_missing_target_value_is_an_error() -> None:
    frame = pd.DataFrame({"y": ["a", None]})

    with pytest.raises(ValueError, match="1 missing"):
        target_array(frame, "y", Task.CLASSIFICATION)
    with pytest.raises(ValueError, match="'z' is missing"):
        target_array(frame, "z", Task.CLASSIFICATION)
