"""`mlops runs ...` and `mlops models ...` against a moto server, reached the way a user reaches
the local cloud (outputs.json + stack.json written by `mlops local up`) or an AWS stack
(CloudFormation outputs)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import ModelVersion
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table

REPO = Path(__file__).resolve().parents[3]
BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
MODEL = "churn"
RUN_A, RUN_B, RUN_C = "20260101T000000Z-aaa", "20260102T000000Z-bbb", "20260103T000000Z-ccc"


@dataclass
class Local:
    endpoint: str
    state_dir: Path
    registry: ModelRegistry

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")


@pytest.fixture
def local(local_state: Any) -> Local:
    """A fresh "local cloud": the moto server emptied, the bucket and the table created, and
    the state files `mlops local up` writes."""
    server, state_dir = local_state.endpoint, local_state.state_dir
    local_state.write_outputs({"DataBucketName": BUCKET, "RegistryTableName": TABLE})
    dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1")
    create_registry_table(dynamodb, TABLE)
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
    create_data_bucket(s3, BUCKET, versioned=False)
    return Local(server, state_dir, ModelRegistry(TABLE, dynamodb))


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _version(number: int, run_id: str, auc: float) -> ModelVersion:
    return ModelVersion(
        model_name=MODEL,
        version=number,
        prefix=f"models/{MODEL}/{number}/",
        onnx_key=f"models/{MODEL}/{number}/model.onnx",
        onnx_sha256=f"{number}" * 64,
        run_id=run_id,
        data_version=f"data{number}",
        data_versions=[f"data{number}"],
        metrics={"roc_auc": auc, "f1_macro": auc - 0.1},
        created_at=f"2026-01-0{number}T12:00:00.000Z",
        model_card_key=f"reports/{MODEL}/{number}/model_card.html",
        promoted=False,
    )


@pytest.fixture
def registered(local: Local) -> Local:
    """Three runs; versions 1 and 2 registered (with metadata and cards), 1 in production."""
    s3 = local.client("s3")
    runs = ((RUN_A, 1.5, 0.8, 1), (RUN_B, 0.5, 0.85, 2), (RUN_C, 0.1, 0.7, None))
    for run_id, c, auc, version in runs:
        local.registry.put_run(
            {
                "run_id": run_id,
                "model_name": MODEL,
                "status": "registered" if version else "evaluated",
                "estimator": "logistic_regression",
                "started_at": f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T00:00:00.000Z",
                "data_version": "data1",
                "params": {"C": c, "max_iter": 1000},
                "metrics": {"roc_auc": auc, "f1_macro": auc - 0.1, "log_loss": 1 - auc},
                "durations": {"fit": 0.5},
                **({"version": version} if version else {}),
            }
        )
        if version:
            registered = _version(version, run_id, auc)
            local.registry.put_version(registered)
            metadata = {
                "estimator": "logistic_regression",
                "params": {"C": c},
                "classes": ["no", "yes"],
                "training_code_version": f"train{version}abc",
                "code_version": f"reg{version}abc",
                "signature": {
                    "inputs": [
                        {"name": "age", "type": "numeric", "categories": []},
                        {"name": "contract", "type": "categorical", "categories": ["a", "b"]},
                    ]
                },
            }
            s3.put_object(
                Bucket=BUCKET, Key=registered.prefix + "metadata.json", Body=json.dumps(metadata)
            )
            s3.put_object(
                Bucket=BUCKET,
                Key=registered.model_card_key,
                Body=f"<!doctype html><title>card {version}</title>".encode(),
                ContentType="text/html",
            )
    local.registry.promote(MODEL, 1, expected_current=None, reason="first model")
    return local


@pytest.fixture
def promoted_events(
    registered: Local, subscribe_promotions: Callable[[Any, Any], Callable[[], list[Any]]]
) -> Callable[[], list[dict[str, Any]]]:
    """ModelPromoted events as a queue behind an EventBridge rule receives them."""
    return subscribe_promotions(registered.client("sqs"), registered.client("events"))


def test_models_versions_shows_versions_and_which_is_production(registered: Local) -> None:
    result = mlops("models", "versions")

    assert result.exit_code == 0, result.output
    assert f"target: local cloud at {registered.endpoint}, model churn" in result.output
    lines = result.output.splitlines()
    first = next(line for line in lines if RUN_A in line)
    second = next(line for line in lines if RUN_B in line)
    assert "production" in first and "0.8000" in first
    assert "production" not in second and "0.8500" in second


def test_models_show_describes_one_version_and_saves_its_card(
    registered: Local, tmp_path: Path
) -> None:
    card = tmp_path / "card.html"

    result = mlops("models", "show", "2", "--card", str(card))

    assert result.exit_code == 0, result.output
    assert "2" * 64 in result.output
    assert f"s3://{BUCKET}/models/churn/2/" in result.output
    assert f"s3://{BUCKET}/reports/churn/2/model_card.html" in result.output
    assert "contract" in result.output and "categorical" in result.output
    # Lineage: code commits, data version, run id and parameters.
    assert "code commit (training)" in result.output and "train2abc" in result.output
    assert "reg2abc" in result.output and RUN_B in result.output
    assert "data_version" in result.output and "'C'" not in result.output
    assert '"C"' in result.output
    assert card.read_text() == "<!doctype html><title>card 2</title>"


def test_models_show_of_an_unknown_version_fails(registered: Local) -> None:
    result = mlops("models", "show", "9")

    assert result.exit_code == 1
    assert "error: churn has no registered version 9" in result.output


def test_models_promote_moves_production_records_why_and_publishes(
    registered: Local, promoted_events: Callable[[], list[dict[str, Any]]]
) -> None:
    result = mlops("models", "promote", "2", "--reason", "[urgent] better auc on fresh data")

    assert result.exit_code == 0, result.output
    assert "production of churn promoted: version 1 -> version 2" in result.output
    alias = registered.registry.get_alias(MODEL)
    assert alias is not None and alias.version == 2
    last = registered.registry.history(MODEL)[-1]
    assert (last.reason, last.from_version, last.to_version) == (
        "[urgent] better auc on fresh data",
        1,
        2,
    )
    assert last.execution is not None and last.execution.startswith("cli")
    (event,) = promoted_events()
    assert (event["model"], event["version"], event["previous_version"]) == ("churn", 2, 1)
    assert event["metrics"] == {"roc_auc": 0.85, "f1_macro": pytest.approx(0.75)}
    assert event["run_id"] == RUN_B


def test_promoting_production_again_changes_nothing(registered: Local) -> None:
    result = mlops("models", "promote", "1")

    assert result.exit_code == 0, result.output
    assert "Version 1 of churn is already production; no change." in result.output
    assert len(registered.registry.history(MODEL)) == 1


def test_promoting_an_unregistered_version_fails_and_keeps_production(registered: Local) -> None:
    result = mlops("models", "promote", "7")

    assert result.exit_code == 1
    assert "error: churn has no registered version 7" in result.output
    alias = registered.registry.get_alias(MODEL)
    assert alias is not None and alias.version == 1


def test_models_rollback_goes_back_and_then_has_nothing_left(
    registered: Local, promoted_events: Callable[[], list[dict[str, Any]]]
) -> None:
    assert mlops("models", "promote", "2").exit_code == 0

    back = mlops("models", "rollback", "--reason", "2 drifts")
    again = mlops("models", "rollback")

    assert back.exit_code == 0, back.output
    assert "production of churn rolled back: version 2 -> version 1" in back.output
    alias = registered.registry.get_alias(MODEL)
    assert alias is not None and (alias.version, alias.reason) == (1, "2 drifts")
    assert [e["kind"] for e in promoted_events()] == ["promote", "rollback"]
    assert again.exit_code == 1
    assert "is version 1 and has no earlier version in its history" in again.output


def test_models_history_lists_every_move_oldest_first(registered: Local) -> None:
    mlops("models", "promote", "2", "--reason", "[bold] second")
    mlops("models", "rollback", "--reason", "undo")

    result = mlops("models", "history")

    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "promote" in line or "rollback" in line]
    assert len(rows) == 3
    assert "promote" in rows[0] and "first model" in rows[0]
    assert "promote" in rows[1] and "[bold] second" in rows[1] and "cli" in rows[1]
    assert "rollback" in rows[2] and "undo" in rows[2]


def test_models_history_before_any_promotion(local: Local) -> None:
    result = mlops("models", "history")

    assert result.exit_code == 0, result.output
    assert "production of churn has never been set." in result.output
    assert "No versions of churn are registered yet." in mlops("models", "versions").output


def test_runs_list_shows_newest_first_with_gate_metrics_and_versions(registered: Local) -> None:
    result = mlops("runs", "list")

    assert result.exit_code == 0, result.output
    assert "roc_auc" in result.output and "f1_macro" in result.output
    lines = [line for line in result.output.splitlines() if "Z-" in line]
    assert [RUN_C in lines[0], RUN_B in lines[1], RUN_A in lines[2]] == [True, True, True]
    assert "1 (production)" in lines[2]
    assert "evaluated" in lines[0]


def test_runs_show_prints_params_and_metrics(registered: Local) -> None:
    result = mlops("runs", "show", RUN_B)

    assert result.exit_code == 0, result.output
    assert "params" in result.output and "max_iter" in result.output
    assert "roc_auc" in result.output and "0.8500" in result.output
    missing = mlops("runs", "show", "nope")
    assert missing.exit_code == 1
    assert "no training run nope is recorded for churn" in missing.output


def test_runs_compare_marks_different_params_and_shows_metric_changes(
    registered: Local,
) -> None:
    result = mlops("runs", "compare", RUN_A, RUN_B, RUN_C)

    assert result.exit_code == 0, result.output
    c_row = next(line for line in result.output.splitlines() if "* C" in line)
    assert "1.5000" in c_row and "0.5000" in c_row and "0.1000" in c_row
    iterations = next(line for line in result.output.splitlines() if "max_iter" in line)
    assert "*" not in iterations
    auc = next(line for line in result.output.splitlines() if "roc_auc" in line)
    assert "0.8500 (+0.0500)" in auc and "0.7000 (-0.1000)" in auc
    assert mlops("runs", "compare", RUN_A).exit_code == 1


def test_a_stopped_local_cloud_is_a_clear_error(local: Local) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    (local.state_dir / "stack.json").write_text(json.dumps({"endpoint": dead}))

    result = mlops("models", "list")

    assert result.exit_code == 1
    assert f"the local cloud is not running: nothing answers at {dead}" in result.output


def test_no_local_cloud_state_is_a_clear_error(local: Local, tmp_path: Path) -> None:
    result = mlops("models", "list", "--local", "--state-dir", str(tmp_path / "empty"))

    assert result.exit_code == 1
    assert "the local cloud is not running" in result.output
    assert "start it with `mlops local up`" in result.output


def test_an_invalid_config_exits_2_naming_the_key(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[dataset]\nname = "churn"\ntarget = "churned"\ntask = "clustering"\n')
    monkeypatch.setenv("MLOPS_CONFIG", str(bad))

    result = mlops("runs", "list")

    assert result.exit_code == 2
    assert "invalid config" in result.output and "dataset.task" in result.output


@pytest.fixture
def aws_stack(registered: Local, monkeypatch: pytest.MonkeyPatch) -> Local:
    """The same resources behind a CloudFormation stack `mlops-dev` with the stack outputs,
    reached through `AWS_ENDPOINT_URL` as any boto3 client would."""
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "DataBucketName": {"Value": BUCKET},
            "RegistryTableName": {"Value": TABLE},
        },
    }
    registered.client("cloudformation").create_stack(
        StackName="mlops-dev", TemplateBody=json.dumps(template)
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", registered.endpoint)
    return registered


def test_aws_target_reads_the_stack_outputs(aws_stack: Local) -> None:
    result = mlops("models", "versions", "--aws", "--stage", "dev")

    assert result.exit_code == 0, result.output
    assert "target: AWS stack mlops-dev (us-east-1), model churn" in result.output
    assert RUN_A in result.output and RUN_B in result.output


def test_aws_target_without_the_stack_is_a_clear_error(
    local: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", local.endpoint)

    result = mlops("runs", "list", "--aws")

    assert result.exit_code == 1
    assert "stack mlops-dev does not exist in us-east-1" in result.output


def test_an_unconfigured_stage_exits_2(local: Local) -> None:
    result = mlops("models", "list", "--aws", "--stage", "qa")

    assert result.exit_code == 2
    assert "stage 'qa' is not configured" in result.output


def test_models_canary_sets_the_candidate_and_history_shows_it(registered: Local) -> None:
    result = mlops("models", "canary", "2", "--reason", "try the fresh one")

    assert result.exit_code == 0, result.output
    assert "candidate of churn set: none -> version 2" in result.output
    assert "candidate_share is 0" in result.output  # mlops.toml sends it no traffic
    candidate = registered.registry.get_alias(MODEL, "candidate")
    assert candidate is not None and candidate.version == 2
    production = registered.registry.get_alias(MODEL)
    assert production is not None and production.version == 1
    registered.registry.drop_alias(MODEL, "candidate", expected=2, reason="rollout: dropped")
    history = mlops("models", "history", "--alias", "candidate")
    rows = [line for line in history.output.splitlines() if "promote" in line or "drop" in line]
    assert "try the fresh one" in rows[0] and "drop" in rows[1] and "rollout: dropped" in rows[1]


def test_models_canary_of_the_production_version_fails(registered: Local) -> None:
    result = mlops("models", "canary", "1")

    assert result.exit_code == 1
    assert "version 1 of churn is production already" in result.output
    assert registered.registry.get_alias(MODEL, "candidate") is None


GATED_A, GATED_B, GATED_C = (
    "20260201T000000Z-a1a1a1",
    "20260202T000000Z-b2b2b2",
    "20260203T000000Z-c3c3c3",
)


@pytest.fixture
def gated(local: Local) -> Local:
    """Runs as the pipeline records them: A became version 1 (no champion); B was gated
    against version 1 on B's held-out rows, passed and became version 2 (production), though
    its roc_auc on its own rows is below A's on A's rows; C was gated against version 2 and
    rejected (the evaluate stage records it as evaluated, with gate_passed false)."""
    gates: list[tuple[str, float, int | None, float | None, bool, int | None]] = [
        (GATED_A, 0.85, None, None, True, 1),
        (GATED_B, 0.80, 1, 0.78, True, 2),
        (GATED_C, 0.83, 2, 0.86, False, None),
    ]
    for run_id, auc, champion, champion_auc, passed, version in gates:
        local.registry.put_run(
            {
                "run_id": run_id,
                "model_name": MODEL,
                "status": "registered" if version else "evaluated",
                "started_at": f"2026-02-0{run_id[7]}T00:00:00.000Z",
                "metrics": {"roc_auc": auc, "f1_macro": auc - 0.1},
                "champion_version": champion,
                "champion_metrics": (
                    {"roc_auc": champion_auc, "f1_macro": champion_auc - 0.1}
                    if champion_auc
                    else None
                ),
                "gate_passed": passed,
                "gate_failed": [] if passed else ["roc_auc 0.8300 is below the champion"],
                **({"version": version} if version else {}),
            }
        )
        if version:
            local.registry.put_version(_version(version, run_id, auc))
    local.registry.promote(MODEL, 1, expected_current=None, reason="first model")
    local.registry.promote(MODEL, 2, expected_current=1, reason="gate passed")
    return local


def _row(output: str, key: str) -> str:
    """The text of the table row holding `key`, its wrapped lines joined."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if key in line)
    row = [lines[start]]
    for line in lines[start + 1 :]:
        if line.startswith(("├", "└")) or "Z-" in line:
            break
        row.append(line)
    cells = [[cell.strip() for cell in line.strip().strip("│").split("│")] for line in row]
    return " | ".join(" ".join(filter(None, column)) for column in zip(*cells, strict=True))


