"""`mlops rollback --local`: with `mlops local up` running the current code, a rollback to the
release pinned in `upgrade_from.txt` synthesizes that release, updates the running cloud in
place to it, and smoke-tests it: the functions then run the release's code, and the data
written before stays."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.main import app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UPGRADE_FROM = Path(__file__).with_name("upgrade_from.txt")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    ).stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DRIFT_CHECK_LOGS = "MonitoringDriftChecksExecutionLogs165AD3D4"
NEWER_WITH_DATA = (
    DRIFT_CHECK_LOGS,
    "CanaryCanaryFunctionLogsC1994E8B",
    "CanaryFailedCanaryCounts3234A3DD",
    "CanaryUndeliveredCaptureEvents2E7AA477",
)
"""What holds data and is newer than the pinned release (the drift checks state machine's
execution logs, the canary function's logs and queues): a rollback to it deletes them with
their data, and must be allowed to."""


def _rollback(revision: str, state_dir: Path, *allowed: str) -> Any:
    """`mlops rollback --local --to REVISION --yes`, as a user runs it from another shell."""
    arguments = ["--local", "--to", revision, "--yes", "--state-dir", str(state_dir)]
    for logical_id in allowed:
        arguments += ["--allow-replacement", logical_id]
    return CliRunner().invoke(app, ["rollback", *arguments], env={"COLUMNS": "250"})


def test_rollback_puts_the_previous_release_back_on_the_running_local_cloud(
    cdk_out: Path, tmp_path: Path
) -> None:
    revision = UPGRADE_FROM.read_text(encoding="utf-8").split()[0]
    if not _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"):
        if _git("rev-parse", "--is-shallow-repository") == "true":
            pytest.skip(f"this clone is shallow and lacks the pinned release {revision[:12]}")
        pytest.fail(f"the pinned release {revision} is not in this repository's history")
    state_dir, port = tmp_path / "state", _free_port()
    log = tmp_path / "local-up.log"
    command = [sys.executable, "-m", "infra.cli", "local", "up", "--port", str(port)]
    command += ["--api-port", str(_free_port()), "--state-dir", str(state_dir)]
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [*command, "--cdk-out", str(cdk_out), "--no-synth"],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 300
        while not (state_dir / "local-up.json").exists():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        endpoint = f"http://127.0.0.1:{port}"
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        s3 = session.client("s3", endpoint_url=endpoint)
        lambda_ = session.client("lambda", endpoint_url=endpoint)
        bucket = json.loads((state_dir / "outputs.json").read_text())["DataBucketName"]
        kept = "reports/rollback/kept.csv"
        s3.put_object(Bucket=bucket, Key=kept, Body=b"id\n1\n")

        refused = _rollback(revision, state_dir)

        assert refused.exit_code == 1, refused.output
        assert DRIFT_CHECK_LOGS in refused.output and "holds data" in refused.output
        assert "rollback refused: nothing deployed" in " ".join(refused.output.split())

        result = _rollback(revision, state_dir, *NEWER_WITH_DATA)

        assert result.exit_code == 0, result.output
        assert "FAIL" not in result.output
        assert f"code {revision[:12]}" in result.output  # what smoke's health checks report
        versions = {
            function["Environment"]["Variables"].get("CODE_VERSION")
            for function in lambda_.list_functions()["Functions"]
            if function.get("Handler", "").startswith("functions.")
        }
        assert versions == {revision[:12]}
        assert s3.get_object(Bucket=bucket, Key=kept)["Body"].read() == b"id\n1\n"
        [first] = (state_dir / "rollback").iterdir()
        assert first.name.startswith(revision[:12])

        # Again: nothing changes, and the first synthesis, no longer run, is removed.
        time.sleep(1.1)  # a new synthesis directory (stamped to the second)
        again = _rollback(revision, state_dir)

        assert again.exit_code == 0, again.output
        assert "no resource replaced or deleted" in again.output, again.output
        [second] = (state_dir / "rollback").iterdir()
        assert second != first and second.name.startswith(revision[:12])
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()[-3000:]
