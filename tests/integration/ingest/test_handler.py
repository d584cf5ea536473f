"""The ingest Lambda against moto: drops under raw/ become dataset versions or quarantined files,
events delivered twice are ingested once."""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from functions.adapters.datasets import list_dataset_versions
from functions.adapters.storage import ObjectStore
from functions.common.config.loading import deployed_config
from functions.common.layout import quarantine_key, reason_key
from functions.ingest.handler import lambda_handler
from functions.ml.errors import DataValidationError, UnknownDatasetError
from functions.ml.sample_data import BAD_FILE_REASONS, bad_files, churn_frame, encode
from tests.helpers.lambda_context import lambda_context
from tests.helpers.portfolio import CHURN_MODELS, portfolio_config

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

EVENT = Path(__file__).resolve().parents[3] / "events" / "s3_object_created.json"
BAD = bad_files()


Drop = Callable[..., dict[str, Any]]


@pytest.fixture
def drop(cloud: Cloud) -> Drop:
    """`drop(key, content)`: put the object and return its EventBridge event (from events/)."""
    template = json.loads(EVENT.read_text())

    def put(key: str, content: bytes) -> dict[str, Any]:
        response = cloud.s3.put_object(Bucket=cloud.bucket, Key=key, Body=content)
        event = copy.deepcopy(template)
        event["detail"]["bucket"]["name"] = cloud.bucket
        event["detail"]["object"].update(
            {
                "key": key,
                "size": len(content),
                "etag": response["ETag"].strip('"'),
                "version-id": response["VersionId"],
            }
        )
        return event

    return put


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return lambda_handler(event, lambda_context("ingest", memory_mb=2048))


def test_a_good_drop_becomes_curated_parquet_a_manifest_and_a_registry_item(
    cloud: Cloud, drop: Drop, tmp_path: Path
) -> None:
    frame = churn_frame(800, seed=21)
    event = drop("raw/churn/2024-01.csv", encode(frame))

    result = invoke(event)

    version = result["data_version"]
    prefix = f"curated/churn/{version}/"
    assert result["ingested"] is True and result["already_ingested"] is False
    assert result["curated_prefix"] == prefix
    assert result["manifest_key"] == prefix + "manifest.json"
    assert result["source"]["version_id"] == event["detail"]["object"]["version-id"]
    assert cloud.keys("curated/") == [prefix + "data.parquet", prefix + "manifest.json"]

    local = tmp_path / "data.parquet"
    local.write_bytes(cloud.body(prefix + "data.parquet"))
    curated = pq.read_table(local)
    assert (
        curated.num_rows
        == result["rows"]
        == len(frame.drop(columns="customer_id").drop_duplicates())
    )
    assert curated.column_names[-1] == "churned"

    manifest = json.loads(cloud.body(prefix + "manifest.json"))
    assert manifest["data_version"] == version
    assert manifest["source"]["key"] == "raw/churn/2024-01.csv"
    assert manifest["rows"] == {"in": 800, "out": result["rows"]}
    assert manifest["code_version"] == "test1234"
    assert manifest["cleaning"]["duplicate_rows_dropped"] == 800 - result["rows"]

    items = {item["sk"]["S"]: item for item in cloud.items("DATASET#churn")}
    assert json.loads(items.pop("CLASSES")["classes"]["S"]) == ["no", "yes"]
    (item,) = items.values()
    assert item["sk"]["S"] == f"VERSION#{version}"
    assert item["source_key"]["S"] == "raw/churn/2024-01.csv"
    assert item["source_version_id"]["S"] == result["source"]["version_id"]
    assert item["manifest_key"]["S"] == result["manifest_key"]
    assert int(item["rows"]["N"]) == result["rows"]
    assert cloud.keys("quarantine/") == []


@pytest.mark.parametrize("name", sorted(BAD_FILE_REASONS))
def test_a_bad_drop_is_quarantined_with_its_reason_and_fails_the_execution(
    cloud: Cloud, drop: Drop, name: str
) -> None:
    key = f"raw/churn/{name}"
    event = drop(key, BAD[name])
    version_id = event["detail"]["object"]["version-id"]

    with pytest.raises(DataValidationError) as caught:
        invoke(event)

    reason = json.loads(cloud.body(reason_key(key)))
    assert reason["code"] == BAD_FILE_REASONS[name]
    assert reason["message"] == str(caught.value)
    assert reason["error"] == "DataValidationError"
    assert reason["source"] == {
        "bucket": cloud.bucket,
        "key": key,
        "version_id": version_id,
        "etag": event["detail"]["object"]["etag"],
        "size": len(BAD[name]),
    }
    assert reason["quarantined_at"].endswith("Z")
    assert cloud.body(quarantine_key(key)) == BAD[name]
    versions = cloud.s3.list_object_versions(Bucket=cloud.bucket, Prefix=key)["Versions"]
    assert [v["VersionId"] for v in versions] == [version_id]
    assert cloud.body(key) == BAD[name]
    assert cloud.keys("curated/") == []
    assert cloud.items("DATASET#") == []


