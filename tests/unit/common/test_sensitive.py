"""Sensitive columns (functions/common/sensitive.py): one hash for capture and training."""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.common.sensitive import SensitiveColumns, category_text, hash_value
from functions.ml.onnx_input import MISSING_CATEGORY, category


@pytest.mark.parametrize(
    "value",
    [
        None,
        math.nan,
        np.float32("nan"),
        np.float64("nan"),
        "",
        "north",
        np.str_("x"),
        3,
        3.5,
        42.0,
        np.float64(42.0),
        np.float32(1.5),
        np.int64(7),
        True,
        Decimal("NaN"),
        -0.0,
    ],
)
def test_the_text_hashed_is_the_category_the_model_sees(value: object) -> None:
    assert category_text(value) == category(value)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none()))
def test_text_matches_the_model_category_for_any_json_value(value: object) -> None:
    assert category_text(value) == category(value)


def test_hash_is_sha256_of_the_category_and_missing_stays_missing() -> None:
    assert hash_value("north") == hashlib.sha256(b"north").hexdigest()[:16]
    assert hash_value(42.0) == hashlib.sha256(b"42.0").hexdigest()[:16]
    assert hash_value(None) == hash_value(math.nan) == hash_value("") == MISSING_CATEGORY


def test_a_salt_keys_the_hash() -> None:
    plain, salted = hash_value("north"), hash_value("north", "project-salt")
    assert salted != plain and len(salted) == 16
    assert salted == hash_value("north", "project-salt")
    assert salted != hash_value("north", "other-salt")
    assert hash_value(None, "project-salt") == MISSING_CATEGORY


def test_stored_rows_hold_hashes_and_no_dropped_column() -> None:
    columns = SensitiveColumns({"email": "hash", "region": "drop"}, salt="s")
    row = {"email": "a@example.com", "region": "north", "age": 41.0}

    stored = columns.stored(row)

    assert stored == {"email": hash_value("a@example.com", "s"), "age": 41.0}
    assert row["email"] == "a@example.com", "the caller's row is not changed"
    assert SensitiveColumns().stored(row) == row and not SensitiveColumns()
