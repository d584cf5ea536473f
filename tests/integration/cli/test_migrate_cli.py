"""`mlops migrate` against a moto server reached as the local cloud, on a bucket an older release
left: quarantined copies and reason records at the pre-issue-16 keys (`quarantine/<dataset>/`).
A dry run lists them and changes nothing; --apply moves them where `mlops drops` and erasure
look, with an audit record; a rerun finds nothing; a run that fails after its first batch
resumes from its checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.items import attributes
from functions.adapters.storage import ObjectStore, read_quarantine_reason
from functions.adapters.versions import ObjectVersions
from functions.common import formats
from functions.common.errors import StorageError
from functions.common.layout import migration_checkpoint_key
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "formats"
BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
FILES = ("a.csv", "b.jsonl", "c.csv")
KEPT = "quarantine/files/churn/new.csv"


@dataclass
class OldLake:
    s3: Any

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def body(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def json(self, key: str) -> Any:
        return json.loads(self.body(key))

    def versions(self, key: str) -> list[str]:
        listed = self.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]


def _old_keys() -> list[str]:
    return sorted(
        key
        for name in FILES
        for key in (f"quarantine/churn/{name}", f"quarantine/churn/{name}.reason.json")
    )


@pytest.fixture
def lake(local_state: Any) -> OldLake:
    """Three quarantined drops as a release before issue 16 left them (copy and reason side by
    side under quarantine/churn/), one quarantined at today's keys, and version 1 registry
    items (no format_version)."""
    local_state.write_outputs({"DataBucketName": BUCKET, "RegistryTableName": TABLE})
    s3 = boto3.client("s3", endpoint_url=local_state.endpoint, region_name="us-east-1")
    dynamodb = boto3.client("dynamodb", endpoint_url=local_state.endpoint, region_name="us-east-1")
    create_data_bucket(s3, BUCKET)
    create_registry_table(dynamodb, TABLE)
    reason = json.loads((FIXTURES / formats.QUARANTINE_REASON / "v1.json").read_text())
    for name in FILES:
        old = f"quarantine/churn/{name}"
        s3.put_object(Bucket=BUCKET, Key=old, Body=f"bad bytes of {name}\x00".encode())
        document = {
            **reason,
            "source": {**reason["source"], "key": f"raw/churn/{name}", "version_id": None},
            "quarantine_key": old,
        }
        s3.put_object(Bucket=BUCKET, Key=f"{old}.reason.json", Body=json.dumps(document).encode())
    s3.put_object(Bucket=BUCKET, Key=KEPT, Body=b"quarantined by today's release")
    for name in (formats.RUN_ITEM, formats.MODEL_VERSION_ITEM):
        item = json.loads((FIXTURES / name / "v1.json").read_text())
        dynamodb.put_item(TableName=TABLE, Item=attributes(item))
    return OldLake(s3)


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _migrate(*args: str) -> dict[str, Any]:
    result = mlops("migrate", "--local", "--json", *args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _of(report: dict[str, Any], migration: str) -> dict[str, Any]:
    [found] = [m for m in report["migrations"] if m["migration"] == migration]
    return found


def test_a_dry_run_lists_the_old_quarantine_keys_and_changes_nothing(lake: OldLake) -> None:
    before = lake.keys()

    report = _migrate()

    planned = _of(report, "quarantine-layout")
    assert report["dry_run"] is True and planned["migration"] == "quarantine-layout"
    assert planned["found"] == 6
    assert planned["samples"][0] == {
        "from": "quarantine/churn/a.csv",
        "to": "quarantine/files/churn/a.csv",
    }
    assert {
        "from": "quarantine/churn/a.csv.reason.json",
        "to": "quarantine/reasons/churn/a.csv.reason.json",
    } in planned["samples"]
    assert {
        (row["format"], row["version"], row["items"], row["read_as_is"])
        for row in report["formats"]
    } == {
        (formats.RUN_ITEM, 1, 1, True),
        (formats.MODEL_VERSION_ITEM, 1, 1, True),
    }
    assert lake.keys() == before

    text = mlops("migrate", "--local").stdout
    assert "quarantine-layout: 6 objects to move" in text
    assert "run-item: 1 at version 1, read as is" in text
    assert "dry run: nothing changed" in text


def test_apply_moves_them_where_drops_and_erasure_look_and_a_rerun_is_a_no_op(
    lake: OldLake,
) -> None:
    bytes_before = {key: lake.body(key) for key in _old_keys() if not key.endswith(".json")}

    report = _migrate("--apply")

    done = _of(report, "quarantine-layout")
    assert (done["found"], done["moved"], done["conflicts"]) == (6, 6, [])
    assert lake.keys("quarantine/") == sorted(
        [KEPT]
        + [f"quarantine/files/churn/{name}" for name in FILES]
        + [f"quarantine/reasons/churn/{name}.reason.json" for name in FILES]
    )
    for old, body in bytes_before.items():
        assert lake.body(old.replace("quarantine/", "quarantine/files/", 1)) == body
        assert lake.versions(old), "the old key's versions remain in the versioned bucket"
    found = read_quarantine_reason(ObjectStore(lake.s3), BUCKET, "raw/churn/a.csv")
    assert found is not None and found["quarantine_key"] == "quarantine/files/churn/a.csv"
    assert found[formats.FIELD] == 1

    audit = lake.json(report["audit"])
    assert audit["status"] == "completed" and audit["who"].startswith("arn:aws:")
    assert audit["release"] and audit[formats.FIELD] == 1
    assert {(c["from"], c["to"]) for c in audit["changes"]} == {
        (key, key.replace("quarantine/churn/", "quarantine/files/churn/"))
        if not key.endswith(".reason.json")
        else (key, key.replace("quarantine/churn/", "quarantine/reasons/churn/"))
        for key in _old_keys()
    }
    assert all(change["at"] for change in audit["changes"])

    again = _migrate("--apply")
    assert _of(again, "quarantine-layout")["found"] == 0 and again["changes"] == []


def test_an_interrupted_run_resumes_from_its_checkpoint(
    lake: OldLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = ObjectVersions.copy
    calls: list[str] = []

    def failing_copy(self: ObjectVersions, bucket: str, key: str, *args: Any, **kw: Any) -> None:
        calls.append(key)
        if len(calls) > 1:
            raise StorageError(f"copy s3://{bucket}/{key} failed: injected")
        copy(self, bucket, key, *args, **kw)

    monkeypatch.setattr(ObjectVersions, "copy", failing_copy)
    interrupted = mlops("migrate", "--local", "--apply", "--batch-size", "2")
    assert interrupted.exit_code == 1
    assert "injected" in interrupted.output and "Traceback" not in interrupted.output
    checkpoint = lake.json(migration_checkpoint_key("quarantine-layout"))
    assert checkpoint["moved"] == 2 and checkpoint["finished"] is False
    assert checkpoint["last_key"] == "quarantine/churn/a.csv.reason.json"
    [audit_key] = lake.keys("migrations/audit/")
    audit = lake.json(audit_key)
    assert audit["status"] == "interrupted" and "injected" in audit["error"]
    assert [c["from"] for c in audit["changes"]] == [
        "quarantine/churn/a.csv",
        "quarantine/churn/a.csv.reason.json",
    ]

    monkeypatch.setattr(ObjectVersions, "copy", copy)
    resumed = _migrate("--apply", "--batch-size", "2")

    done = _of(resumed, "quarantine-layout")
    assert done["resumed_run"] == audit["run_id"]
    assert done["resumed_after"] == "quarantine/churn/a.csv.reason.json"
    assert (done["found"], done["moved"]) == (4, 4)
    assert lake.keys("quarantine/churn/") == []
    final = lake.json(migration_checkpoint_key("quarantine-layout"))
    assert final["finished"] is True and final["moved"] == 6


OLD_JOB = "scores-2024-01"


def test_old_batch_jobs_move_under_the_default_model_and_batch_show_reads_them(
    lake: OldLake,
) -> None:
    """A batch job as a release before model folders left it: its inputs and marker under
    batch/in/<job>/, its outputs and version 1 manifest under batch/out/<job>/."""
    manifest = json.loads((FIXTURES / formats.BATCH_MANIFEST / "v1.json").read_text())
    old = {
        f"batch/in/{OLD_JOB}/customers.csv": b"age,contract\n52,two year\n",
        f"batch/in/{OLD_JOB}/_START": b"",
        f"batch/out/{OLD_JOB}/manifest.json": json.dumps(manifest).encode(),
        f"batch/out/{OLD_JOB}/customers-0-500.parquet": b"PAR1 scored rows",
        f"batch/out/{OLD_JOB}/_plan/plan.json": b'{"job": "scores-2024-01"}',
    }
    for key, body in old.items():
        lake.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    today = "batch/in/churn/june/customers.csv"
    lake.s3.put_object(Bucket=BUCKET, Key=today, Body=b"a job of today's layout")

    planned = _of(_migrate(), "batch-layout")
    assert planned["found"] == 4  # the marker stays: its copy would start the job again
    done = _of(_migrate("--apply"), "batch-layout")

    assert (done["moved"], done["conflicts"]) == (4, [])
    assert lake.keys("batch/") == sorted(
        [
            f"batch/in/{OLD_JOB}/_START",
            f"batch/in/churn/{OLD_JOB}/customers.csv",
            f"batch/out/churn/{OLD_JOB}/_plan/plan.json",
            f"batch/out/churn/{OLD_JOB}/customers-0-500.parquet",
            f"batch/out/churn/{OLD_JOB}/manifest.json",
            today,
        ]
    )
    assert (
        lake.body(f"batch/in/churn/{OLD_JOB}/customers.csv")
        == old[f"batch/in/{OLD_JOB}/customers.csv"]
    )
    moved = lake.json(f"batch/out/churn/{OLD_JOB}/manifest.json")
    assert moved[formats.FIELD] == 2
    assert moved["per_file"][0]["key"] == f"batch/in/churn/{OLD_JOB}/customers.csv"
    assert _of(_migrate("--apply"), "batch-layout")["found"] == 0

    shown = mlops("batch", "show", OLD_JOB, "--local", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["job"] == OLD_JOB
