"""Serving's input conversion: identical to training's, and free of pandas and scikit-learn."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import FeatureType
from functions.ml.features import model_frame
from functions.ml.onnx_input import onnx_inputs, predict_columns
from tests.helpers.imports import loaded_by_importing

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL
INPUTS = [
    {"name": "x", "type": "numeric", "onnx_type": "float"},
    {"name": "c", "type": "categorical", "onnx_type": "string"},
]

missing = st.sampled_from([None, math.nan])
number = st.floats(allow_nan=False)
numeric_value = st.one_of(
    missing, number, st.integers(-(10**6), 10**6), number.map(str), st.text(max_size=3)
)
categorical_value = st.one_of(missing, st.text(max_size=8), number, st.integers(), st.booleans())


def _convert_like_training(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in columns.items()}
    )
    features = model_frame(frame, {"x": N, "c": C})
    return {"x": features["x"].to_numpy(), "c": features["c"].to_numpy()}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(numeric_value, categorical_value), min_size=1, max_size=20))
def test_serving_converts_values_exactly_as_training_does(rows: list[tuple[Any, Any]]) -> None:
    columns = {"x": [x for x, _ in rows], "c": [c for _, c in rows]}
    try:
        expected = _convert_like_training(columns)
    except ValueError:
        with pytest.raises(ValueError, match="'x'"):
            onnx_inputs(columns, INPUTS)
        return

    feed = onnx_inputs(columns, INPUTS)

    assert feed["x"].shape == (len(rows), 1)
    assert feed["x"].dtype == np.float32
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(feed["x"][:, 0], expected["x"].astype(np.float32))
    assert feed["c"].shape == (len(rows), 1)
    assert feed["c"][:, 0].tolist() == expected["c"].tolist()


def test_missing_values_become_nan_and_empty_string() -> None:
    feed = onnx_inputs({"x": [None, 2, "3.5"], "c": [None, float("nan"), "a"]}, INPUTS)

    assert np.isnan(feed["x"][0, 0])
    assert feed["x"][1:, 0].tolist() == [2.0, 3.5]
    assert feed["c"][:, 0].tolist() == ["", "", "a"]


def test_bad_input_columns_are_named() -> None:
    with pytest.raises(ValueError, match="missing input column.*c"):
        onnx_inputs({"x": [1.0]}, INPUTS)
    with pytest.raises(ValueError, match="'x' must be numeric"):
        onnx_inputs({"x": ["forty"], "c": ["a"]}, INPUTS)
    with pytest.raises(ValueError, match="different lengths"):
        onnx_inputs({"x": [1.0, 2.0], "c": ["a"]}, INPUTS)


def test_the_module_imports_neither_pandas_nor_sklearn() -> None:
    loaded = loaded_by_importing(
        ["functions.ml.onnx_input"],
        ("pandas", "sklearn", "scipy", "pyarrow", "skl2onnx", "onnxruntime"),
    )

    assert loaded == []


def test_serving_plain_json_rows_matches_scoring_a_dataframe() -> None:
    from functions.ml.onnx_model import OnnxModel
    from functions.ml.sample_data import churn_frame
    from tests.helpers.models import fit_and_export

    schema = {"age": N, "tenure_months": N, "contract": C, "region": C}
    _, onnx_bytes, signature = fit_and_export(churn_frame(200, seed=5), schema)
    model = OnnxModel(onnx_bytes, signature)
    instances = [
        {"age": 30, "tenure_months": 2, "contract": "month-to-month", "region": None},
        {"age": None, "tenure_months": 40.0, "contract": "two year", "region": "atlantis"},
    ]
    columns = {name: [row[name] for row in instances] for name in schema}

    served = predict_columns(model.session, columns, json.loads(json.dumps(signature.to_dict())))
    scored = model.predict(pd.DataFrame(instances))

    assert served.labels.tolist() == scored.labels.tolist()
    assert served.probabilities is not None and scored.probabilities is not None
    np.testing.assert_array_equal(served.probabilities, scored.probabilities)
    assert served.classes == ("no", "yes")


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b"],
        ["a", None, ""],
        np.array(["a", "b"]),
        np.array([np.str_("a"), None], dtype=object),
        [1, 2.5, True, None, math.nan, "x"],
    ],
)
def test_every_input_shape_gets_the_per_value_rule(values: Any) -> None:
    from functions.ml.onnx_input import categorical_values, category

    converted = categorical_values(values)

    assert converted.tolist() == [category(v) for v in values]
    assert all(type(v) is str for v in converted)
