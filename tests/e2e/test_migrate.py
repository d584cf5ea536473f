"""`mlops migrate` on the local cloud: a quarantined drop as a release before issue 16 left it
(copy and reason side by side under `quarantine/<dataset>/`) is invisible to `mlops drops
show` until `mlops migrate --local --apply` moves it, acting as the stack's erasure role (the
bucket policy lets only ingest and that role write under quarantine/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.common.layout import quarantine_key, reason_key
from functions.ml import sample_data
from infra.local import LocalCloud, faults
from tests.helpers.served import mlops

pytestmark = pytest.mark.slow

DROP = "raw/churn/old-release-bad.csv"
OLD_COPY = "quarantine/churn/old-release-bad.csv"


def test_old_layout_quarantine_is_found_by_drops_show_after_migrate(
    cdk_out: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    bad = sample_data.bad_files()["missing_target.csv"]
    with (
        LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as cloud,
        faults.shorter_retry_waits(0.02),
    ):
        assert cloud.drop(DROP, bad, timeout=240)["status"] == "FAILED"
        s3, bucket = cloud.client("s3"), cloud.outputs["DataBucketName"]
        # What a release before issue 16 left: the copy and its reason side by side.
        reason = json.loads(s3.get_object(Bucket=bucket, Key=reason_key(DROP))["Body"].read())
        reason.pop("format_version")
        reason["quarantine_key"] = OLD_COPY
        s3.copy_object(
            CopySource={"Bucket": bucket, "Key": quarantine_key(DROP)}, Bucket=bucket, Key=OLD_COPY
        )
        s3.put_object(Bucket=bucket, Key=OLD_COPY + ".reason.json", Body=json.dumps(reason))
        for key in (quarantine_key(DROP), reason_key(DROP)):
            s3.delete_object(Bucket=bucket, Key=key)
        before = json.loads(mlops(state_dir, "drops", "show", DROP, "--json").stdout)
        assert before["outcome"] == "failed" and "reason_record" not in before

        planned = json.loads(mlops(state_dir, "migrate", "--local", "--json").stdout)
        assert planned["migrations"][0]["found"] == 2
        applied = mlops(state_dir, "migrate", "--local", "--apply").stdout
        assert "quarantine-layout: moved 2 of 2" in applied and "audit record: s3://" in applied

        after = json.loads(mlops(state_dir, "drops", "show", DROP, "--json").stdout)
        assert after["outcome"] == "quarantined"
        assert after["reason_record"]["code"] == "missing_target"
        assert after["reason_record"]["quarantine_key"] == quarantine_key(DROP)
        again = json.loads(mlops(state_dir, "migrate", "--local", "--apply", "--json").stdout)
        assert again["changes"] == []
