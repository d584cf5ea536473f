"""Drift of a live window against the reference profile (functions/ml/drift/)."""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import FeatureType
from functions.common.config.serving import DriftConfig
from functions.common.sensitive import hash_value
from functions.ml.drift.engine import compare
from functions.ml.drift.report import DriftReport, DriftThresholds
from functions.ml.reference_profile import bin_index
from functions.ml.sample_data import CONTRACTS, churn_frame
from tests.helpers.drift import charges_reference, churn_reference, window_columns
from tests.helpers.models import CHURN_SCHEMA

SIZES = (200, 1_000, 10_000, 100_000)


@cache
def _reference() -> dict[str, Any]:
    return churn_reference(churn_frame(5_000, seed=1))


@cache
def _window_frame(rows: int, seed: int) -> pd.DataFrame:
    return churn_frame(rows, seed=100 + seed)


def _window(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    return window_columns(_window_frame(rows, seed))


def _shifted(rows: int, name: str, sds: float, seed: int = 0) -> dict[str, np.ndarray]:
    columns = _window(rows, seed)
    columns[name] = columns[name] + sds * _reference()["features"][name]["std"]
    return columns


def _scaled(rows: int, name: str, factor: float, seed: int = 0) -> dict[str, np.ndarray]:
    """The spread around the reference mean times `factor`."""
    columns = _window(rows, seed)
    mean = _reference()["features"][name]["mean"]
    columns[name] = mean + (columns[name] - mean) * factor
    return columns


def _moved_contracts(rows: int, name: str, share: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Month-to-month (of column `name`, the contract) from 55% to about 55% + `share`."""
    columns = _window(rows, seed)
    contract = columns[name].copy()
    moved = (contract != "month-to-month") & (np.random.default_rng(5).random(rows) < share / 0.45)
    contract[moved] = "month-to-month"
    return columns | {name: contract}


def _more_nulls(rows: int, name: str, share: float, seed: int = 0) -> dict[str, np.ndarray]:
    columns = _window(rows, seed)
    values = columns[name].copy()
    values[np.random.default_rng(5).random(rows) < share] = np.nan
    return columns | {name: values}


def _unseen_categories(rows: int, name: str, share: float, seed: int = 0) -> dict[str, np.ndarray]:
    columns = _window(rows, seed)
    values = columns[name].copy()
    values[np.random.default_rng(5).random(rows) < share] = "atlantis"
    return columns | {name: values}


def _out_of_range(rows: int, name: str, share: float, seed: int = 0) -> dict[str, np.ndarray]:
    """`share` of the values at 120 (training range of age: 18-90)."""
    columns = _window(rows, seed)
    values = columns[name].copy()
    values[np.random.default_rng(5).random(rows) < share] = 120.0
    return columns | {name: values}


def _json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("rows", SIZES)
def test_same_distribution_windows_rarely_drift(rows: int) -> None:
    reports = [compare(_reference(), _window(rows, seed)) for seed in range(20)]

    false_positives = sum(report.verdict == "drift" for report in reports)
    flagged_features = sum(len(report.drifted) for report in reports)
    print(f"\n{rows} rows: {false_positives}/20 drift, {flagged_features}/180 features flagged")
    assert false_positives / len(reports) <= 0.05
    assert flagged_features / (len(reports) * len(CHURN_SCHEMA)) <= 0.05
    if rows >= 10_000:
        assert (false_positives, flagged_features) == (0, 0)
    assert all(
        report.method == ("p_value" if rows < 1_000 else "effect_size") for report in reports
    )


@pytest.mark.parametrize("rows", [200, 500])
def test_small_windows_false_positive_rate_is_at_most_alpha(rows: int) -> None:
    reports = [
        compare(_reference(), window_columns(churn_frame(rows, seed=1_000 + s))) for s in range(100)
    ]

    drifted = sum(report.verdict == "drift" for report in reports)
    any_flagged = sum(bool(report.drifted) for report in reports)
    flagged = Counter(name for report in reports for name in report.drifted)
    print(f"\n{rows} rows: {drifted}/100 drift, {any_flagged}/100 with a feature flagged {flagged}")
    assert drifted / 100 <= 0.05
    assert any_flagged / 100 <= 0.05  # Benjamini-Hochberg under the null: at most alpha
    assert all(count / 100 <= 0.05 for count in flagged.values())


def test_a_million_same_distribution_rows_flag_nothing() -> None:
    report = compare(_reference(), window_columns(churn_frame(1_000_000, seed=7)))

    print(
        f"\n1M rows: scores { ({n: round(f.score or 0, 3) for n, f in report.features.items()}) }"
    )
    assert (report.verdict, report.drifted) == ("no_drift", ())
    assert all((f.score or 0.0) < 0.05 for f in report.features.values())


@pytest.mark.parametrize("rows", SIZES)
def test_a_half_sd_mean_shift_is_major(rows: int) -> None:
    report = compare(_reference(), _shifted(rows, "monthly_charges", 0.5))

    assert report.features["monthly_charges"].severity == "major"
    assert report.drifted == ("monthly_charges",)
    assert report.verdict == "no_drift"  # one feature of nine is below the 0.3 share


@pytest.mark.parametrize("rows", SIZES)
def test_a_trivial_mean_shift_is_not_major_at_any_size(rows: int) -> None:
    for name in ("monthly_charges", "age"):
        report = compare(_reference(), _shifted(rows, name, 0.05))

        assert report.features[name].severity == "none"
        assert (report.features[name].statistics["wasserstein_normed"] or 0.0) < 0.1


@pytest.mark.parametrize("rows", SIZES)
def test_changed_category_proportions_are_flagged(rows: int) -> None:
    columns = _moved_contracts(rows, "contract", 0.25)  # month-to-month 55% -> 80%
    feature = compare(_reference(), columns).features["contract"]

    assert feature.severity == "major"
    assert (feature.statistics["js_distance"] or 0.0) > 0.2


@pytest.mark.parametrize("rows", SIZES)
def test_a_null_share_jump_is_major(rows: int) -> None:
    feature = compare(_reference(), _more_nulls(rows, "age", 0.3)).features["age"]  # 2% -> ~31%

    assert feature.severity == "major"
    assert feature.statistics["null_share_change"] == pytest.approx(0.29, abs=0.05)


def test_values_outside_the_training_range_are_measured() -> None:
    columns = _window(1_000)
    columns["age"] = np.where(np.arange(1_000) < 100, 200.0, columns["age"])

    feature = compare(_reference(), columns).features["age"]

    assert feature.statistics["out_of_range_share"] == pytest.approx(0.1, abs=0.01)
    assert feature.severity == "major"  # the values are also far from the training ones


def test_unseen_categories_are_counted() -> None:
    columns = _window(1_000)
    region = columns["region"].copy()
    region[:30] = "atlantis"
    region[30:40] = "mars"
    columns["region"] = region

    feature = compare(_reference(), columns).features["region"]

    assert feature.statistics["unseen"] == 40
    assert feature.statistics["unseen_categories"] == 2
    # Mass where training had none weighs heavily in JS distance: 4% of rows is ~0.2.
    assert feature.severity in ("minor", "major")
    region[2:40] = "north"
    few = compare(_reference(), columns).features["region"]
    assert (few.statistics["unseen"], few.severity) == (2, "none")


def test_the_window_is_binned_like_the_profile() -> None:
    feature = _reference()["features"]["total_charges"]
    values = _window_frame(5_000, 0)["total_charges"].dropna().to_numpy()
    edges = np.asarray(feature["edges"])

    ours = np.searchsorted(edges[1:-1], values, side="right")

    assert ours.tolist() == bin_index(edges, values).tolist()


def test_constant_and_all_null_columns_get_defined_verdicts() -> None:
    train = churn_frame(2_000, seed=1).assign(plan="basic", fee=9.99, note=None, gone=np.nan)
    schema = {
        **CHURN_SCHEMA,
        "plan": FeatureType.CATEGORICAL,
        "fee": FeatureType.NUMERIC,
        "note": FeatureType.CATEGORICAL,
        "gone": FeatureType.NUMERIC,
    }
    reference = churn_reference(train, schema)
    for rows in (200, 5_000):
        unchanged = _window(rows) | {
            "plan": np.full(rows, "basic", dtype=object),
            "fee": np.full(rows, 9.99),
            "note": np.full(rows, None, dtype=object),
            "gone": np.full(rows, np.nan),
        }
        changed = unchanged | {
            "plan": np.full(rows, "premium", dtype=object),
            "fee": np.full(rows, 19.99),
            "note": np.full(rows, "hello", dtype=object),
            "gone": np.arange(rows, dtype=np.float64),
        }

        same = compare(reference, unchanged)
        different = compare(reference, changed)

        for name in ("plan", "fee", "note", "gone"):
            assert same.features[name].severity == "none"
            assert different.features[name].severity == "major"
        assert "all values missing in both" in " ".join(same.features["gone"].notes)
        for feature in [*same.features.values(), *different.features.values()]:
            assert feature.score is None or math.isfinite(feature.score)
        assert different.verdict == "drift"
        _json(same), _json(different)


def test_fewer_than_min_rows_is_insufficient_data() -> None:
    report = compare(_reference(), window_columns(_window_frame(99, 0)))

    assert report.verdict == "insufficient_data"
    assert report.features == {}
    assert compare(
        _reference(), _window(200), thresholds=DriftThresholds(min_rows=500)
    ).verdict == ("insufficient_data")
    assert compare(_reference(), {}).verdict == "insufficient_data"


def test_a_critical_feature_with_major_drift_makes_the_dataset_drift() -> None:
    columns = _shifted(1_000, "monthly_charges", 0.5)
    critical = DriftThresholds(critical_features=frozenset({"monthly_charges"}))

    assert compare(_reference(), columns).verdict == "no_drift"
    report = compare(_reference(), columns, thresholds=critical)
    assert report.verdict == "drift"
    assert "monthly_charges" in report.notes[0]


def test_the_share_of_drifted_features_decides_the_dataset_verdict() -> None:
    columns = _window(1_000)
    for name in ("age", "monthly_charges", "total_charges"):
        columns[name] = columns[name] + _reference()["features"][name]["std"]

    report = compare(_reference(), columns)

    assert report.drifted_share == pytest.approx(3 / 9)
    assert report.verdict == "drift"


def test_sensitive_columns_are_dropped_or_compared_as_hashes() -> None:
    train = churn_frame(5_000, seed=1)
    hashed = train.assign(region=train["region"].map(hash_value, na_action="ignore"))
    reference = churn_reference(hashed)
    columns = _window(1_000)
    # as capture stores them: region hashed once, contract absent
    columns["region"] = np.array([hash_value(v) for v in columns["region"]], dtype=object)
    del columns["contract"]

    report = compare(reference, columns, sensitive={"region": "hash", "contract": "drop"})

    assert report.skipped == ("contract",)
    assert "contract" not in report.features
    assert report.features["region"].severity == "none"
    assert report.features["region"].statistics["unseen"] == 0
    assert "north" not in _json(report)
    # hashes are compared as they are: hashing them again would make every one unseen
    rehashed = dict(columns, region=[hash_value(value) for value in columns["region"]])
    assert compare(reference, rehashed).features["region"].severity == "major"


def test_prediction_drift_on_class_shares() -> None:
    reference = _reference()
    rng = np.random.default_rng(3)
    same = np.where(rng.random(2_000) * 0.8 >= 0.5, "yes", "no")
    more_yes = np.where(rng.random(2_000) >= 0.1, "yes", "no")  # 37.5% -> 90%

    unchanged = compare(reference, _window(2_000), predictions=same).prediction
    assert unchanged is not None and unchanged.severity == "none"
    shifted = compare(reference, _window(2_000), predictions=more_yes).prediction
    assert shifted is not None and shifted.severity == "major"


def test_regression_prediction_drift_uses_the_profile_bins() -> None:
    train = churn_frame(3_000, seed=1)
    predicted = np.random.default_rng(0).normal(60.0, 10.0, 500)
    reference = charges_reference(train, predicted, sample_rows=500, seed=1)
    rng = np.random.default_rng(4)

    same = compare(reference, _window(5_000), predictions=rng.normal(60.0, 10.0, 5_000))
    moved = compare(reference, _window(5_000), predictions=rng.normal(70.0, 10.0, 5_000))

    assert same.prediction is not None and same.prediction.severity == "none"
    assert moved.prediction is not None and moved.prediction.severity == "major"


def test_a_missing_window_column_counts_as_all_null() -> None:
    columns = _window(1_000)
    del columns["region"]

    report = compare(_reference(), columns)

    assert report.features["region"].severity == "major"
    assert report.features["region"].statistics["null_share"] == 1.0


def test_columns_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        compare(_reference(), {"age": [1.0] * 200, "region": ["north"] * 199})


_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(_VALUES, _VALUES, _VALUES), min_size=95, max_size=130),
    large=st.booleans(),
)
def test_reports_never_contain_nan_or_inf(data: list[tuple[Any, Any, Any]], large: bool) -> None:
    age, region, monthly = (list(column) for column in zip(*data, strict=True))
    thresholds = DriftThresholds(large_window=100 if large else 1_000)

    report = compare(
        _reference(),
        {"age": age, "region": region, "monthly_charges": monthly},
        predictions=region,
        thresholds=thresholds,
    )

    text = _json(report)
    assert "NaN" not in text and "Infinity" not in text
    for feature in report.features.values():
        assert feature.severity in ("none", "minor", "major")
        assert all(math.isfinite(p) for p in feature.p_values.values())


FLAGGED, MAJOR, MINOR, NONE = ("minor", "major"), ("major",), ("minor",), ("none",)
# docs/drift.md's table, one row a shift: (column, the window's maker, called with (rows, column,
# amount, seed), the amount, the severities allowed at each of SIZES)
TABLE = {
    "monthly_charges mean +0.05 sd": ("monthly_charges", _shifted, 0.05, (NONE,) * 4),
    "monthly_charges mean +0.1 sd": ("monthly_charges", _shifted, 0.1, (NONE + MINOR,) * 4),
    "monthly_charges mean +0.25 sd": ("monthly_charges", _shifted, 0.25, (FLAGGED,) * 4),
    "monthly_charges mean +0.5 sd": ("monthly_charges", _shifted, 0.5, (MAJOR,) * 4),
    "age sd x0.8": ("age", _scaled, 0.8, (MINOR,) * 4),
    "age sd x1.25": ("age", _scaled, 1.25, (MINOR,) * 4),
    "age sd x1.5": ("age", _scaled, 1.5, (MAJOR,) * 4),
    "month-to-month +10 points": ("contract", _moved_contracts, 0.10, (NONE,) * 4),
    "month-to-month +15 points": ("contract", _moved_contracts, 0.15, (NONE, MINOR, MINOR, MINOR)),
    "month-to-month +25 points": ("contract", _moved_contracts, 0.25, (MAJOR,) * 4),
    "region 4% unseen": ("region", _unseen_categories, 0.04, (MINOR,) * 4),
    "region 10% unseen": ("region", _unseen_categories, 0.10, (MAJOR,) * 4),
    "age nulls 2% -> 8%": ("age", _more_nulls, 0.06, (MINOR,) * 4),
    "age nulls 2% -> 30%": ("age", _more_nulls, 0.3, (MAJOR,) * 4),
    "age 10% out of range": ("age", _out_of_range, 0.10, (MAJOR,) * 4),
}


@pytest.mark.parametrize("size", range(len(SIZES)), ids=[str(rows) for rows in SIZES])
@pytest.mark.parametrize("shift", TABLE)
def test_the_documented_table(shift: str, size: int) -> None:
    column, window, amount, allowed = TABLE[shift]

    feature = compare(_reference(), window(SIZES[size], column, amount, 0)).features[column]

    print(f"\n{shift} at {SIZES[size]}: {feature.severity}, score {feature.score:.3f}")
    assert feature.severity in allowed[size], feature.statistics


POWER = {  # shift -> (column, window, amount, windows of 20 at 200 rows that must be flagged)
    "monthly_charges mean +0.5 sd": (*TABLE["monthly_charges mean +0.5 sd"][:3], 18),
    "age sd x0.8": (*TABLE["age sd x0.8"][:3], 14),  # a minor shift: 16/20 measured
    "age sd x1.5": (*TABLE["age sd x1.5"][:3], 18),
    "month-to-month +25 points": (*TABLE["month-to-month +25 points"][:3], 18),
    "region 10% unseen": (*TABLE["region 10% unseen"][:3], 18),
    "age nulls 2% -> 30%": (*TABLE["age nulls 2% -> 30%"][:3], 18),
    "age 10% out of range": (*TABLE["age 10% out of range"][:3], 18),
}


@pytest.mark.parametrize("shift", POWER)
def test_each_kind_of_shift_is_caught_in_small_windows(shift: str) -> None:
    column, window, amount, expected = POWER[shift]

    flagged = sum(
        compare(_reference(), window(200, column, amount, seed)).features[column].severity != "none"
        for seed in range(20)
    )

    print(f"\n{shift}: flagged in {flagged}/20 windows of 200 rows")
    assert flagged >= expected


def test_scores_and_histograms_summarise_each_feature_for_dashboards() -> None:
    columns = _out_of_range(1_000, "age", 0.10)
    report = compare(_reference(), columns)
    age, contract = report.features["age"], report.features["contract"]
    profile = _reference()["features"]["age"]

    assert age.score == age.statistics["wasserstein_normed"]
    assert contract.score == contract.statistics["js_distance"]
    assert age.histogram is not None and contract.histogram is not None
    assert age.histogram["edges"] == profile["edges"]
    assert age.histogram["reference"] == profile["counts"]
    assert sum(age.histogram["current"]) == int(np.isfinite(columns["age"]).sum())
    assert age.histogram["above"] == int((columns["age"] > profile["max"]).sum()) > 0
    assert age.histogram["current"][-1] >= age.histogram["above"]  # folded into the last bin
    assert age.histogram["below"] == 0
    assert sorted(contract.histogram["labels"]) == sorted(CONTRACTS)
    assert sum(contract.histogram["current"]) == sum(v is not None for v in columns["contract"])
    assert json.loads(_json(report))["features"]["age"]["histogram"]["edges"] == profile["edges"]


def test_many_categories_are_shown_as_twenty_bars() -> None:
    rng = np.random.default_rng(2)
    train = churn_frame(3_000, seed=1).assign(city=rng.integers(0, 40, 3_000).astype(str))
    reference = churn_reference(train, {**CHURN_SCHEMA, "city": FeatureType.CATEGORICAL})
    city = rng.integers(0, 40, 1_000).astype(str).astype(object)
    city[:100] = "atlantis"

    histogram = compare(reference, _window(1_000) | {"city": city}).features["city"].histogram

    assert histogram is not None
    assert len(histogram["labels"]) == 20
    assert histogram["labels"][-2:] == ["<other>", "<unseen>"]
    assert sum(histogram["reference"]) == 3_000
    assert sum(histogram["current"]) == 1_000
    assert histogram["current"][-1] == 100


def test_thresholds_come_from_the_drift_config() -> None:
    # The same values on both sides; only the critical features change type.
    values: dict[str, Any] = {
        "min_rows": 50,
        "large_window": 500,
        "alpha": 0.01,
        "psi": (0.2, 0.3),
        "wasserstein": (0.15, 0.3),
        "js": (0.05, 0.1),
        "null_share": (0.1, 0.3),
        "out_of_range": (0.01, 0.1),
        "share": 0.5,
    }
    config = DriftConfig(**values, critical_features=["age"])

    thresholds = DriftThresholds.from_config(config)

    assert thresholds == DriftThresholds(**values, critical_features=frozenset({"age"}))
    assert DriftThresholds.from_config(DriftConfig()) == DriftThresholds()
    assert compare(_reference(), _window(200), thresholds=thresholds).method == "p_value"
    assert compare(_reference(), _window(500), thresholds=thresholds).method == "effect_size"


def test_an_empty_window_is_insufficient_data_and_json_safe() -> None:
    empty = {name: np.array([]) for name in CHURN_SCHEMA}

    report = compare(_reference(), empty, predictions=np.array([]))

    assert (report.verdict, report.rows, report.drifted_share) == ("insufficient_data", 0, 0.0)
    assert json.loads(_json(report))["verdict"] == "insufficient_data"
