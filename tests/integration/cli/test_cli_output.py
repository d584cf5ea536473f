"""What `mlops` prints, whatever the command: tables readable in an 80-column terminal, and
`--json` output that is one JSON document on stdout, for a JSON parser."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
import typer
from typer.testing import CliRunner

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import SourceObject
from functions.common.layout import manifest_key
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.cost import DEV_TEMPLATE
from tests.helpers.datasets import dataset_ref

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
MODEL = "churn"
JOB = "june-scoring"
CHECK = "20260105T000000Z"
DROP = "raw/churn/june.csv"
RUNS = ("20260101T101500Z-4f9a2c", "20260102T101500Z-8b1d3e", "20260103T101500Z-c07e51")
DATA_VERSION = "5e1f0c2a9b7d4e63"


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def seeded(local_state: Any) -> Any:
    """A "local cloud" holding three training runs, a batch job's manifest, a drift check and
    a drop, each with values long enough to wrap in a narrow terminal."""
    server = local_state.endpoint
    sfn = boto3.client("stepfunctions", endpoint_url=server, region_name="us-east-1")
    pipeline = sfn.create_state_machine(
        name="pipeline",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/pipeline",
    )["stateMachineArn"]
    sqs = boto3.client("sqs", endpoint_url=server, region_name="us-east-1")
    queues = {
        output: sqs.create_queue(QueueName=output)["QueueUrl"]
        for output in (
            "DropsDeadLetterQueueUrl",
            "BatchStartsDeadLetterQueueUrl",
            "MonitoringEventsDeadLetterQueueUrl",
            "FailedDriftChecksQueueUrl",
        )
    }
    sqs.send_message(
        QueueUrl=queues["DropsDeadLetterQueueUrl"],
        MessageBody=json.dumps({"source": "aws.s3", "detail": {"object": {"key": DROP}}}),
    )
    local_state.write_outputs(
        {
            "DataBucketName": BUCKET,
            "RegistryTableName": TABLE,
            "PipelineStateMachineArn": pipeline,
            **queues,
        }
    )
    dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1")
    create_registry_table(dynamodb, TABLE)
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
    create_data_bucket(s3, BUCKET, versioned=False)
    registry = ModelRegistry(TABLE, dynamodb)
    for number, run_id in enumerate(RUNS, start=1):
        registry.put_run(
            {
                "run_id": run_id,
                "model_name": MODEL,
                "status": "evaluated",
                "estimator": "hist_gradient_boosting",
                "started_at": f"2026-01-0{number}T10:15:00.000Z",
                "data_version": f"2026010{number}T101400Z-{'d' * 8}",
                "metrics": {
                    "roc_auc": 0.81 + number / 100,
                    "f1_macro": 0.71 + number / 100,
                    "accuracy": 0.77 + number / 100,
                    "log_loss": 0.41 - number / 100,
                },
            }
        )
    manifest = {
        "job": JOB,
        "status": "succeeded",
        "model_name": MODEL,
        "model_version": 1,
        "note": "a long value " * 20,
    }
    s3.put_object(Bucket=BUCKET, Key=manifest_key(MODEL, JOB), Body=json.dumps(manifest))
    s3.put_object(Bucket=BUCKET, Key=DROP, Body=b"id,churned\n1,yes\n")
    result = {"check_id": CHECK, "verdict": "no drift", "note": "a long value " * 20}
    s3.put_object(
        Bucket=BUCKET, Key=f"reports/drift/{MODEL}/{CHECK}/result.json", Body=json.dumps(result)
    )
    DatasetRegistry(TABLE, dynamodb).register_version(
        dataset_ref(
            DATA_VERSION,
            SourceObject(bucket=BUCKET, key=f"raw/{MODEL}/{'a-long-file-name-' * 5}.csv"),
            created_at="2026-01-01T10:14:00.000Z",
            rows=1_500,
            dataset=MODEL,
        ),
        code_version="test",
    )
    return local_state


def test_runs_list_is_readable_at_80_columns(seeded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    result = mlops("runs", "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    for run_id in RUNS:
        row = next(line for line in lines if run_id in line)
        assert "evaluated" in row
    assert "roc_auc" in result.stdout and "0.8400" in result.stdout


def test_runs_list_wide_shows_every_column(seeded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")

    result = mlops("runs", "list", "--wide")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if RUNS[2] in line)
    assert "hist_gradient_boosting" in row and "20260103T101400Z-dddddddd" in row
    assert "2026-01-03 10:15" in row
    assert "0.8400" in row and "0.7400" in row


# Each command that takes --json, with the arguments that make it print a document.
JSON_COMMANDS: dict[str, list[str]] = {
    "batch show": ["batch", "show", JOB, "--json"],
    "cost": ["cost", "--template", str(DEV_TEMPLATE), "--json"],
    "data list": ["data", "list", "--json"],
    "data show": ["data", "show", DATA_VERSION, "--json"],
    "dlq list": ["dlq", "list", "--json"],
    "dlq show": ["dlq", "show", "drops", "--json"],
    "drift show": ["drift", "show", CHECK, "--json"],
    "drift list": ["drift", "list", "--json"],
    "drops list": ["drops", "list", "--json"],
    "drops show": ["drops", "show", DROP, "--json"],
    "migrate": ["migrate", "--json"],
    "models list": ["models", "list", "--json"],
    "models versions": ["models", "versions", "--json"],
    "models shadow report": ["models", "shadow", "report", "--json"],
    "predeploy": [
        "predeploy",
        "--cdk-out",
        str(DEV_TEMPLATE.parent),
        "--against",
        str(DEV_TEMPLATE),
        "--template-only",
        "--json",
    ],
    "runs list": ["runs", "list", "--json"],
    "restore": ["restore", "--registry", "--to", "latest", "--dry-run", "--json"],
}


def _commands_with_json(command: Any, path: tuple[str, ...] = ()) -> set[str]:
    """The commands under `command` (a group: it has sub-commands) that take --json."""
    if hasattr(command, "commands"):
        found: set[str] = set()
        for name, sub in command.commands.items():
            found |= _commands_with_json(sub, (*path, name))
        return found
    takes_json = any("--json" in param.opts for param in command.params)
    return {" ".join(path)} if takes_json else set()


def test_every_command_with_json_is_checked() -> None:
    commands = _commands_with_json(typer.main.get_command(app))

    assert "drift show" in commands
    assert commands == set(JSON_COMMANDS)


@pytest.mark.parametrize("name", sorted(JSON_COMMANDS))
def test_json_output_is_one_document_on_stdout(
    seeded: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    result = mlops(*JSON_COMMANDS[name])

    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), dict | list)


def _commands(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command and group under `command`, by its path of names."""
    found = {path: command}
    for name, sub in getattr(command, "commands", {}).items():
        found |= _commands(sub, (*path, name))
    return found


def test_help_shows_the_config_keys_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A help text naming a config key as `[section] key` shows it in `--help`: rich markup
    would otherwise swallow `[serving]` ("x-api-key ( api_key)")."""
    monkeypatch.setenv("COLUMNS", "400")
    checked = 0
    for path, command in _commands(typer.main.get_command(app)).items():
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        keys = {key for text in texts for key in re.findall(r"\[[a-z_.]+\] [a-z_]+", text)}
        if keys:
            shown = " ".join(mlops(*path, "--help").stdout.split())
            assert {key for key in keys if key not in shown} == set(), path
            checked += 1
    assert checked >= 2


def test_predict_with_a_file_that_is_not_json_says_what_it_takes(tmp_path: Any) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("age,contract\n52,two year\n")

    result = mlops("predict", "--file", str(rows), "--url", "http://127.0.0.1:9/")

    assert result.exit_code == 2
    shown = " ".join(result.output.split())
    assert "rows.csv is not JSON (line 1 column 1" in shown
    assert "mlops batch run" in shown