def _listed(monkeypatch: pytest.MonkeyPatch, *command: str) -> str:
    """What `mlops <command>` prints in an 80-column terminal (rows wrap)."""
    monkeypatch.setenv("COLUMNS", "80")
    result = mlops(*command)
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_runs_list_shows_the_gate_comparison_and_rejections(
    gated: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = _listed(monkeypatch, "runs", "list")

    promoted, rejected = _row(output, GATED_B), _row(output, GATED_C)
    assert "0.8000 v1 0.7800" in promoted and "2 (production)" in promoted
    assert "rejected" in rejected and "evaluated" not in rejected
    assert "0.8300 v2 0.8600" in rejected
    assert "champion" in output and "same held-out rows" in output


def test_models_versions_shows_what_each_version_beat_on_the_same_rows(
    gated: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = _listed(monkeypatch, "models", "versions")

    assert "0.8000 v1 0.7800" in _row(output, GATED_B)
    assert "same held-out rows" in output


def test_runs_compare_shows_each_gate_on_its_own_rows(gated: Local) -> None:
    result = mlops("runs", "compare", GATED_A, GATED_B, GATED_C)

    assert result.exit_code == 0, result.output
    status = next(line for line in result.output.splitlines() if "status" in line)
    assert "rejected" in status and "evaluated" not in status
    gate = result.output[result.output.index("Gate") :]
    auc = next(line for line in gate.splitlines() if line.startswith("│ roc_auc"))
    assert "0.8000 vs v1 0.7800" in auc and "0.8300 vs v2 0.8600" in auc
    assert "no champion" in gate
    assert "each on its own held-out rows" in result.output
