"""Demo data: deterministic, matching mlops.toml, learnable, with the promised imperfections."""

from __future__ import annotations

import pandas as pd

from functions.common.config.dataset import DatasetConfig
from functions.ml.sample_data import (
    BAD_FILE_REASONS,
    FORMATS,
    bad_files,
    churn_frame,
    encode,
    good_files,
)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_rows() -> None:
    assert encode(churn_frame(500, seed=3)) == encode(churn_frame(500, seed=3))
    assert bad_files() == bad_files()
    assert good_files() == good_files()
    assert not churn_frame(500, seed=3).equals(churn_frame(500, seed=4))


def test_the_table_has_the_features_and_target_of_mlops_toml(churn: DatasetConfig) -> None:
    frame = churn_frame(1_000)

    assert churn.features is not None
    assert set(churn.features) | {churn.target, "customer_id"} == set(frame.columns)
    assert set(frame[churn.target]) == {"yes", "no"}
    numeric = [name for name, kind in churn.features.items() if kind.value == "numeric"]
    assert all(pd.api.types.is_numeric_dtype(frame[name]) for name in numeric)


def test_some_values_are_missing_and_some_rows_are_exact_duplicates() -> None:
    frame = churn_frame(2_000)

    assert 0 < frame["region"].isna().mean() < 0.05
    assert frame.loc[frame["tenure_months"] == 0, "total_charges"].isna().all()
    assert 0 < frame.duplicated().sum() <= 20


def test_churn_has_a_signal_a_model_can_learn() -> None:
    frame = churn_frame(5_000)
    rate = frame.assign(churn=frame["churned"] == "yes").groupby("contract")["churn"].mean()

    assert rate["month-to-month"] > 2 * rate["two year"]
    new = frame.loc[frame["tenure_months"] < 12, "churned"].eq("yes").mean()
    loyal = frame.loc[frame["tenure_months"] > 48, "churned"].eq("yes").mean()
    assert new > loyal + 0.1


def test_there_is_one_good_file_per_format_and_one_bad_file_per_reason() -> None:
    good, bad = good_files(), bad_files()

    assert [name.split(".", 1)[1] for name in good] == list(FORMATS)
    assert set(bad) == set(BAD_FILE_REASONS)
    assert sum(map(len, good.values())) + sum(map(len, bad.values())) < 3_000_000
