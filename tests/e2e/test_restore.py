"""`mlops restore --registry` on the local cloud, up to the switch: the deployed registry table
(point-in-time recovery on, as the template has it) is restored into a new table holding its
items, with recovery and time to live set, the table in use untouched, and the command says the
local cloud cannot switch a running stack. Moto restores the items as they are when asked, so
the choice of the point in time is not exercised here; the switch is exercised by synthesis
(tests/infra/test_registry_restore.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from infra.local import LocalCloud
from tests.helpers.served import mlops

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("restore") / "state"


@pytest.fixture(scope="module")
def cloud(cdk_out: Path, state_dir: Path) -> Iterator[LocalCloud]:
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as started:
        yield started


def _items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table)
    items = [item for page in pages for item in page["Items"]]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def test_the_deployed_registry_is_restored_into_a_new_table_and_not_switched(
    cloud: LocalCloud, state_dir: Path
) -> None:
    dynamodb = cloud.client("dynamodb")
    table = cloud.outputs["RegistryTableName"]
    ModelRegistry(table, dynamodb).put_run(
        {
            "run_id": "20261202T063000Z-4f9a2c",
            "model_name": "churn",
            "status": "evaluated",
            "started_at": "2026-12-02T06:30:00.000Z",
        }
    )
    before = _items(dynamodb, table)

    result = mlops(state_dir, "restore", "--registry", "--to", "latest")

    [restored] = [name for name in dynamodb.list_tables()["TableNames"] if name != table]
    assert restored.startswith(f"{table}-restored-")
    assert _items(dynamodb, restored) == before and before
    recovery = dynamodb.describe_continuous_backups(TableName=restored)
    status = recovery["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert status["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=restored)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert _items(dynamodb, table) == before
    assert cloud.outputs["RegistryTableName"] == table
    output = " ".join(result.stdout.split())
    assert f'registry_table = "{restored}"' in output
    assert "The local cloud cannot switch a running stack" in output
