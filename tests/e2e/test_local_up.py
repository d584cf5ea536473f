"""Acceptance: with `mlops local up` running, the real AWS CLI drops a file into the data
bucket and the pipeline execution it starts shows up in `stepfunctions list-executions`; and
`local up` deploys the config in use, and the dev stage of an assembly holding every stage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.loading import MlopsConfig
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
    # Generous: `local up` may synthesize first, on a machine shared with other tests.
    deadline = time.monotonic() + 300
    while not outputs.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlops local up did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return dict(json.loads(outputs.read_text()))


@contextmanager
def _local_up(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`mlops local up ARGS` in a subprocess until it has written outputs.json; yields the
    endpoint, the outputs and its log, then stops it (SIGTERM) and checks it stopped cleanly."""
    port = _free_port()
    state_dir = Path(tempfile.mkdtemp(dir=tmp_path, prefix="state-"))
    log = state_dir / "local-up.log"
    command = [
        sys.executable,
        "-m",
        "infra.cli",
        "local",
        "up",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        *args,
    ]
    with log.open("w") as log_file:
        server = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
    try:
        outputs = _wait_for_outputs(server, state_dir / "outputs.json", log)
        yield f"http://127.0.0.1:{port}", outputs, log
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=30)
    assert exit_code == 0, log.read_text()[-3000:]
    assert "Stopped." in log.read_text()


@pytest.mark.slow
def test_an_aws_cli_drop_starts_a_pipeline_execution(cdk_out: Path, tmp_path: Path) -> None:
    with _local_up(tmp_path, "--cdk-out", str(cdk_out), "--no-synth") as (endpoint, outputs, _):
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


def _deployed_datasets(endpoint: str) -> set[str]:
    """The dataset name in the config every deployed function runs with."""
    listed = _aws(endpoint, "lambda", "list-functions")
    return {
        MlopsConfig.model_validate_json(
            function["Environment"]["Variables"]["MLOPS_CONFIG_JSON"]
        ).dataset.name
        for function in listed["Functions"]
        if "MLOPS_CONFIG_JSON" in function.get("Environment", {}).get("Variables", {})
    }


@pytest.mark.slow
def test_local_up_deploys_the_config_in_use_and_the_dev_stage(tmp_path: Path) -> None:
    churn = tmp_path / "churn.toml"
    churn.write_text((REPO_ROOT / "mlops.toml").read_text())
    wine = tmp_path / "wine.toml"
    wine.write_text(churn.read_text().replace('name = "churn"', 'name = "wine"', 1))
    # The other config is older than the synth: only its path and content tell it apart.
    os.utime(wine, (time.time() - 3600, time.time() - 3600))
    cdk_out = tmp_path / "cdk.out"
    # Plain `cdk synth`: no stage in the context, one stack per configured stage.
    synth = subprocess.run(
        [sys.executable, "-m", "infra.cdk.app"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "MLOPS_CONFIG": str(churn),
            "CDK_OUTDIR": str(cdk_out),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert synth.returncode == 0, synth.stderr[-3000:]

    with _local_up(tmp_path, "--cdk-out", str(cdk_out), env={"MLOPS_CONFIG": str(churn)}) as (
        endpoint,
        _,
        log,
    ):
        assert _deployed_datasets(endpoint) == {"churn"}
        text = log.read_text()
        assert "mlops-dev" in text and "stage dev" in text, text[-3000:]
        assert "Synthesizing" not in text, "an up-to-date synth was redone"

    with _local_up(tmp_path, "--cdk-out", str(cdk_out), env={"MLOPS_CONFIG": str(wine)}) as (
        endpoint,
        _,
        log,
    ):
        assert _deployed_datasets(endpoint) == {"wine"}
        assert "raw/wine/" in log.read_text()
