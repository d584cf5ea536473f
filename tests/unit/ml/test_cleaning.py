"""Cleaning: names, missing markers, types, missing targets, duplicates, extra columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import FeatureType
from functions.ml.cleaning import (
    ChunkCleaner,
    RowDeduplicator,
    clean_frame,
    normalise_column_name,
    normalise_header,
)
from functions.ml.errors import DataValidationError

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL
COLUMNS = {"age": N, "region": C, "churned": C}
MARKERS = ["", "na", "n/a", "null", "none", "?", "-"]


def _values(series: pd.Series) -> list[object]:
    return [None if pd.isna(value) else value for value in series]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("age", "age"),
        (" Monthly Charges ($) ", "monthly_charges"),
        ("Tenure-Months", "tenure_months"),
        ("\ufeffCustomer ID", "customer_id"),
        ("2nd Region", "_2nd_region"),
        ("already_clean_1", "already_clean_1"),
    ],
)
def test_column_names_are_normalised(raw: str, clean: str) -> None:
    assert normalise_column_name(raw) == clean


def test_an_empty_column_name_gets_its_position() -> None:
    assert normalise_column_name("  ", position=3) == "column_4"


def test_repeated_header_names_are_rejected() -> None:
    with pytest.raises(DataValidationError) as caught:
        normalise_header(["age", "region", "age"])

    assert caught.value.code.value == "duplicate_columns"
    assert caught.value.columns == ["age"]


def test_header_names_that_collide_after_normalisation_are_rejected() -> None:
    with pytest.raises(DataValidationError) as caught:
        normalise_header(["Monthly Charges", "monthly_charges", "age"])

    assert caught.value.code.value == "duplicate_columns"
    assert caught.value.columns == ["Monthly Charges", "monthly_charges"]
    assert "monthly_charges" in caught.value.message


def test_missing_markers_become_null_whatever_their_case_and_padding() -> None:
    raw = pd.DataFrame(
        {
            "age": ["41", " N/A ", "?", "null"],
            "region": ["north", "NONE", " - ", "south "],
            "churned": ["yes", "no", "yes", "yes"],
        }
    )

    cleaned, summary = clean_frame(raw, COLUMNS, "churned", MARKERS)

    assert cleaned["age"].isna().tolist() == [False, True, True, True]
    assert _values(cleaned["region"]) == ["north", None, None, "south"]
    assert summary.missing_markers_replaced == {"age": 3, "region": 2}
    assert summary.values_trimmed == {"age": 1, "region": 2}


def test_numbers_are_coerced_and_invalid_values_nulled_and_counted() -> None:
    raw = pd.DataFrame(
        {
            "age": ["41", " 3.5", "1e2", "forty", "inf", "-7"],
            "region": list("abcdef"),
            "churned": ["yes"] * 6,
        }
    )
    cleaner = ChunkCleaner(COLUMNS, "churned", MARKERS)

    cleaned, _ = cleaner.clean(raw)

    assert cleaned["age"].dtype == np.float64
    assert cleaned["age"].tolist()[:3] == [41.0, 3.5, 100.0]
    assert cleaned["age"].iloc[5] == -7.0
    assert cleaned["age"].iloc[3:5].isna().all()
    assert cleaner.summary.invalid_values_nulled == {"age": 2}
    quality = cleaner.quality["age"]
    assert (quality.present, quality.invalid) == (6, 2)
    assert quality.samples == [{"row": 4, "value": "forty"}, {"row": 5, "value": "inf"}]


def test_typed_values_become_text_in_categorical_columns_and_missing_stays_null() -> None:
    raw = pd.DataFrame(
        {"age": [1, 2, 3], "region": [3.0, np.nan, 2.5], "churned": [1, 0, 1]},
    )

    cleaned, _ = clean_frame(raw, COLUMNS, "churned", MARKERS)

    assert _values(cleaned["region"]) == ["3", None, "2.5"]
    assert cleaned["churned"].tolist() == ["1", "0", "1"]


def test_rows_without_a_target_are_dropped_and_counted() -> None:
    raw = pd.DataFrame(
        {"age": ["1", "2", "3"], "region": ["a", "b", "c"], "churned": ["yes", "", "NA"]}
    )

    cleaned, summary = clean_frame(raw, COLUMNS, "churned", MARKERS)

    assert cleaned["age"].tolist() == [1.0]
    assert summary.rows_missing_target_dropped == 2
    assert (summary.rows_in, summary.rows_out) == (3, 1)


def test_exact_duplicates_are_dropped_across_chunks_keeping_the_first() -> None:
    cleaner = ChunkCleaner(COLUMNS, "churned", MARKERS)
    first = pd.DataFrame({"age": ["1", "2", "1"], "region": ["a", "b", "a"], "churned": ["y"] * 3})
    second = pd.DataFrame({"age": ["2.0", "3"], "region": ["b", "c"], "churned": ["y", "y"]})

    kept_first, _ = cleaner.clean(first)
    kept_second, _ = cleaner.clean(second)

    assert kept_first["age"].tolist() == [1.0, 2.0]
    assert kept_second["age"].tolist() == [3.0]
    assert cleaner.summary.duplicate_rows_dropped == 2


def test_columns_outside_the_contract_are_dropped_and_recorded() -> None:
    raw = pd.DataFrame(
        {"Customer ID": ["c1"], "AGE": ["1"], "Region": ["a"], "churned": ["y"], "x": [1]}
    )

    cleaned, summary = clean_frame(raw, COLUMNS, "churned", MARKERS)

    assert list(cleaned.columns) == ["age", "region", "churned"]
    assert summary.columns_dropped == ["customer_id", "x"]
    assert summary.columns_renamed == {
        "Customer ID": "customer_id",
        "AGE": "age",
        "Region": "region",
    }


def test_a_contract_column_absent_from_a_chunk_is_all_null() -> None:
    cleaned, _ = clean_frame(pd.DataFrame({"churned": ["y"]}), COLUMNS, "churned", MARKERS)

    assert cleaned["age"].isna().all()
    assert _values(cleaned["region"]) == [None]


cells = st.one_of(
    st.sampled_from(["", " ", "NA", "n/a", "?", "None", "x", " y ", "1", "2.50", "-3", "abc"]),
    st.text(max_size=4),
    st.none(),
)
frames = st.lists(st.tuples(cells, cells, cells), max_size=30).map(
    lambda rows: pd.DataFrame(rows, columns=["age", "region", "churned"], dtype=object)
)


@settings(max_examples=150, deadline=None)
@given(frames)
def test_cleaning_a_cleaned_frame_changes_nothing(raw: pd.DataFrame) -> None:
    once, _ = clean_frame(raw, COLUMNS, "churned", MARKERS)

    twice, summary = clean_frame(once, COLUMNS, "churned", MARKERS)

    pd.testing.assert_frame_equal(once, twice)
    assert summary.rows_out == summary.rows_in
    assert not summary.missing_markers_replaced
    assert not summary.invalid_values_nulled


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 20), max_size=60), st.integers(1, 10))
def test_deduplication_across_chunks_matches_whole_file_deduplication(
    values: list[int], chunk: int
) -> None:
    hashes = np.array(values, dtype=np.uint64)
    deduplicator = RowDeduplicator()

    kept: list[int] = []
    for start in range(0, len(hashes), chunk):
        part = hashes[start : start + chunk]
        kept.extend(part[deduplicator.keep(part)].tolist())

    assert kept == list(dict.fromkeys(values))
