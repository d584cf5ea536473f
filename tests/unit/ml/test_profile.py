"""Column profiles: right numbers, independent of how the rows were chunked."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import FeatureType
from functions.ml.profile import CategoricalProfile, NumericProfile, ProfileBuilder, profile_frame

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL


def test_numeric_and_categorical_profiles_match_pandas() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, np.nan, 4.0, 8.0],
            "c": ["a", "b", None, "a", "a"],
        }
    )

    profile = profile_frame(frame, {"x": N, "c": C})

    x = profile["x"]
    assert isinstance(x, NumericProfile)
    assert (x.count, x.nulls, x.min, x.max) == (4, 1, 1.0, 8.0)
    assert math.isclose(x.mean, frame["x"].mean())
    assert math.isclose(x.std, frame["x"].std())
    c = profile["c"]
    assert isinstance(c, CategoricalProfile)
    assert (c.count, c.nulls, c.distinct) == (4, 1, 2)
    assert [(v.value, v.count) for v in c.top_values] == [("a", 3), ("b", 1)]


def test_an_all_null_numeric_column_has_no_statistics() -> None:
    profile = profile_frame(pd.DataFrame({"x": [np.nan, np.nan]}), {"x": N})

    assert profile["x"].model_dump() == {
        "kind": "numeric", "count": 0, "nulls": 2, "min": None, "max": None, "mean": None,
        "std": None,
    }  # fmt: skip


def test_high_cardinality_keeps_an_exact_distinct_count_and_flags_approximate_top_values() -> None:
    builder = ProfileBuilder({"id": C})
    for start in range(0, 30_000, 5_000):
        builder.update(pd.DataFrame({"id": [f"c{i}" for i in range(start, start + 5_000)]}))

    profile = builder.result()["id"]

    assert isinstance(profile, CategoricalProfile)
    assert profile.distinct == 30_000
    assert profile.top_values_exact is False
    assert len(profile.top_values) == 10


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6) | st.none(), min_size=1, max_size=80),
    st.integers(1, 20),
)
def test_profiles_do_not_depend_on_the_chunk_size(values: list[float | None], chunk: int) -> None:
    frame = pd.DataFrame(
        {"x": pd.Series(values, dtype="float64"), "c": [str(v)[:3] for v in values]}
    )
    columns = {"x": N, "c": C}
    builder = ProfileBuilder(columns)
    for start in range(0, len(frame), chunk):
        builder.update(frame.iloc[start : start + chunk])

    chunked, whole = builder.result(), profile_frame(frame, columns)

    assert chunked["c"] == whole["c"]
    x, y = chunked["x"], whole["x"]
    assert isinstance(x, NumericProfile) and isinstance(y, NumericProfile)
    assert (x.count, x.nulls, x.min, x.max) == (y.count, y.nulls, y.min, y.max)
    if y.mean is not None:
        assert math.isclose(x.mean or 0.0, y.mean, rel_tol=1e-9, abs_tol=1e-6)
        assert math.isclose(x.std or 0.0, y.std or 0.0, rel_tol=1e-6, abs_tol=1e-6)


def test_values_near_the_float_limit_give_unknown_moments_not_infinity() -> None:
    frame = pd.DataFrame({"x": [1e307, 9e307, 1.7e308, -1.7e308, 5.0]})

    x = profile_frame(frame, {"x": N})["x"]

    assert isinstance(x, NumericProfile)
    assert (x.count, x.min, x.max) == (5, -1.7e308, 1.7e308)
    assert x.mean is None or math.isfinite(x.mean)
    assert x.std is None
    json.dumps(x.model_dump(), allow_nan=False)  # the manifest stays strict JSON
