"""The pure ingestion: a dropped file in, curated Parquet and a report out, or a precise reason."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.common.config.dataset import DatasetConfig, FeatureType, Task
from functions.common.layout import DATA_FILE
from functions.ml.errors import DataValidationError
from functions.ml.ingestion import IngestionResult, build_manifest
from functions.ml.sample_data import (
    BAD_FILE_REASONS,
    bad_files,
    churn_frame,
    display_headers,
    encode,
)
from functions.ml.schema import DatasetContract

Ingest = Callable[..., IngestionResult]
BAD = bad_files()


def _rejected(ingest: Ingest, name: str, content: bytes, **kwargs: object) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        ingest(name, content, **kwargs)
    return caught.value


@pytest.mark.parametrize("name", sorted(BAD_FILE_REASONS))
def test_each_bad_drop_is_rejected_with_its_specific_reason(ingest: Ingest, name: str) -> None:
    error = _rejected(ingest, f"raw/churn/{name}", BAD[name])

    assert error.code.value == BAD_FILE_REASONS[name]
    assert error.message.endswith(".")


def test_wrong_type_names_the_column_and_shows_offending_rows(ingest: Ingest) -> None:
    error = _rejected(ingest, "wrong_type.csv", BAD["wrong_type.csv"])

    assert error.columns == ["age"]
    assert error.rows[0]["value"] == "forty-two"
    assert error.file_format == "csv"


@pytest.mark.parametrize("file_format", ["csv", "csv.gz", "parquet", "jsonl"])
def test_a_good_drop_becomes_typed_deduplicated_curated_parquet(
    ingest: Ingest, churn_contract: DatasetContract, file_format: str
) -> None:
    frame = churn_frame(600, seed=5)

    result = ingest(f"drop.{file_format}", encode(frame, file_format))

    curated = pq.read_table(result.data_path)
    assert curated.column_names == list(churn_contract.column_types)
    assert str(curated.schema.field("age").type) == "double"
    assert str(curated.schema.field("contract").type) == "string"
    expected_rows = len(frame.drop(columns="customer_id").drop_duplicates())
    assert curated.num_rows == result.rows_out == expected_rows
    assert result.summary.duplicate_rows_dropped == len(frame) - expected_rows > 0
    assert result.summary.columns_dropped == ["customer_id"]
    data = curated.to_pandas()
    assert not data.duplicated().any()
    assert set(data["churned"]) == {"yes", "no"}
    assert data["region"].isna().any()


def test_the_same_rows_get_the_same_version_in_every_format(ingest: Ingest) -> None:
    frame = churn_frame(400, seed=11)

    drops = {f"drop.{fmt}": encode(frame, fmt) for fmt in ("csv", "csv.gz", "parquet", "jsonl")}
    drops["drop.jsonl.gz"] = gzip.compress(drops["drop.jsonl"])

    versions = {ingest(name, content).data_version for name, content in drops.items()}

    assert len(versions) == 1


def test_different_rows_get_a_different_version(ingest: Ingest) -> None:
    first = ingest("a.csv", encode(churn_frame(300, seed=1))).data_version
    second = ingest("b.csv", encode(churn_frame(300, seed=2))).data_version

    assert first != second
    assert len(first) == 16


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=1, max_value=400))
def test_the_version_and_the_rows_do_not_depend_on_the_chunk_size(
    ingest: Ingest, chunk_rows: int
) -> None:
    content = encode(churn_frame(300, seed=9, duplicate_share=0.1))
    whole = ingest("a.csv", content, chunk_rows=10_000)

    chunked = ingest("a.csv", content, chunk_rows=chunk_rows)

    assert chunked.data_version == whole.data_version
    assert chunked.summary == whole.summary
    pd.testing.assert_frame_equal(
        pq.read_table(chunked.data_path).to_pandas(), pq.read_table(whole.data_path).to_pandas()
    )


def test_spreadsheet_style_headers_are_normalised_to_the_contract(ingest: Ingest) -> None:
    frame = churn_frame(300, seed=4)

    result = ingest("drop.csv", encode(display_headers(frame)))

    assert result.summary.columns_renamed["Monthly Charges ($)"] == "monthly_charges"
    assert result.data_version == ingest("plain.csv", encode(frame)).data_version


def test_without_a_contract_one_is_inferred_from_the_drop(ingest: Ingest) -> None:
    result = ingest("drop.csv", encode(churn_frame(300).drop(columns="customer_id")), infer=True)

    assert result.contract_inferred
    assert result.contract.features == {
        "age": FeatureType.NUMERIC,
        "tenure_months": FeatureType.NUMERIC,
        "monthly_charges": FeatureType.NUMERIC,
        "total_charges": FeatureType.NUMERIC,
        "support_calls": FeatureType.NUMERIC,
        "contract": FeatureType.CATEGORICAL,
        "payment_method": FeatureType.CATEGORICAL,
        "internet_service": FeatureType.CATEGORICAL,
        "region": FeatureType.CATEGORICAL,
    }


def test_a_missing_feature_column_is_named(ingest: Ingest) -> None:
    content = encode(churn_frame(300).drop(columns=["region", "age"]))

    error = _rejected(ingest, "drop.csv", content)

    assert error.code.value == "missing_columns"
    assert error.columns == ["age", "region"]


def test_a_mostly_empty_feature_fails_the_null_limit(ingest: Ingest) -> None:
    frame = churn_frame(300)
    frame.loc[frame.index[:200], "contract"] = None

    error = _rejected(ingest, "drop.csv", encode(frame))

    assert error.code.value == "too_many_nulls"
    assert error.columns == ["contract"]


def test_a_few_rows_without_target_are_dropped_and_counted(ingest: Ingest) -> None:
    frame = churn_frame(300, duplicate_share=0.0)
    frame.loc[frame.index[:7], "churned"] = "N/A"

    result = ingest("drop.csv", encode(frame))

    assert result.summary.rows_missing_target_dropped == 7
    assert result.rows_out == 293


def test_a_few_ragged_rows_are_dropped_but_many_reject_the_file(ingest: Ingest) -> None:
    lines = encode(churn_frame(300, duplicate_share=0.0)).decode().splitlines()
    few = "\n".join(lines + ["1,2,3"]).encode()
    many = "\n".join(lines[:1] + [line + ",extra" for line in lines[1:60]] + lines[60:]).encode()

    assert ingest("few.csv", few).summary.malformed_rows_dropped == 1
    assert _rejected(ingest, "many.csv", many).code.value == "malformed_rows"


def _regression(**overrides: object) -> tuple[DatasetConfig, DatasetContract]:
    dataset = DatasetConfig.model_validate(
        {"name": "bills", "target": "total_charges", "task": "regression", "min_rows": 20}
        | overrides
    )
    contract = DatasetContract(
        target="total_charges",
        task=Task.REGRESSION,
        features={"tenure_months": FeatureType.NUMERIC, "contract": FeatureType.CATEGORICAL},
    )
    return dataset, contract


def test_a_regression_target_must_vary(ingest: Ingest) -> None:
    dataset, contract = _regression()
    frame = churn_frame(100).assign(total_charges=42.0)

    error = _rejected(ingest, "drop.csv", encode(frame), dataset=dataset, contract=contract)

    assert error.code.value == "constant_target"


def test_a_regression_target_must_be_numeric(ingest: Ingest) -> None:
    dataset, contract = _regression()
    frame = churn_frame(100).assign(total_charges="lots")

    error = _rejected(ingest, "drop.csv", encode(frame), dataset=dataset, contract=contract)

    assert error.code.value == "wrong_type"
    assert error.columns == ["total_charges"]


def test_the_manifest_describes_the_version(ingest: Ingest) -> None:
    result = ingest("drop.csv", encode(churn_frame(300)))

    manifest = build_manifest(
        result,
        dataset="churn",
        source={"bucket": "b", "key": "raw/churn/drop.csv", "version_id": "v1"},
        curated_prefix=f"curated/churn/{result.data_version}/",
        created_at="2024-01-01T00:00:00Z",
        code_version="abc123",
    )

    assert manifest["data_version"] == result.data_version
    assert manifest["files"] == [f"curated/churn/{result.data_version}/{DATA_FILE}"]
    assert manifest["schema"]["age"] == "numeric"
    assert manifest["schema"]["churned"] == "categorical"
    assert manifest["rows"] == {"in": 300, "out": result.rows_out}
    assert manifest["cleaning"]["columns_dropped"] == ["customer_id"]
    assert manifest["profile"]["age"]["kind"] == "numeric"
    assert {v["value"] for v in manifest["profile"]["churned"]["top_values"]} == {"yes", "no"}
    assert manifest["source"]["version_id"] == "v1"
