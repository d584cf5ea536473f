"""The drop layout: a raw key maps to one quarantined copy and one reason, and nothing a
producer can drop maps onto a reason."""

from __future__ import annotations

import pytest

from functions.common.layout import quarantine_key, raw_key_of_reason, reason_key

DROPS = [
    "raw/churn/x.csv",
    "raw/churn/x.csv.reason.json",
    "raw/churn/x.csv.reason.json.reason.json",
    "raw/reasons/churn/x.csv",
    "raw/files/churn/x.csv.reason.json",
    "raw/x.csv",
]


def test_no_drop_s_copy_or_reason_lands_on_another_drop_s_reason() -> None:
    copies = {quarantine_key(key) for key in DROPS}
    reasons = {reason_key(key) for key in DROPS}
    assert len(copies) == len(reasons) == len(DROPS)
    assert copies.isdisjoint(reasons)
    assert reason_key("raw/churn/x.csv") == "quarantine/reasons/churn/x.csv.reason.json"
    assert quarantine_key("raw/churn/x.csv") == "quarantine/files/churn/x.csv"


@pytest.mark.parametrize("key", DROPS)
def test_a_reason_key_names_its_drop(key: str) -> None:
    assert raw_key_of_reason(reason_key(key)) == key


@pytest.mark.parametrize("key", ["curated/churn/x.csv", "raw/", "quarantine/churn/x.csv"])
def test_a_key_outside_raw_is_not_a_drop(key: str) -> None:
    with pytest.raises(ValueError, match="not a drop"):
        reason_key(key)


def test_a_quarantined_copy_is_not_a_reason() -> None:
    with pytest.raises(ValueError, match="not a reason record"):
        raw_key_of_reason(quarantine_key("raw/churn/x.csv.reason.json"))
