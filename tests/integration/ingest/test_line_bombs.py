"""Line bombs: a 1 MB gzip that decompresses to one 1 GiB line, and a 0.5 MB JSON Lines gzip
holding one 512 MiB line. The ingest handler quarantines each with reason `line_too_long`
while its process stays under 512 MB (the function has 2,048), measured in a fresh child
process (VmHWM: the process's own peak resident memory) against moto. A NUL byte 60 MiB into
a gzip CSV is found as the file streams by (`binary_content` at its offset), within the same
bound."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import run_to_success

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
PEAK_LIMIT_MB = 512
MIB = 1 << 20


def _bomb(path: Path, head: bytes, mebibytes: int, tail: bytes, fill: bytes = b"a") -> Path:
    """`head`, `mebibytes` MiB of `fill` repeated and `tail`, as a multi-member gzip (one
    compressed MiB repeated): a few KB per MiB, written in milliseconds."""
    member = gzip.compress(fill * (MIB // len(fill)), compresslevel=9)
    with path.open("wb") as file:
        file.write(gzip.compress(head))
        for _ in range(mebibytes):
            file.write(member)
        file.write(gzip.compress(tail))
    return path


CHILD = """
import json, sys
from pathlib import Path

import boto3
from moto import mock_aws

path, key = Path(sys.argv[1]), sys.argv[2]
bucket, table = "mlops-dev-data", "mlops-dev-registry"
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.lambda_context import lambda_context

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    create_data_bucket(s3, bucket)
    create_registry_table(boto3.client("dynamodb", region_name="us-east-1"), table)
    put = s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    from functions.ingest.handler import lambda_handler

    event = json.loads(Path("events/s3_object_created.json").read_text())
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(
        {"key": key, "etag": put["ETag"].strip('"'), "version-id": put["VersionId"]}
    )
    try:
        lambda_handler(event, lambda_context("ingest", memory_mb=2048))
        raised = None
    except Exception as exc:
        raised = type(exc).__name__
    from functions.common.layout import quarantine_key, reason_key

    quarantined = quarantine_key(key)
    reason = json.loads(s3.get_object(Bucket=bucket, Key=reason_key(key))["Body"].read())
    copy = s3.get_object(Bucket=bucket, Key=quarantined)["Body"].read()
    raw = s3.get_object(Bucket=bucket, Key=key, VersionId=put["VersionId"])["Body"].read()
    peak = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    print(json.dumps({
        "raised": raised,
        "reason": reason,
        "copy_intact": copy == path.read_bytes(),
        "raw_intact": raw == path.read_bytes(),
        "peak_mb": peak,
    }))
"""


def _quarantine_in_a_child(path: Path, key: str) -> dict[str, object]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLOPS_"))},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DATA_BUCKET": "mlops-dev-data",
        "REGISTRY_TABLE": "mlops-dev-registry",
        "STAGE": "dev",
        "CODE_VERSION": "test1234",
        "MLOPS_CONFIG": str(REPO / "mlops.toml"),
        "POWERTOOLS_SERVICE_NAME": "ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "mlops",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    result = run_to_success(
        [sys.executable, "-c", CHILD, str(path), key], cwd=REPO, env=environment, timeout=600
    )
    outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize(
    ("name", "head", "mebibytes", "tail"),
    [
        pytest.param("bomb.csv.gz", b"", 1024, b"\n", id="csv-gzip-1GiB-line"),
        pytest.param("bomb.jsonl.gz", b'{"age": "', 512, b'"}\n', id="jsonl-gzip-512MiB-line"),
    ],
)
def test_a_line_bomb_is_quarantined_within_the_memory_bound(
    tmp_path: Path, name: str, head: bytes, mebibytes: int, tail: bytes
) -> None:
    path = _bomb(tmp_path / name, head, mebibytes, tail)
    assert path.stat().st_size < 1.1 * MIB

    outcome = _quarantine_in_a_child(path, f"raw/churn/{name}")

    assert outcome["raised"] == "DataValidationError"
    reason = outcome["reason"]
    assert isinstance(reason, dict)
    assert reason["code"] == "line_too_long"
    assert reason["message"] == (
        "Line 1 is longer than 1,048,576 bytes ([ingest] max_line_bytes); reading stopped there."
    )
    assert reason["details"] == {"line": 1, "max_line_bytes": MIB}
    assert outcome["copy_intact"] and outcome["raw_intact"]
    assert isinstance(outcome["peak_mb"], float)
    assert outcome["peak_mb"] < PEAK_LIMIT_MB, f"peak RSS {outcome['peak_mb']:.0f} MB"


def test_a_nul_byte_60_mib_into_a_gzip_csv_is_found_as_it_streams_within_the_memory_bound(
    tmp_path: Path,
) -> None:
    from functions.ml.sample_data import churn_frame, encode

    header, *lines = encode(churn_frame(200, seed=62)).splitlines(keepends=True)
    rows, row = b"".join(lines), lines[0]
    fill = row * (MIB // len(row))
    tail = row.replace(b" ", b"\x00", 1)
    path = _bomb(tmp_path / "late.csv.gz", header + rows, 60, tail, row)
    offset = len(header + rows) + 60 * len(fill) + tail.index(b"\x00")

    outcome = _quarantine_in_a_child(path, "raw/churn/late.csv.gz")

    assert outcome["raised"] == "DataValidationError"
    reason = outcome["reason"]
    assert isinstance(reason, dict)
    assert reason["code"] == "binary_content"
    assert reason["details"]["byte_offset"] == offset
    assert reason["details"]["line"] == 1 + len(lines) + 60 * (MIB // len(row)) + 1
    assert f"the decompressed gzip stream holds binary data at byte {offset:,}" in (
        reason["message"].lower()
    )
    assert isinstance(outcome["peak_mb"], float)
    assert outcome["peak_mb"] < PEAK_LIMIT_MB, f"peak RSS {outcome['peak_mb']:.0f} MB"
