"""The dataset contract: from config, inferred, and the header/type/class checks."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from functions.common.config.dataset import DatasetConfig, FeatureType, Task
from functions.ml.errors import DataValidationError
from functions.ml.schema import (
    MAX_CLASSES,
    DatasetContract,
    check_classes,
    check_declared_types,
    contract_from_config,
    header_mapping,
    infer_contract,
)

N, C = FeatureType.NUMERIC, FeatureType.CATEGORICAL


def _dataset(**overrides: object) -> DatasetConfig:
    values: dict[str, object] = {"name": "churn", "target": "churned", "task": "classification"}
    return DatasetConfig.model_validate(values | overrides)


def test_the_config_contract_keeps_feature_order_and_types_the_target_by_task() -> None:
    contract = contract_from_config(_dataset(features={"tenure": "numeric", "plan": "categorical"}))

    assert contract is not None
    assert list(contract.column_types.items()) == [("tenure", N), ("plan", C), ("churned", C)]
    regression = DatasetContract(target="amount", task=Task.REGRESSION, features={"x": N})
    assert regression.column_types["amount"] is N


def test_without_features_in_config_the_contract_is_left_to_inference() -> None:
    assert contract_from_config(_dataset()) is None


def test_the_contract_round_trips_through_json_and_its_fingerprint_sees_order() -> None:
    contract = DatasetContract(target="y", task=Task.CLASSIFICATION, features={"a": N, "b": C})
    reordered = DatasetContract(target="y", task=Task.CLASSIFICATION, features={"b": C, "a": N})

    assert DatasetContract.from_json(contract.to_json()) == contract
    assert contract.fingerprint() != reordered.fingerprint()


def test_inference_types_mostly_numeric_text_as_numeric_and_the_rest_categorical() -> None:
    sample = pd.DataFrame(
        {
            "age": ["41", "35", "NA", "52"] * 10,
            "mostly": ["1"] * 39 + ["oops"],
            "plan": ["basic", "pro", "basic", "1"] * 10,
            "empty": [""] * 40,
            "churned": ["yes", "no"] * 20,
        }
    )

    contract = infer_contract(sample, _dataset())

    assert contract.features == {"age": N, "mostly": N, "plan": C, "empty": C}
    assert contract.target == "churned"


def test_declared_parquet_types_decide_inference() -> None:
    sample = pd.DataFrame({"code": ["1", "2"], "churned": ["y", "n"]})

    contract = infer_contract(sample, _dataset(), declared={"code": pa.string()})

    assert contract.features == {"code": C}


def test_a_missing_target_is_named_with_the_columns_that_are_there() -> None:
    with pytest.raises(DataValidationError) as caught:
        header_mapping(["Age", "Plan"], "churned")

    assert caught.value.code.value == "missing_target"
    assert "age, plan" in caught.value.message


def test_declared_types_that_contradict_the_contract_are_a_schema_mismatch() -> None:
    contract = DatasetContract(
        target="churned", task=Task.CLASSIFICATION, features={"age": N, "plan": C}
    )
    schema = pa.schema([("age", pa.string()), ("plan", pa.int32()), ("churned", pa.bool_())])

    with pytest.raises(DataValidationError) as caught:
        check_declared_types(schema, {n: n for n in schema.names}, contract)

    assert caught.value.code.value == "schema_mismatch"
    assert caught.value.columns == ["age"]
    assert caught.value.details["declared"] == {"age": "string"}


def test_compatible_declared_types_pass() -> None:
    contract = DatasetContract(target="churned", task=Task.CLASSIFICATION, features={"age": N})
    schema = pa.schema([("age", pa.int64()), ("churned", pa.dictionary(pa.int8(), pa.string()))])

    check_declared_types(schema, {n: n for n in schema.names}, contract)


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ({"no": 200}, "single_class"),
        ({"no": 198, "yes": 1}, "too_few_class_rows"),
        ({str(i): 5 for i in range(MAX_CLASSES + 1)}, "too_many_classes"),
    ],
)
def test_classification_needs_two_classes_each_with_enough_rows(
    counts: dict[str, int], code: str
) -> None:
    with pytest.raises(DataValidationError) as caught:
        check_classes("churned", counts, min_class_rows=2)

    assert caught.value.code.value == code
    assert caught.value.columns == ["churned"]


def test_two_classes_with_enough_rows_pass() -> None:
    check_classes("churned", {"no": 2, "yes": 2}, min_class_rows=2)


def test_a_missing_target_names_the_columns_but_shortens_a_huge_header() -> None:
    from functions.ml.errors import DataValidationError
    from functions.ml.schema import header_mapping

    header = ["age", "x" * 9_000] + [f"c{i}" for i in range(60)]
    try:
        header_mapping(header, "churned")
    except DataValidationError as error:
        message = str(error)
    else:
        raise AssertionError("a header without the target must be refused")

    assert "'churned' is missing" in message and "age" in message
    assert "... (9000 chars)" in message and "and 12 more" in message
    assert len(message) < 1_500
