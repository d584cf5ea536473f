"""`mlops erase` against a moto server reached as the local cloud: a subject's rows leave every
version of capture, feedback, raw and curated objects; everyone else's rows stay."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from typer.testing import CliRunner

from functions.adapters.datasets import DatasetRegistry
from functions.common.config.loading import load_config
from functions.common.contracts import DatasetRef, SourceObject
from functions.ml.ingestion import build_manifest, ingest_file
from functions.ml.sample_data import churn_frame, display_headers, encode
from functions.ml.schema import contract_from_config
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table

REPO = Path(__file__).resolve().parents[3]
BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
ROLE = "arn:aws:iam::123456789012:role/mlops-dev-erasure"
SUBJECT = "C000000005"
RAW_KEY = "raw/churn/drop.csv"
CAPTURE_KEY = "capture/dt=2026-01-01/capture-1"
LABELS_KEY = "feedback/labels.csv"
SHADOW_KEY = "shadow/churn/dt=2026-01-01/capture-1.jsonl"
REQUEST, OTHER_REQUEST = "req-subject", "req-other"


@dataclass
class Lake:
    s3: Any
    registry: DatasetRegistry
    raw_versions: list[str]
    curated_prefix: str
    data_version: str
    curated_rows: int

    def body(self, key: str, version_id: str | None = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key, **extra)["Body"].read())

    def versions(self, prefix: str = "") -> list[tuple[str, str]]:
        listed = self.s3.list_object_versions(Bucket=BUCKET, Prefix=prefix)
        return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(self.body(key)) for key in self.keys("audit/erasure/")]

    def put(self, key: str, body: bytes) -> str:
        return str(self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"])


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _capture_line(request_id: str, row: int, customer: str) -> bytes:
    record = {
        "request_id": request_id,
        "row": row,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "model_name": "churn",
        "model_version": 1,
        "features": {"age": 40 + row, "contract": "one year", "note": customer},
        "prediction": "no",
        "probabilities": [0.8, 0.2],
    }
    return json.dumps(record).encode() + b"\n"


def _shadow_line(request_id: str, row: int) -> bytes:
    """Alias shadow's record of one captured row (its columns are the model's inputs)."""
    record = {
        "record": "capture",
        "format_version": 2,
        "request_id": request_id,
        "model_name": "churn",
        "model_version": 2,
        "alias": "shadow",
        "first_row": row,
        "rows": 1,
        "columns": {"age": [40 + row], "contract": ["one year"]},
        "predictions": ["yes"],
        "error": None,
    }
    return json.dumps(record).encode() + b"\n"


@pytest.fixture
def lake(local_state: Any, tmp_path: Path) -> Lake:
    """Raw drop with 3 versions (the first and the current one hold the subject), the dataset
    version ingested from the current one (manifest and registry item), capture of the
    subject's request, API feedback for it and a user's CSV of labels."""
    local_state.write_outputs(
        {"DataBucketName": BUCKET, "RegistryTableName": TABLE, "ErasureRoleArn": ROLE}
    )
    endpoint = local_state.endpoint
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    create_data_bucket(s3, BUCKET)
    create_registry_table(dynamodb, TABLE)
    lake = Lake(s3, DatasetRegistry(TABLE, dynamodb), [], "", "", 0)
    with_subject = display_headers(churn_frame(200, seed=1, duplicate_share=0))
    without_subject = display_headers(churn_frame(200, seed=2, first_id=1000, duplicate_share=0))
    current = display_headers(churn_frame(300, seed=3, duplicate_share=0))
    for frame in (with_subject, without_subject, current):
        lake.raw_versions.append(lake.put(RAW_KEY, encode(frame, "csv")))
    dataset = load_config(REPO / "mlops.toml").dataset
    local_copy = tmp_path / "drop.csv"
    local_copy.write_bytes(encode(current, "csv"))
    out = tmp_path / "curated"
    out.mkdir()
    result = ingest_file(
        local_copy,
        name=RAW_KEY,
        dataset=dataset,
        contract=contract_from_config(dataset),
        out_dir=out,
    )
    prefix = f"curated/churn/{result.data_version}/"
    source = SourceObject(bucket=BUCKET, key=RAW_KEY, version_id=lake.raw_versions[-1])
    manifest = build_manifest(
        result,
        dataset="churn",
        source=source.model_dump(mode="json"),
        curated_prefix=prefix,
        created_at="2026-01-01T00:00:00.000Z",
        code_version="test",
    )
    lake.put(prefix + "data.parquet", result.data_path.read_bytes())
    lake.put(prefix + "manifest.json", json.dumps(manifest).encode())
    lake.registry.register_version(
        DatasetRef(
            dataset="churn",
            data_version=result.data_version,
            manifest_key=prefix + "manifest.json",
            curated_prefix=prefix,
            rows=result.rows_out,
            source=source,
            created_at="2026-01-01T00:00:00.000Z",
        ),
        code_version="test",
    )
    lake.curated_prefix, lake.data_version = prefix, result.data_version
    lake.curated_rows = result.rows_out
    lake.put(
        CAPTURE_KEY,
        _capture_line(REQUEST, 0, "a")
        + _capture_line(OTHER_REQUEST, 0, "b")
        + _capture_line(REQUEST, 1, "c"),
    )
    lake.put(
        SHADOW_KEY,
        _shadow_line(REQUEST, 0) + _shadow_line(OTHER_REQUEST, 0) + _shadow_line(REQUEST, 1),
    )
    for request_id, row in ((REQUEST, 0), (REQUEST, 1), (OTHER_REQUEST, 0)):
        item = {"request_id": request_id, "row": row, "label": "yes", "features": None}
        lake.put(f"feedback/dt=2026-01-01/{request_id}-{row}.json", json.dumps(item).encode())
    labels = (
        "request_id,row,label,customer_id\n"
        f"{REQUEST},0,yes,\n{OTHER_REQUEST},0,no,C000000777\nreq-3,0,no,{SUBJECT}\n"
    )
    lake.put(LABELS_KEY, labels.encode())
    return lake


def _rows(body: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)


def _curated_rows(lake: Lake) -> int:
    return len(pd.read_parquet(io.BytesIO(lake.body(lake.curated_prefix + "data.parquet"))))


def test_erase_subject_removes_its_rows_from_every_version_and_keeps_the_rest(lake: Lake) -> None:
    result = mlops("erase", "--subject", "Customer ID = C000000005", "--reason", "ticket 1")

    assert result.exit_code == 0, result.output
    assert "erased" in result.output and RAW_KEY in result.output
    for key, version in lake.versions():
        if not key.startswith("audit/"):
            assert SUBJECT.encode() not in lake.body(key, version), f"{key} {version}"
    raw = _rows(lake.body(RAW_KEY))
    assert len(raw) == 299 and SUBJECT not in set(raw["Customer ID"])
    assert list(raw.columns)[0] == "Customer ID"
    remaining = [v for k, v in lake.versions("raw/")]
    assert lake.raw_versions[1] in remaining, "the version without the subject stays"
    assert lake.raw_versions[0] not in remaining and lake.raw_versions[2] not in remaining
    assert len(remaining) == 2
    # The curated row is found by its fingerprint (cleaning dropped customer_id).
    assert _curated_rows(lake) == lake.curated_rows - 1
    assert len(lake.versions(lake.curated_prefix + "data.parquet")) == 1
    manifest = json.loads(lake.body(lake.curated_prefix + "manifest.json"))
    assert manifest["rows"]["out"] == lake.curated_rows - 1
    assert manifest["data_version"] == lake.data_version
    assert [e["rows_removed"] for e in manifest["erasures"]] == [1]
    version = lake.registry.get_version("churn", lake.data_version)
    assert version is not None and version.rows == lake.curated_rows - 1
    labels = _rows(lake.body(LABELS_KEY))
    assert list(labels["request_id"]) == [REQUEST, OTHER_REQUEST]
    assert len(lake.versions(CAPTURE_KEY)) == 1, "capture holds no customer_id: untouched"
    (audit,) = lake.audit()
    text = json.dumps(audit)
    assert SUBJECT not in text
    assert audit["subject"]["column"] == "customer_id"
    assert audit["subject"]["hash"].startswith("sha256:") and audit["verified"] is True
    assert audit["reason"] == "ticket 1" and "assumed-role" in audit["acting_as"]
    assert audit["who"].startswith("arn:aws:")
    by_key = {k["key"]: k for k in audit["keys"]}
    assert by_key[RAW_KEY]["action"] == "rewritten" and by_key[RAW_KEY]["rows_removed"] == 1
    assert len(by_key[RAW_KEY]["versions_deleted"]) == 2
    assert by_key[LABELS_KEY]["rows_kept"] == 2


def test_erase_request_id_removes_its_capture_and_feedback(lake: Lake) -> None:
    result = mlops("erase", "--request-id", REQUEST)

    assert result.exit_code == 0, result.output
    capture = lake.body(CAPTURE_KEY).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in capture] == [OTHER_REQUEST]
    assert len(lake.versions(CAPTURE_KEY)) == 1
    shadow = lake.body(SHADOW_KEY).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in shadow] == [OTHER_REQUEST]
    assert len(lake.versions(SHADOW_KEY)) == 1
    feedback = lake.keys("feedback/dt=")
    assert feedback == [f"feedback/dt=2026-01-01/{OTHER_REQUEST}-0.json"]
    listed = lake.s3.list_object_versions(Bucket=BUCKET, Prefix=f"feedback/dt=2026-01-01/{REQUEST}")
    assert not listed.get("Versions") and not listed.get("DeleteMarkers"), "no trace of the key"
    labels = _rows(lake.body(LABELS_KEY))
    assert list(labels["request_id"]) == [OTHER_REQUEST, "req-3"]
    for key, version in lake.versions():
        if not key.startswith("audit/"):
            assert REQUEST.encode() not in lake.body(key, version), key
    assert len(lake.versions("raw/")) == 3, "raw drops hold no request ids: untouched"
    (audit,) = lake.audit()
    assert REQUEST not in json.dumps(audit) and audit["subject"]["column"] == "request_id"
    actions = {k["key"]: k["action"] for k in audit["keys"]}
    assert actions["feedback/dt=2026-01-01/<subject>-0.json"] == "deleted"
    assert actions[CAPTURE_KEY] == "rewritten"


def test_shadow_records_of_the_subjects_predictions_go_with_them(lake: Lake) -> None:
    """The subject's capture (found by a feature) links its prediction, and the shadow's
    record of that prediction goes too; the shadow's other records stay."""
    result = mlops("erase", "--subject", "note=a")

    assert result.exit_code == 0, result.output
    shadow = [json.loads(line) for line in lake.body(SHADOW_KEY).decode().splitlines()]
    assert [(r["request_id"], r["first_row"]) for r in shadow] == [(OTHER_REQUEST, 0), (REQUEST, 1)]
    assert len(lake.versions(SHADOW_KEY)) == 1
    (audit,) = lake.audit()
    (shadowed,) = [k for k in audit["keys"] if k["area"] == "shadow"]
    assert (shadowed["action"], shadowed["rows_removed"], shadowed["rows_kept"]) == (
        "rewritten",
        1,
        2,
    )


