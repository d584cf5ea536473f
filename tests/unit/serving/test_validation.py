"""The column-at-a-time check of v1 bodies gives what the row-at-a-time walk gives: the same
columns, the same unseen counts and, for a bad body, the same status, code, message and field."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.serving.body import parse_json
from functions.serving.errors import RequestError
from functions.serving.features import FeatureSpec
from functions.serving.instances import _checked_rows, instances_batch
from functions.serving.tensors import infer_batch
from functions.serving.values import Batch

SPECS = (
    FeatureSpec("age", "numeric", frozenset()),
    FeatureSpec("plan", "categorical", frozenset({"basic", "pro"})),
    FeatureSpec("charges", "numeric", frozenset()),
    FeatureSpec("region", "categorical", frozenset({"north", "south"})),
)
NAMES = [spec.name for spec in SPECS]

values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.sampled_from([1e300, -1e39, 3.4e38, 10**400]),
    st.sampled_from(["basic", "pro", "north", "south", "", "atlantis"]),
    st.text(max_size=3),
    st.booleans(),
    st.just([]),
    st.just({"a": 1}),
)
good_values = {
    "numeric": st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6)),
    "categorical": st.one_of(st.none(), st.sampled_from(["basic", "pro", "north", "", "x"])),
}


def _good_row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({spec.name: good_values[spec.kind] for spec in SPECS})


@st.composite
def _row(draw: st.DrawFn) -> Any:
    row = draw(_good_row())
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=2)):
        row[name] = draw(values)
    shape = draw(st.sampled_from(["ok"] * 8 + ["missing", "extra", "swapped", "not_a_dict"]))
    if shape == "missing":
        del row[draw(st.sampled_from(NAMES))]
    elif shape == "extra":
        row["shoe_size"] = 44
    elif shape == "swapped":
        del row[draw(st.sampled_from(NAMES))]
        row["shoe_size"] = 44
    elif shape == "not_a_dict":
        return draw(st.sampled_from([5, "row", None, [1]]))
    return row


def _outcome(check: Any) -> Any:
    try:
        batch: Batch = check()
    except RequestError as error:
        return ("refused", error.status, error.code, error.message, error.field)
    columns = {
        name: [None if isinstance(v, float) and math.isnan(v) else v for v in list(column)]
        for name, column in batch.columns.items()
    }
    return ("accepted", batch.rows, list(batch.columns), columns, batch.unseen)


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(_row(), min_size=1, max_size=6), reject_unseen=st.booleans())
def test_columns_at_a_time_match_rows_at_a_time(rows: list[Any], reject_unseen: bool) -> None:
    document = {"instances": rows}

    fast = _outcome(
        lambda: instances_batch(document, SPECS, max_rows=100, reject_unseen=reject_unseen)
    )
    walked = _outcome(lambda: _checked_rows(rows, SPECS, reject_unseen=reject_unseen))

    assert fast == walked


def test_numeric_columns_are_float64_with_nan_for_null() -> None:
    rows = [{"age": 3, "plan": "pro", "charges": None, "region": None}] * 2

    batch = instances_batch({"instances": rows}, SPECS, max_rows=10, reject_unseen=False)

    assert batch.columns["age"].dtype == np.float64
    assert np.isnan(batch.columns["charges"]).all()
    assert batch.columns["region"] == [None, None]


@pytest.mark.parametrize(
    ("raw", "code", "named"),
    [
        ('{"instances": [', "malformed_json", "line 1 column 16"),
        ("[1, 2", "malformed_json", "not valid JSON"),
        ("\ud800", "malformed_json", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_json_is_named(raw: str, code: str, named: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_json(raw, base64_encoded=False, max_bytes=1_000)

    assert (refused.value.status, refused.value.code) == (400, code)
    assert named in refused.value.message


def test_nan_and_infinity_literals_and_huge_integers_parse_to_be_refused_per_value() -> None:
    document = parse_json(
        '{"a": NaN, "b": -Infinity, "c": 1' + "0" * 400 + "}", base64_encoded=False, max_bytes=1_000
    )

    assert math.isnan(document["a"]) and document["b"] == -math.inf
    assert document["c"] == 10**400


def test_size_limit_counts_bytes_not_characters() -> None:
    body = json.dumps({"name": "é" * 600}, ensure_ascii=False)  # 600 characters, 1,200 bytes

    with pytest.raises(RequestError) as refused:
        parse_json(body, base64_encoded=False, max_bytes=1_024)

    assert refused.value.code == "body_too_large"


def test_an_escaped_lone_surrogate_is_malformed_json_not_a_server_error() -> None:
    # orjson refuses it; the standard-library fallback would accept it and crash later.
    raw = '{"instances": [{"plan": "\\ud800"}]}'
    with pytest.raises(RequestError) as refused:
        parse_json(raw, base64_encoded=False, max_bytes=1_000)

    assert (refused.value.status, refused.value.code) == (400, "malformed_json")
    assert "unpaired surrogate" in refused.value.message


def _tensor(name: str, data: list[Any], datatype: Any = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("inputs", "code", "field"),
    [
        ([_tensor("age", [1.0], datatype=[])], "invalid_datatype", "inputs[0].datatype"),
        ([_tensor("age", [])], "empty_batch", "inputs[0].shape"),
        ([_tensor("age", [1.0] * 5)], "too_many_rows", "inputs[0].shape"),
        ([_tensor("age", [1.0]), _tensor("age", [2.0])], "duplicate_input", "inputs[1].name"),
        ([_tensor("age", [1.0])], "missing_feature", "inputs"),
    ],
)
def test_infer_refusals_name_the_tensor_field(inputs: list[Any], code: str, field: str) -> None:
    with pytest.raises(RequestError) as refused:
        infer_batch({"inputs": inputs}, SPECS, max_rows=4, reject_unseen=False)

    assert (refused.value.code, refused.value.field) == (code, field)
    assert field.split(".")[0].split("[")[0] in refused.value.message


ALIASED = (
    FeatureSpec("monthly_charges", "numeric", frozenset(), ("Monthly Charges ($)",)),
    FeatureSpec("plan", "categorical", frozenset({"basic", "pro"}), ("Plan", "PLAN ")),
)


def test_a_feature_is_taken_under_its_normalised_name_or_a_producer_name() -> None:
    normalised = [{"monthly_charges": 9.5, "plan": "pro"}, {"monthly_charges": None, "plan": None}]
    mixed = [{"Monthly Charges ($)": 9.5, "PLAN ": "pro"}, {"monthly_charges": None, "Plan": None}]

    by_name = instances_batch({"instances": normalised}, ALIASED, max_rows=10, reject_unseen=True)
    by_alias = instances_batch({"instances": mixed}, ALIASED, max_rows=10, reject_unseen=True)

    assert by_alias.rows == by_name.rows == 2
    assert by_alias.columns["plan"] == by_name.columns["plan"] == ["pro", None]
    np.testing.assert_array_equal(by_alias.columns["monthly_charges"], [9.5, math.nan])
    tensors = [
        {"name": "Monthly Charges ($)", "shape": [1], "datatype": "FP64", "data": [9.5]},
        {"name": "plan", "shape": [1, 1], "datatype": "BYTES", "data": [["basic"]]},
    ]
    batch, _ = infer_batch({"inputs": tensors}, ALIASED, max_rows=10, reject_unseen=True)
    assert batch.columns["plan"] == ["basic"]


def test_a_feature_named_twice_is_refused_naming_both_names() -> None:
    row = {"monthly_charges": 1.0, "Monthly Charges ($)": 2.0, "plan": "pro"}
    with pytest.raises(RequestError) as refused:
        instances_batch({"instances": [row]}, ALIASED, max_rows=10, reject_unseen=False)
    assert refused.value.code == "duplicate_feature"
    assert refused.value.field == "instances[0].Monthly Charges ($)"
    assert "'monthly_charges'" in refused.value.message

    tensors = [
        {"name": "Plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
        {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
    ]
    with pytest.raises(RequestError) as twice:
        infer_batch({"inputs": tensors}, ALIASED, max_rows=10, reject_unseen=False)
    assert twice.value.code == "duplicate_feature" and twice.value.field == "inputs[1].name"
