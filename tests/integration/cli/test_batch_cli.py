"""`mlops batch run|show --model` against a moto server reached as the local cloud: a job's
files go under the named model's folder, the execution is started for that model, and a
manifest is read from that model's folder; a model that is not configured, or a prefix of
another model, is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.common import formats
from functions.common.layout import manifest_key
from infra.cli.main import app
from tests.helpers.config import CHALLENGER, with_challenger

BUCKET = "mlops-dev-data"
# A stand-in for the batch state machine: the CLI starts it and reads its input back.
PASS = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def target(local_state: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two configured models, the data bucket and a batch state machine."""
    config = tmp_path / "mlops.toml"
    config.write_text(with_challenger())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    s3 = boto3.client("s3", endpoint_url=local_state.endpoint, region_name="us-east-1")
    sfn = boto3.client("stepfunctions", endpoint_url=local_state.endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    machine = sfn.create_state_machine(
        name="batch", definition=PASS, roleArn="arn:aws:iam::123456789012:role/batch"
    )["stateMachineArn"]
    local_state.write_outputs({"DataBucketName": BUCKET, "BatchStateMachineArn": machine})
    return s3, sfn, machine


def _keys(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_batch_run_model_uploads_under_the_models_folder_and_starts_its_job(
    target: Any, tmp_path: Path
) -> None:
    s3, sfn, machine = target
    folder = tmp_path / "to-score"
    folder.mkdir()
    (folder / "rows.csv").write_text("age,contract\n52,two year\n")

    result = mlops("batch", "run", str(folder), "--model", CHALLENGER, "--job", "june")
    default = mlops("batch", "run", str(folder), "--job", "july")

    assert result.exit_code == 0, result.output
    assert f"model {CHALLENGER}" in result.output
    assert _keys(s3, "batch/in/") == sorted(
        ["batch/in/churn/july/rows.csv", f"batch/in/{CHALLENGER}/june/rows.csv"]
    )
    assert default.exit_code == 0, default.output
    inputs = [
        json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in sfn.list_executions(stateMachineArn=machine)["executions"]
    ]
    assert sorted(inputs, key=lambda i: i["job"]) == [
        {"job": "july", "model": "churn"},
        {"job": "june", "model": CHALLENGER},
    ]


def test_a_prefix_names_its_model_and_must_agree_with_model(target: Any) -> None:
    s3, sfn, machine = target
    s3.put_object(Bucket=BUCKET, Key=f"batch/in/{CHALLENGER}/june/rows.csv", Body=b"age\n1\n")

    started = mlops("batch", "run", f"batch/in/{CHALLENGER}/june/")
    other = mlops("batch", "run", f"batch/in/{CHALLENGER}/june/", "--model", "churn")
    old_layout = mlops("batch", "run", "batch/in/june/")
    unknown = mlops("batch", "run", "batch/in/nope/june/")

    assert started.exit_code == 0, started.output
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"job": "june", "model": CHALLENGER}
    assert other.exit_code == 2
    assert f"--model churn differs from the prefix's model {CHALLENGER}" in other.output
    assert old_layout.exit_code == 2
    assert "use batch/in/<model>/<job>/" in " ".join(old_layout.output.split())
    assert unknown.exit_code == 2
    assert "'nope' is not a configured model (churn, churn-rf)" in " ".join(unknown.output.split())


def test_batch_show_model_reads_that_models_manifest_and_refuses_an_unknown_model(
    target: Any,
) -> None:
    s3, _, _ = target
    manifest = {
        "job": "june",
        "status": "succeeded",
        "status_reason": "all 1 rows scored",
        "model_name": CHALLENGER,
        "model_version": 2,
        "per_file": [],
    }
    s3.put_object(
        Bucket=BUCKET,
        Key=manifest_key(CHALLENGER, "june"),
        Body=json.dumps(formats.stamp(formats.BATCH_MANIFEST, manifest)),
    )

    shown = mlops("batch", "show", "june", "--model", CHALLENGER, "--json")
    default = mlops("batch", "show", "june")
    unknown = mlops("batch", "show", "june", "--model", "nope")

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["model_version"] == 2
    assert default.exit_code == 1
    assert "job june of model churn has no manifest" in " ".join(default.output.split())
    assert unknown.exit_code == 2
    assert "--model 'nope' is not a configured model: churn, churn-rf" in " ".join(
        unknown.output.split()
    )