def test_quarantine_reasons_name_the_columns_and_the_format(cloud: Cloud, drop: Drop) -> None:
    with pytest.raises(DataValidationError):
        invoke(drop("raw/churn/wrong_type.csv", BAD["wrong_type.csv"]))

    reason = json.loads(cloud.body(reason_key("raw/churn/wrong_type.csv")))
    assert reason["columns"] == ["age"]
    assert reason["format"] == "csv"
    assert reason["rows"][0]["value"] == "forty-two"


def test_a_drop_for_another_dataset_is_quarantined_as_unknown(cloud: Cloud, drop: Drop) -> None:
    content = encode(churn_frame(100))

    with pytest.raises(UnknownDatasetError, match="raw/churn/"):
        invoke(drop("raw/sales/2024-01.csv", content))

    reason = json.loads(cloud.body(reason_key("raw/sales/2024-01.csv")))
    assert reason["code"] == "unknown_dataset"
    assert reason["details"]["dataset"] == "sales"
    assert cloud.body(quarantine_key("raw/sales/2024-01.csv")) == content
    assert cloud.keys("curated/") == []
    assert cloud.items("DATASET#") == []


def test_a_drop_the_function_died_on_is_quarantined_unread_with_lambda_s_error(
    cloud: Cloud, drop: Drop
) -> None:
    content = encode(churn_frame(100))
    event = drop("raw/churn/huge.csv", content)
    cause = json.dumps(
        {
            "errorType": "Runtime.OutOfMemory",
            "errorMessage": "RequestId: 1b2c Error: Runtime exited with error: signal: killed",
        }
    )
    # As the pipeline's catch passes it: the state (the S3 event, the execution, the error).
    state = {**event, "execution": {"id": "arn:exec"}, "error": {"Error": "x", "Cause": cause}}

    result = invoke({"crashed": {"event": state, "error": "Runtime.OutOfMemory", "cause": cause}})

    assert result == {
        "quarantined": True,
        "quarantine_key": "quarantine/files/churn/huge.csv",
        "code": "ingest_crashed",
    }
    reason = json.loads(cloud.body("quarantine/reasons/churn/huge.csv.reason.json"))
    assert reason["code"] == "ingest_crashed"
    assert reason["error"] == "IngestCrashedError"
    assert reason["message"] == (
        "The ingest function ran out of its 2,048 MB of memory on this file "
        "(Runtime.OutOfMemory), so it was quarantined unread. Split it into smaller files, or "
        "raise [ingest] memory_mb / timeout_seconds."
    )
    assert reason["details"] == {
        "lambda_error": "Runtime.OutOfMemory",
        "lambda_message": "RequestId: 1b2c Error: Runtime exited with error: signal: killed",
        "memory_mb": 2048,
        "timeout_seconds": 900,
    }
    assert reason["source"]["version_id"] == event["detail"]["object"]["version-id"]
    assert cloud.body("quarantine/files/churn/huge.csv") == content
    assert cloud.body("raw/churn/huge.csv") == content
    assert cloud.keys("curated/") == []
    assert [item["pk"]["S"] for item in cloud.items()] == [], "no idempotency record either"


def test_a_folder_marker_ingests_nothing(cloud: Cloud, drop: Drop) -> None:
    result = invoke(drop("raw/churn/2024/", b""))

    assert result["ingested"] is False
    assert result["reason"] == "folder_marker"
    assert result["source"]["key"] == "raw/churn/2024/"
    assert cloud.keys("curated/") == cloud.keys("quarantine/") == []
    assert cloud.items() == []


def test_a_raw_object_rewritten_by_an_erasure_is_not_ingested_again(
    cloud: Cloud, drop: Drop
) -> None:
    event = drop("raw/churn/2024-02.csv", encode(churn_frame(300, seed=23)))
    version = event["detail"]["object"]["version-id"]
    # `mlops erase` rewrites the object in place and marks the new version.
    body = cloud.body("raw/churn/2024-02.csv", version)
    put = cloud.s3.put_object(
        Bucket=cloud.bucket,
        Key="raw/churn/2024-02.csv",
        Body=body,
        Metadata={"erasure-id": "20261127T000000Z-abcdef"},
    )
    event["detail"]["object"]["version-id"] = put["VersionId"]

    result = invoke(event)

    assert result["ingested"] is False and result["reason"] == "erasure_rewrite"
    assert cloud.keys("curated/") == cloud.keys("quarantine/") == []


