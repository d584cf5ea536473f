"""`mlops data list|show|retire` against a moto server reached as the local cloud: a bad data
version is retired (who, why, when recorded in the registry) and append-mode training leaves
it out, while its curated and raw files stay where they are."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.adapters.datasets import DatasetRegistry
from functions.common.config.dataset import DatasetMode
from functions.common.contracts import SourceObject
from functions.train import logic as train_logic
from functions.train.logic import training_versions
from infra.cli.main import app
from tests.helpers.cloud import create_data_bucket, create_registry_table
from tests.helpers.datasets import dataset_ref

BUCKET = "mlops-dev-data"
TABLE = "mlops-dev-registry"
VERSIONS = ("aaaa000011112222", "bbbb000011112222", "cccc000011112222")


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def datasets(local_state: Any) -> DatasetRegistry:
    """Three registered versions of `churn`, oldest first."""
    local_state.write_outputs({"DataBucketName": BUCKET, "RegistryTableName": TABLE})
    dynamodb = boto3.client("dynamodb", endpoint_url=local_state.endpoint, region_name="us-east-1")
    create_registry_table(dynamodb, TABLE)
    s3 = boto3.client("s3", endpoint_url=local_state.endpoint, region_name="us-east-1")
    create_data_bucket(s3, BUCKET, versioned=False)
    registry = DatasetRegistry(TABLE, dynamodb)
    for day, version in enumerate(VERSIONS, start=1):
        registry.register_version(
            dataset_ref(
                version,
                SourceObject(bucket=BUCKET, key=f"raw/churn/drop-{day}.csv"),
                created_at=f"2026-11-0{day}T00:00:00.000Z",
                rows=100 * day,
            ),
            code_version="test",
        )
    return registry


def test_a_retired_version_is_listed_as_retired_and_left_out_of_training(
    datasets: DatasetRegistry,
) -> None:
    bad = VERSIONS[1]

    retired = mlops("data", "retire", bad, "--reason", "labels 'Yes ' beside 'yes'")

    assert retired.exit_code == 0, retired.output
    assert f"retired {bad}" in retired.output
    listed = mlops("data", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {row["data_version"]: row for row in json.loads(listed.stdout)}
    assert list(rows) == list(reversed(VERSIONS))  # newest first
    assert rows[bad]["retired"]["reason"] == "labels 'Yes ' beside 'yes'"
    assert rows[bad]["retired"]["by"].startswith("cli")
    assert rows[bad]["retired"]["at"].endswith("Z")
    assert rows[VERSIONS[0]]["retired"] is None
    shown = mlops("data", "show", bad)
    assert shown.exit_code == 0, shown.output
    assert "retired" in shown.output and "labels 'Yes ' beside 'yes'" in shown.output
    assert "raw/churn/drop-2.csv" in shown.output

    trigger, versions = training_versions(
        datasets.list_versions("churn"), DatasetMode.APPEND, VERSIONS[2]
    )
    assert [v.data_version for v in versions] == [VERSIONS[0], VERSIONS[2]]
    with pytest.raises(train_logic.DataVersionRetiredError, match="labels 'Yes ' beside 'yes'"):
        training_versions(datasets.list_versions("churn"), DatasetMode.APPEND, bad)


def test_retiring_needs_a_reason_and_a_known_version(datasets: DatasetRegistry) -> None:
    unknown = mlops("data", "retire", "ffff000011112222", "--reason", "bad")
    assert unknown.exit_code == 1
    assert "ffff000011112222" in unknown.output and "not registered" in unknown.output

    no_reason = mlops("data", "retire", VERSIONS[0])
    assert no_reason.exit_code == 2

    mlops("data", "retire", VERSIONS[0], "--reason", "first")
    again = mlops("data", "retire", VERSIONS[0], "--reason", "second")
    assert again.exit_code == 1
    assert "already retired" in again.output and "first" in again.output


def test_data_commands_act_on_the_dataset_of_the_model_named(
    datasets: DatasetRegistry, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.config import PORTFOLIO

    config = tmp_path / "mlops.toml"
    config.write_text(PORTFOLIO + '\n[train]\ncode = "model_code"\n')
    (tmp_path / "model_code").mkdir()
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    prices = "dddd000011112222"
    datasets.register_version(
        dataset_ref(
            prices,
            SourceObject(bucket=BUCKET, key="raw/prices/listings.csv"),
            created_at="2026-11-05T00:00:00.000Z",
            dataset="prices",
        ),
        code_version="test",
    )

    listed = mlops("data", "list", "--model", "prices", "--json")
    default = mlops("data", "list", "--json")  # the default model, churn-lgbm: dataset churn
    retired = mlops("data", "retire", prices, "--model", "prices", "--reason", "bad prices")

    assert listed.exit_code == 0, listed.output
    assert [row["data_version"] for row in json.loads(listed.stdout)] == [prices]
    assert [row["data_version"] for row in json.loads(default.stdout)] == list(reversed(VERSIONS))
    assert retired.exit_code == 0, retired.output
    assert datasets.get_version("prices", prices).retired is not None
    unknown = mlops("data", "list", "--model", "fraud")
    assert unknown.exit_code == 2 and "churn, churn-lgbm, prices" in unknown.output
