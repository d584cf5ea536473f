"""`mlops models history --at TIME` (which version held an alias then, from its history of
promotions, rollbacks and drops) and `mlops models export N --format mlflow` (the version's
stored MLflow folder, or one built from its files) against a moto server reached as the local
cloud."""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from typer.testing import CliRunner

from functions.adapters.registry.aliases import change_at
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import AliasChange, ModelVersion
from functions.ml.mlflow_format import MLFLOW_FILES, mlflow_files, version_uuid
from functions.ml.sample_data import churn_frame
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.models import fit_churn

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
MODEL = "churn"


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _version(number: int, onnx: bytes = b"") -> ModelVersion:
    return ModelVersion(
        model_name=MODEL,
        version=number,
        prefix=f"models/{MODEL}/{number}/",
        onnx_key=f"models/{MODEL}/{number}/model.onnx",
        onnx_sha256=hashlib.sha256(onnx).hexdigest() if onnx else f"{number}" * 64,
        run_id=f"2026010{number}T000000Z-aaa",
        data_version="d1",
        data_versions=["d1"],
        metrics={"roc_auc": 0.8},
        created_at=f"2026-01-0{number}T12:00:00.000Z",
        model_card_key=f"reports/{MODEL}/{number}/model_card.html",
        promoted=False,
    )


@pytest.fixture
def local(local_state: Any) -> tuple[ModelRegistry, Any]:
    server = local_state.endpoint
    local_state.write_outputs({"DataBucketName": BUCKET, "RegistryTableName": TABLE})
    dynamodb = boto3.client("dynamodb", endpoint_url=server, region_name="us-east-1")
    create_registry_table(dynamodb, TABLE)
    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1")
    create_data_bucket(s3, BUCKET, versioned=False)
    return ModelRegistry(TABLE, dynamodb), s3


def _answer(*args: str) -> str:
    result = mlops("models", "history", *args)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _held(output: str) -> int | None:
    found = re.search(r": version (\d+) \(since", output)
    return int(found.group(1)) if found else None


