"""The dataset verdict of a drift check: weighed by what the served model relies on (permutation
importances stored in the reference profile at training), with data-quality breaks counted
apart from distribution drift, and the decision rule stated in the report."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.loading import MlopsConfig, parse_config
from functions.ml.drift.engine import compare
from functions.ml.drift.report import DriftThresholds
from functions.ml.sample_data import churn_frame
from functions.train.logic import Stopwatch, fit_candidate
from tests.helpers.drift import churn_reference
from tests.helpers.models import CHURN_SCHEMA

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL
PENGUIN_SCHEMA = {
    "island": C,
    "bill_length_mm": N,
    "bill_depth_mm": N,
    "flipper_length_mm": N,
    "body_mass_g": N,
    "sex": C,
    "year": N,
}


def _penguins(rows: int, seed: int) -> pd.DataFrame:
    """Three species told apart by island and bill length only; the other five features are
    the same for every species (noise the model learns to ignore)."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], size=rows)
    home = {"Adelie": "Torgersen", "Chinstrap": "Dream", "Gentoo": "Biscoe"}
    islands = np.array(["Torgersen", "Dream", "Biscoe"])
    island = np.where(
        rng.random(rows) < 0.8,
        [home[s] for s in species],
        islands[rng.integers(0, 3, size=rows)],
    )
    bill = np.select(
        [species == "Adelie", species == "Chinstrap"], [38.8, 48.8], 47.5
    ) + rng.normal(0, 2.5, rows)
    return pd.DataFrame(
        {
            "island": island,
            "bill_length_mm": bill.round(1),
            "bill_depth_mm": rng.normal(17.0, 2.0, rows).round(1),
            "flipper_length_mm": rng.normal(200.0, 14.0, rows).round(0),
            "body_mass_g": rng.normal(4200.0, 800.0, rows).round(-1),
            "sex": rng.choice(["male", "female"], size=rows),
            "year": rng.choice([2007, 2008, 2009], size=rows),
            "species": species,
        }
    )


def _config(estimator: str = "random_forest") -> MlopsConfig:
    return parse_config(
        {
            "dataset": {
                "name": "penguins",
                "target": "species",
                "task": "classification",
                "features": {name: kind.value for name, kind in PENGUIN_SCHEMA.items()},
            },
            "model": {"estimator": estimator, "params": {"n_estimators": 50}, "seed": 3},
        }
    )


@cache
def _penguin_profile() -> dict[str, Any]:
    candidate = fit_candidate(
        _penguins(1_500, seed=1),
        target="species",
        task=Task.CLASSIFICATION,
        schema=PENGUIN_SCHEMA,
        config=_config(),
        stopwatch=Stopwatch(),
    )
    return candidate.reference_profile


def _columns(frame: pd.DataFrame, schema: dict[str, FeatureType]) -> dict[str, Any]:
    return {
        name: frame[name].to_numpy(dtype=np.float64)
        if kind is N
        else frame[name].astype(object).where(frame[name].notna(), None).tolist()
        for name, kind in schema.items()
    }


def _shifted_penguins(rows: int = 1_000) -> dict[str, Any]:
    traffic = _penguins(rows, seed=50)
    traffic["island"] = "Biscoe"
    traffic["bill_length_mm"] = traffic["bill_length_mm"] * 1.25
    return _columns(traffic, PENGUIN_SCHEMA)


def test_training_stores_permutation_importances_in_the_reference_profile() -> None:
    importance = _penguin_profile()["importance"]

    assert importance["method"] == "permutation"
    assert set(importance["features"]) == set(PENGUIN_SCHEMA)
    ranked = sorted(importance["features"], key=importance["features"].__getitem__)
    assert set(ranked[-2:]) == {"island", "bill_length_mm"}
    assert set(importance["critical"]) <= {"island", "bill_length_mm"}
    assert importance["critical"]


def test_a_major_drift_of_what_the_model_relies_on_is_dataset_drift() -> None:
    report = compare(_penguin_profile(), _shifted_penguins())

    assert set(report.drifted) == {"island", "bill_length_mm"}
    assert report.drifted_share == pytest.approx(2 / 7)
    assert report.verdict == "drift"
    assert report.decision.startswith("2 of 7 features drifted (share 0.29 < 0.3)")
    assert "critical" in report.decision
    assert "importance" in report.decision
    assert report.to_dict()["decision"] == report.decision


def test_without_drift_the_decision_names_the_rule_it_applied() -> None:
    report = compare(_penguin_profile(), _columns(_penguins(1_000, seed=51), PENGUIN_SCHEMA))

    assert report.verdict == "no_drift"
    assert report.decision.startswith("0 of 7 features drifted (share 0.00 < 0.3)")
    assert "no critical feature drifted" in report.decision


def test_configured_critical_features_win_over_importances() -> None:
    thresholds = DriftThresholds(
        critical_features=frozenset({"body_mass_g"}), data_quality_fail="never"
    )

    report = compare(_penguin_profile(), _shifted_penguins(), thresholds=thresholds)

    assert report.verdict == "no_drift"
    assert "critical_features" in report.decision


def _churn_profile() -> dict[str, Any]:
    profile = churn_reference(churn_frame(5_000, seed=1))
    assert "importance" not in profile, "a profile built without importances has none"
    return profile


def test_an_old_profile_without_importances_falls_back_to_the_share_rule_and_says_so() -> None:
    columns = _columns(churn_frame(1_000, seed=9), CHURN_SCHEMA)
    profile = _churn_profile()
    columns["monthly_charges"] += 0.5 * profile["features"]["monthly_charges"]["std"]

    report = compare(profile, columns)

    assert report.features["monthly_charges"].severity == "major"
    assert report.verdict == "no_drift"
    assert "no feature importance" in report.decision


def test_data_quality_breaks_are_counted_apart_and_fail_the_check_whatever_the_share() -> None:
    frame = churn_frame(1_000, seed=9)
    frame.loc[frame.index[::2], "age"] = np.nan  # 50 % nulls
    frame.loc[frame.index[::3], "region"] = [f"zone-{i}" for i in range(len(frame.index[::3]))]
    columns = _columns(frame, CHURN_SCHEMA)

    report = compare(_churn_profile(), columns)

    assert report.features["age"].quality == "major"
    assert report.features["region"].quality == "major"
    assert set(report.data_quality) == {"age", "region"}
    assert "age" not in report.drifted  # a null share is not a change of distribution
    assert report.verdict == "drift"
    assert "data quality" in report.decision

    lenient = DriftThresholds(data_quality_fail="never")
    report = compare(_churn_profile(), columns, thresholds=lenient)
    assert set(report.data_quality) == {"age", "region"}
    assert report.verdict == "no_drift"
