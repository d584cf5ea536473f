"""The reference profile monitoring compares live traffic against."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import FeatureType, Task
from functions.ml.onnx_model import Prediction
from functions.ml.reference_profile import bin_index, numeric_profile, reference_profile
from functions.ml.sample_data import churn_frame
from tests.helpers.drift import charges_reference

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL
SCHEMA = {"age": N, "total_charges": N, "support_calls": N, "region": C, "contract": C}


def _classification_profile(rows: int = 400, **kwargs: int) -> tuple[dict, pd.DataFrame]:
    train = churn_frame(rows, seed=3)
    rng = np.random.default_rng(0)
    p_yes = rng.random(100)
    predictions = Prediction(
        labels=np.where(p_yes >= 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - p_yes, p_yes]),
        classes=("no", "yes"),
    )
    options = {"sample_rows": 50, "seed": 1, **kwargs}
    profile = reference_profile(
        train,
        schema=SCHEMA,
        target="churned",
        predictions=predictions,
        task=Task.CLASSIFICATION,
        **options,
    )
    return profile, train


def test_numeric_bins_cover_every_row() -> None:
    profile, train = _classification_profile()

    for name in ("age", "total_charges", "support_calls"):
        feature = profile["features"][name]
        edges, counts = feature["edges"], feature["counts"]
        assert sum(counts) + feature["nulls"] == len(train) == feature["rows"]
        assert edges == sorted(set(edges)) and len(counts) == len(edges) - 1
        assert len(edges) <= profile["bins"] + 1
        assert feature["nulls"] == train[name].isna().sum()
        assert (feature["min"], feature["max"]) == (edges[0], edges[-1])


def test_monitoring_reproduces_the_counts_by_binning_against_the_edges() -> None:
    profile, train = _classification_profile()
    feature = profile["features"]["total_charges"]
    values = train["total_charges"].dropna().to_numpy()

    counts = np.bincount(bin_index(feature["edges"], values), minlength=len(feature["counts"]))

    assert counts.tolist() == feature["counts"]
    # Values outside the training range fall into the outer bins.
    assert bin_index(feature["edges"], np.array([-1e9, 1e9])).tolist() == [
        0,
        len(feature["counts"]) - 1,
    ]


def test_categorical_frequencies_include_the_missing_share() -> None:
    profile, train = _classification_profile()
    region = profile["features"]["region"]

    assert sum(region["counts"].values()) + region["other"] == len(train)
    assert region["counts"][""] == train["region"].isna().sum() == region["nulls"]
    assert region["shares"]["north"] == pytest.approx((train["region"] == "north").mean())
    assert profile["target"]["counts"].keys() == {"yes", "no"}


def test_the_prediction_distribution_is_recorded() -> None:
    profile, _ = _classification_profile()
    predictions = profile["predictions"]

    assert predictions["rows"] == 100
    assert sum(predictions["class_shares"].values()) == pytest.approx(1.0)
    assert sum(predictions["mean_probability"].values()) == pytest.approx(1.0)
    histogram = predictions["probability_histograms"]["yes"]
    assert sum(histogram["counts"]) == 100 and len(histogram["edges"]) == 11


def test_the_sample_is_capped_seeded_and_json_safe() -> None:
    profile, train = _classification_profile(sample_rows=50)
    again, _ = _classification_profile(sample_rows=50)
    everything, _ = _classification_profile(rows=30, sample_rows=1_000)

    text = json.dumps(profile, allow_nan=False)
    sample = json.loads(text)["sample"]

    assert sample["rows"] == len(sample["records"]) == 50
    assert sample["columns"] == [*SCHEMA, "churned"]
    assert profile["sample"] == again["sample"]
    assert everything["sample"]["rows"] == 30
    assert profile["rows"] == len(train)


def test_missing_values_in_the_sample_are_null() -> None:
    train = churn_frame(20, seed=3)
    train.loc[train.index[:3], "age"] = np.nan
    train.loc[train.index[2:4], "region"] = None

    profile = reference_profile(
        train,
        schema=SCHEMA,
        target="churned",
        predictions=Prediction(np.array(["no"]), np.array([[0.6, 0.4]]), ("no", "yes")),
        task=Task.CLASSIFICATION,
        sample_rows=100,
        seed=0,
    )
    records = json.loads(json.dumps(profile, allow_nan=False))["sample"]["records"]

    assert len(records) == 20
    assert [r["age"] is None for r in records] == train["age"].isna().tolist()
    assert [r["region"] is None for r in records] == train["region"].isna().tolist()


def test_regression_predictions_get_quantiles_and_bins() -> None:
    train = churn_frame(200, seed=4)
    predicted = np.linspace(20.0, 120.0, 50)

    profile = charges_reference(train, predicted, SCHEMA, sample_rows=10, seed=0, bins=5)

    quantiles = profile["predictions"]["quantiles"]
    assert quantiles["values"] == sorted(quantiles["values"])
    assert (quantiles["values"][0], quantiles["values"][-1]) == (20.0, 120.0)
    assert len(quantiles["q"]) == 6
    assert sum(profile["predictions"]["counts"]) == 50
    assert profile["target"]["type"] == "numeric"
    json.dumps(profile, allow_nan=False)


def test_a_constant_column_has_one_bin() -> None:
    feature = numeric_profile(np.array([2.0, 2.0, np.nan]), bins=10)

    assert feature["edges"] == [2.0, 2.0] and feature["counts"] == [2]
    assert feature["nulls"] == 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.just(np.nan), st.floats(-1e9, 1e9)), min_size=1, max_size=60),
    st.integers(1, 20),
)
def test_any_numeric_column_profiles_consistently(values: list[float], bins: int) -> None:
    feature = numeric_profile(np.array(values, dtype=np.float64), bins)

    assert sum(feature.get("counts", [])) + feature["nulls"] == len(values)
    edges = feature.get("edges", [])
    assert all(a < b for a, b in zip(edges, edges[1:], strict=False)) or (
        len(edges) == 2 and edges[0] == edges[1]
    )
    json.dumps(feature, allow_nan=False)


def test_sensitive_columns_reach_the_profile_only_as_hashes_or_not_at_all() -> None:
    from functions.common.sensitive import SensitiveColumns, hash_value
    from functions.ml.drift.engine import compare
    from functions.ml.features import model_frame
    from functions.ml.reference_profile import sensitive_view

    modes = {"region": "hash", "age": "hash", "contract": "drop"}
    train = churn_frame(400, seed=3)
    view, schema = sensitive_view(train, SCHEMA, modes, "salt")
    profile = reference_profile(
        view,
        schema=schema,
        target="churned",
        predictions=Prediction(
            labels=np.array(["no", "yes"] * 5),
            probabilities=np.tile([[0.7, 0.3], [0.2, 0.8]], (5, 1)),
            classes=("no", "yes"),
        ),
        task=Task.CLASSIFICATION,
        sample_rows=50,
        seed=1,
    )

    assert "contract" not in profile["features"] and "contract" not in profile["sample"]["columns"]
    assert profile["features"]["age"]["type"] == "categorical"
    text = json.dumps(profile)
    for raw in train["region"].dropna().unique():
        assert f'"{raw}"' not in text
        assert hash_value(raw, "salt") in profile["features"]["region"]["counts"]
    # Live rows as capture stores them (values as the model saw them, then hashed with the
    # same salt; the dropped column absent) match the profile: no drift on the same data.
    window = churn_frame(400, seed=4)
    seen = model_frame(window, SCHEMA).astype(object).to_dict("records")
    stored = [SensitiveColumns(modes, "salt").stored(row) for row in seen]
    assert "contract" not in stored[0] and stored[0]["region"] != seen[0]["region"]
    report = compare(
        profile,
        {name: [row[name] for row in stored] for name in ("region", "age", "support_calls")},
        sensitive=modes,
    )
    assert report.features["region"].severity == "none"
    assert report.features["region"].statistics["unseen"] == 0
    # a numeric column hashed as the model saw it (42.0, not 42): only ages absent from
    # the 400 training rows are unseen
    assert report.features["age"].severity == "none"
    assert report.features["age"].statistics["unseen"] < 0.05 * len(stored)
    assert "contract" not in report.features