def _shift(at: str, milliseconds: int) -> str:
    moment = datetime.fromisoformat(at) + timedelta(milliseconds=milliseconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_history_at_answers_before_at_and_after_every_move(
    local: tuple[ModelRegistry, Any],
) -> None:
    registry, _ = local
    for number in (1, 2, 3):
        registry.put_version(_version(number))
    moves = [
        lambda: registry.promote(MODEL, 1, expected_current=None, reason="first"),
        lambda: registry.promote(MODEL, 2, expected_current=1, reason="better"),
        lambda: registry.rollback(MODEL, reason="2 misbehaved"),
        lambda: registry.promote(MODEL, 3, expected_current=1, reason="fixed"),
        lambda: registry.rollback(MODEL, reason="3 too"),
    ]
    before_first = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    for move in moves:
        move()
        time.sleep(0.01)  # each move at its own millisecond
    history = registry.history(MODEL)
    assert [c.to_version for c in history] == [1, 2, 1, 3, 1]

    assert "no version (first set at" in _answer("--at", before_first)
    for index, change in enumerate(history):
        at = _answer("--at", change.at)
        assert _held(at) == change.to_version
        assert f"revision {change.revision}" in at and change.reason in at
        before = _answer("--at", _shift(change.at, -1))
        assert _held(before) == (history[index - 1].to_version if index else None)
        after = _answer("--at", _shift(change.at, 1))
        assert _held(after) == change.to_version
    assert _held(_answer("--at", "2999-01-01")) == 1


def test_history_at_reads_offsets_and_takes_naive_times_as_utc(
    local: tuple[ModelRegistry, Any],
) -> None:
    registry, _ = local
    registry.put_version(_version(1))
    change = registry.promote(MODEL, 1, expected_current=None, reason="first")
    moment = datetime.fromisoformat(change.at)

    naive = moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
    assert _held(_answer("--at", naive)) == 1
    assert _held(_answer("--at", _shift(naive, -1))) is None
    east = timezone(timedelta(hours=2))
    assert _held(_answer("--at", moment.astimezone(east).isoformat())) == 1
    earlier = (moment - timedelta(milliseconds=1)).astimezone(east).isoformat()
    assert _held(_answer("--at", earlier)) is None


def test_history_at_a_bad_time_exits_2_naming_it(local: tuple[ModelRegistry, Any]) -> None:
    result = mlops("models", "history", "--at", "yesterday-ish")

    assert result.exit_code == 2
    assert "--at 'yesterday-ish' is not an ISO 8601 time" in result.output


def test_history_at_a_dropped_candidate_is_no_version(local: tuple[ModelRegistry, Any]) -> None:
    changes = [
        AliasChange(
            model_name=MODEL,
            alias="candidate",
            kind="promote",
            from_version=None,
            to_version=2,
            at="2026-01-01T00:00:00.000Z",
            reason="canary",
            revision=1,
        ),
        AliasChange(
            model_name=MODEL,
            alias="candidate",
            kind="drop",
            from_version=2,
            to_version=None,
            at="2026-01-02T00:00:00.000Z",
            reason="lost its test",
            revision=2,
        ),
    ]
    assert change_at(changes, datetime(2026, 1, 1, 12)) == changes[0]
    dropped = change_at(changes, datetime(2026, 1, 3, tzinfo=UTC))
    assert dropped is not None and dropped.to_version is None
    assert change_at(changes, datetime(2025, 12, 31, tzinfo=UTC)) is None


@pytest.fixture
def trained() -> tuple[bytes, dict[str, Any]]:
    onnx, signature = fit_churn(churn_frame(300, seed=2), {})
    return onnx, signature.to_dict()


def test_export_downloads_the_stored_mlflow_folder(
    local: tuple[ModelRegistry, Any], trained: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    registry, s3 = local
    onnx, signature = trained
    registry.put_version(_version(1, onnx))
    files = mlflow_files(onnx, signature, python_version="3.13.0", model_uuid="stored")
    for name, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/1/mlflow/{name}", Body=body)

    out = tmp_path / "exported"
    result = mlops("models", "export", "1", "--format", "mlflow", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert f"s3://{BUCKET}/models/{MODEL}/1/mlflow/" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_export_builds_the_folder_of_an_older_version(
    local: tuple[ModelRegistry, Any], trained: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    registry, s3 = local
    onnx, signature = trained
    registry.put_version(_version(1, onnx))
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/1/model.onnx", Body=onnx)
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/1/signature.json", Body=json.dumps(signature))

    out = tmp_path / "built"
    result = mlops("models", "export", "1", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "built from" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(MLFLOW_FILES)
    mlmodel = yaml.safe_load((out / "MLmodel").read_text())
    assert mlmodel["utc_time_created"] == "2026-01-01 12:00:00.000000"
    # The uuid the register stage would have given it.
    assert mlmodel["model_uuid"] == version_uuid(MODEL, 1, hashlib.sha256(onnx).hexdigest())
    # No reference profile: the example falls back on the signature's values.
    example = json.loads((out / "input_example.json").read_text())
    assert example["data"][0][0] == 0.0


def test_export_refuses_a_tampered_model_an_unknown_version_and_a_full_folder(
    local: tuple[ModelRegistry, Any], trained: tuple[bytes, dict[str, Any]], tmp_path: Path
) -> None:
    registry, s3 = local
    onnx, signature = trained
    registry.put_version(_version(1, onnx))
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/1/model.onnx", Body=onnx + b"x")
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/1/signature.json", Body=json.dumps(signature))

    tampered = mlops("models", "export", "1", "--out", str(tmp_path / "a"))
    assert tampered.exit_code == 1
    assert "was registered with" in " ".join(tampered.output.split())

    unknown = mlops("models", "export", "7", "--out", str(tmp_path / "b"))
    assert unknown.exit_code == 1 and "has no registered version 7" in unknown.output

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    refused = mlops("models", "export", "1", "--out", str(full))
    assert refused.exit_code == 1 and "is not an empty folder" in refused.output
    assert [p.name for p in full.iterdir()] == ["keep.txt"]

    bad = mlops("models", "export", "1", "--format", "pmml")
    assert bad.exit_code == 2 and "pmml" in bad.output