def test_dry_run_lists_what_would_change_and_writes_nothing(lake: Lake) -> None:
    before = lake.versions()

    result = mlops("erase", "--subject", f"customer_id={SUBJECT}", "--dry-run")

    assert result.exit_code == 0, result.output
    assert RAW_KEY in result.output and LABELS_KEY in result.output
    assert "dry run: nothing was written" in result.output
    assert lake.versions() == before
    assert not lake.keys("audit/")


def test_unknown_subject_erases_nothing_and_is_audited(lake: Lake) -> None:
    before = lake.versions()

    result = mlops("erase", "--subject", "customer_id=C999999999")

    assert result.exit_code == 0, result.output
    assert "nothing to erase" in result.output
    assert [v for v in lake.versions() if not v[0].startswith("audit/")] == before
    (audit,) = lake.audit()
    assert audit["found"] is False and audit["keys"] == [] and "C999999999" not in json.dumps(audit)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--subject", "customer_id"], "must be COLUMN=VALUE"),
        (["--subject", "customer_id="], "empty value"),
        ([], "exactly one of --request-id"),
        (["--subject", "a=b", "--request-id", "r"], "exactly one of --request-id"),
        (["--subject", "customer_id=C1", "--reason", "asked by C1"], "must not contain"),
    ],
)
def test_bad_options_exit_2_naming_the_problem(lake: Lake, args: list[str], problem: str) -> None:
    result = mlops("erase", *args)

    assert result.exit_code == 2
    assert problem in result.output
    assert not lake.keys("audit/")
