"""Acceptance: with `mlops local up` running, the real AWS CLI drops a file into the data
bucket and the pipeline execution it starts shows up in `stepfunctions list-executions`."""

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

import pytest

from functions.ml.sample_data import good_files

REPO_ROOT = Path(__file__).resolve().parents[2]
AWS_CLI = Path(sys.executable).parent / "aws"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _aws(endpoint: str, *args: str) -> Any:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    result = subprocess.run(
        [str(AWS_CLI), "--endpoint-url", endpoint, "--output", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else result.stdout


def _wait_for_outputs(server: subprocess.Popen[str], outputs: Path, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + 90
    while not outputs.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlops local up did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return dict(json.loads(outputs.read_text()))


@pytest.mark.slow
def test_an_aws_cli_drop_starts_a_pipeline_execution(cdk_out: Path, tmp_path: Path) -> None:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    state_dir, log = tmp_path / "state", tmp_path / "local-up.log"
    command = [
        sys.executable,
        "-m",
        "infra.cli",
        "local",
        "up",
        "--port",
        str(port),
        "--cdk-out",
        str(cdk_out),
        "--no-synth",
        "--state-dir",
        str(state_dir),
    ]
    with log.open("w") as log_file:
        server = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    try:
        outputs = _wait_for_outputs(server, state_dir / "outputs.json", log)
        name, body = next(iter(good_files(rows=200).items()))
        drop = tmp_path / name
        drop.write_bytes(body)

        _aws(endpoint, "s3", "cp", str(drop), f"s3://{outputs['DataBucketName']}/raw/churn/")

        deadline = time.monotonic() + 60
        while True:
            listed = _aws(
                endpoint,
                "stepfunctions",
                "list-executions",
                "--state-machine-arn",
                outputs["PipelineStateMachineArn"],
            )
            executions = listed["executions"]
            if executions and executions[0]["status"] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"no finished execution: {executions}"
            time.sleep(0.3)
        [execution] = executions
        assert execution["name"].startswith("s3-raw-churn-churn-0001-csv-")
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=30)
    assert exit_code == 0, log.read_text()[-3000:]
    assert "Stopped." in log.read_text()