def test_the_same_event_twice_is_ingested_once(
    cloud: Cloud, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = drop("raw/churn/2024-01.csv", encode(churn_frame(300)))
    first = invoke(event)

    def no_second_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a redelivered event must not be ingested again")

    monkeypatch.setattr(ObjectStore, "download", no_second_download)
    second = invoke(event)

    assert second == {**first, "already_ingested": True}
    assert len(list_dataset_versions("churn")) == 1
    (record,) = cloud.items("IDEMPOTENCY#")
    assert record["status"]["S"] == "COMPLETED"
    assert record["sk"]["S"].startswith("ingest#")
    expires_in = int(record["expiration"]["N"]) - time.time()
    assert 6.9 * 86_400 < expires_in <= 7 * 86_400


def test_the_same_content_under_another_key_maps_to_the_existing_version(
    cloud: Cloud, drop: Drop
) -> None:
    content = encode(churn_frame(300))
    first = invoke(drop("raw/churn/a.csv", content))

    again = invoke(drop("raw/churn/copy-of-a.csv", content))

    assert again["data_version"] == first["data_version"]
    assert again["already_ingested"] is True
    assert again["source"]["key"] == "raw/churn/a.csv"
    assert [i["sk"]["S"] for i in cloud.items("DATASET#churn")] == [
        "CLASSES",
        f"VERSION#{first['data_version']}",
    ]


def test_appended_drops_are_listed_as_versions_oldest_first(cloud: Cloud, drop: Drop) -> None:
    first = invoke(drop("raw/churn/2024-01.csv", encode(churn_frame(300, seed=1))))
    second = invoke(drop("raw/churn/2024-02.parquet", encode(churn_frame(300, seed=2), "parquet")))

    versions = list_dataset_versions("churn")

    assert [v.data_version for v in versions] == [first["data_version"], second["data_version"]]
    assert versions[0].created_at <= versions[1].created_at
    assert versions[1].source.key == "raw/churn/2024-02.parquet"
    assert len(cloud.keys("curated/churn/")) == 4


def test_a_new_version_of_the_same_key_is_a_new_ingestion(cloud: Cloud, drop: Drop) -> None:
    first = invoke(drop("raw/churn/latest.csv", encode(churn_frame(300, seed=1))))
    second = invoke(drop("raw/churn/latest.csv", encode(churn_frame(300, seed=2))))

    assert first["data_version"] != second["data_version"]
    assert second["already_ingested"] is False
    assert len(list_dataset_versions("churn")) == 2


def test_without_features_in_config_the_first_good_drop_freezes_the_contract(
    cloud: Cloud, drop: Drop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "mlops.toml"
    config.write_text('[dataset]\nname = "churn"\ntarget = "churned"\ntask = "classification"\n')
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    frame = churn_frame(300).drop(columns="customer_id")

    invoke(drop("raw/churn/first.csv", encode(frame)))
    with pytest.raises(DataValidationError, match="support_calls"):
        invoke(drop("raw/churn/second.csv", encode(frame.drop(columns="support_calls"))))

    (contract,) = [i for i in cloud.items("DATASET#churn") if i["sk"]["S"] == "CONTRACT"]
    assert json.loads(contract["contract"]["S"])["features"]["support_calls"] == "numeric"
    assert contract["inferred_from"]["S"] == "raw/churn/first.csv"
    reason = json.loads(cloud.body(reason_key("raw/churn/second.csv")))
    assert reason["code"] == "missing_columns"


def test_metrics_count_rows_and_quarantined_files_by_check(
    cloud: Cloud, drop: Drop, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke(drop("raw/churn/good.csv", encode(churn_frame(300))))
    with pytest.raises(DataValidationError):
        invoke(drop("raw/churn/single_row.csv", BAD["single_row.csv"]))

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    good = next(blob for blob in blobs if "RowsIn" in blob)
    assert good["RowsIn"] == [300.0]
    assert good["RowsOut"][0] < 300.0
    assert good["dataset"] == "churn"
    quarantined = next(blob for blob in blobs if "FilesQuarantined" in blob)
    assert quarantined["FilesQuarantined"] == [1.0]
    assert quarantined["check"] == "too_few_rows"
    assert quarantined["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mlops"


def test_a_url_encoded_key_in_the_event_still_finds_the_object(cloud: Cloud, drop: Drop) -> None:
    event = drop("raw/churn/jan 2024.csv", encode(churn_frame(300)))
    event["detail"]["object"]["key"] = "raw/churn/jan+2024.csv"

    result = invoke(event)

    assert result["source"]["key"] == "raw/churn/jan 2024.csv"
    assert len(list_dataset_versions("churn")) == 1


def _with_nul_after_the_sample(content: bytes, value: bytes) -> tuple[bytes, int, int]:
    """`content` with a NUL byte inside the first `value` past the first 64 KB:
    (the new content, the NUL's byte offset, its line number)."""
    at = content.index(value, 70_000) + value.index(b" ")
    return content[:at] + b"\x00" + content[at + 1 :], at, content.count(b"\n", 0, at) + 1


@pytest.mark.parametrize("name", ["late_nul.csv", "late_nul.csv.gz", "late_nul.jsonl"])
def test_a_nul_byte_past_the_first_64_kb_quarantines_the_drop_naming_its_offset(
    cloud: Cloud, drop: Drop, name: str
) -> None:
    frame = churn_frame(2_000, seed=61)
    text = encode(frame, "jsonl") if name.endswith(".jsonl") else encode(frame)
    content, offset, line = _with_nul_after_the_sample(text, b"two year")
    assert offset > 64 * 1024
    key = f"raw/churn/{name}"

    with pytest.raises(DataValidationError) as caught:
        invoke(drop(key, gzip.compress(content) if name.endswith(".gz") else content))

    reason = json.loads(cloud.body(reason_key(key)))
    assert reason["code"] == "binary_content"
    assert reason["details"]["byte_offset"] == offset
    assert reason["details"]["line"] == line
    assert reason["message"] == str(caught.value)
    assert f"byte {offset:,}" in reason["message"]
    assert cloud.keys("curated/") == []
    assert cloud.items("DATASET#") == []


def _prices_csv(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 200, rows)
    rooms = rng.integers(1, 7, rows)
    price = area * 3.1 + rooms * 12.0 + rng.normal(0, 5, rows)
    frame = pd.DataFrame({"area": area, "rooms": rooms, "price": price})
    return frame.to_csv(index=False).encode()


@pytest.fixture
def portfolio(aws_environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The portfolio config (two datasets) in use."""
    config = tmp_path / "mlops.toml"
    config.write_text(portfolio_config())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    deployed_config.cache_clear()


@pytest.mark.usefixtures("portfolio")
def test_each_drop_is_ingested_with_the_config_of_the_dataset_its_folder_names(
    cloud: Cloud, drop: Drop
) -> None:
    churn = invoke(drop("raw/churn/2024-01.csv", encode(churn_frame(300, seed=3))))
    prices = invoke(drop("raw/prices/2024-01.csv", _prices_csv(200, seed=4)))

    assert (churn["dataset"], churn["models"]) == ("churn", list(CHURN_MODELS))
    assert (prices["dataset"], prices["models"]) == ("prices", ["prices"])
    assert prices["curated_prefix"].startswith("curated/prices/")
    manifest = json.loads(cloud.body(prices["manifest_key"]))
    assert (manifest["target"], manifest["task"]) == ("price", "regression")
    # The prices dataset declares no features: its first drop froze its own contract.
    (contract,) = [i for i in cloud.items("DATASET#prices") if i["sk"]["S"] == "CONTRACT"]
    assert set(json.loads(contract["contract"]["S"])["features"]) == {"area", "rooms"}
    # A replay names the models of the config in use too.
    again = invoke(drop("raw/prices/2024-01-copy.csv", _prices_csv(200, seed=4)))
    assert again["already_ingested"] is True and again["models"] == ["prices"]


@pytest.mark.usefixtures("portfolio")
def test_a_drop_under_no_configured_dataset_names_every_dataset_folder(
    cloud: Cloud, drop: Drop
) -> None:
    content = encode(churn_frame(100))

    with pytest.raises(UnknownDatasetError, match="only drops under raw/churn/ or raw/prices/"):
        invoke(drop("raw/sales/2024-01.csv", content))

    reason = json.loads(cloud.body(reason_key("raw/sales/2024-01.csv")))
    assert reason["code"] == "unknown_dataset"
    assert reason["details"]["expected_prefixes"] == ["raw/churn/", "raw/prices/"]
    assert cloud.body(quarantine_key("raw/sales/2024-01.csv")) == content
    assert cloud.keys("curated/") == []
