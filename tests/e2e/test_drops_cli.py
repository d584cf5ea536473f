"""`mlops drops` on the local cloud: every drop under raw/ with what became of it, newest
first, as an operator sees it after the fact: an ingested version, a duplicate of one, a
quarantined file with its reason, an execution that failed with its error (no stack trace)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from functions.adapters.datasets import DatasetRegistry
from functions.ml import sample_data
from infra.cli.main import app
from infra.local import LocalCloud, faults

pytestmark = pytest.mark.slow

CURATED_DATA = r"/curated/churn/[0-9a-f]+/data\.parquet"
# What a stack trace leaks: Python's traceback, Lambda's stackTrace, the function's files.
LEAKS = ("Traceback", "stackTrace", "/var/task", "/tmp/", ".py", 'File "')


class Drops:
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.datasets = DatasetRegistry(
            cloud.outputs["RegistryTableName"], cloud.client("dynamodb")
        )

    def cli(self, *args: str, code: int = 0, columns: int = 200) -> str:
        result = CliRunner().invoke(
            app,
            [*args, "--state-dir", str(self.state_dir)],
            env={"COLUMNS": str(columns)},
            catch_exceptions=False,
        )
        assert result.exit_code == code, result.output
        return result.stdout


@pytest.fixture(scope="module")
def drops(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drops]:
    state_dir = tmp_path_factory.mktemp("drops") / "state"
    good = sample_data.encode(sample_data.churn_frame(1_500, seed=51, first_id=510_000))
    bad = sample_data.bad_files()["missing_target.csv"]
    with (
        LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as cloud,
        faults.shorter_retry_waits(0.02),
    ):
        assert cloud.drop("raw/churn/a-good.csv", good, timeout=240)["status"] == "SUCCEEDED"
        assert cloud.drop("raw/churn/b-again.csv", good, timeout=240)["status"] == "SUCCEEDED"
        assert cloud.drop("raw/churn/c-bad.csv", bad, timeout=240)["status"] == "FAILED"
        failing = sample_data.encode(sample_data.churn_frame(1_500, seed=52, first_id=520_000))
        with faults.inject("s3.PutObject", "InternalError", match=CURATED_DATA):
            failed = cloud.drop("raw/churn/d-fails.csv", failing, timeout=240)
        assert failed["status"] == "FAILED"
        yield Drops(cloud, state_dir)


def test_drops_list_shows_every_outcome_newest_first(drops: Drops) -> None:
    listed = json.loads(drops.cli("drops", "list", "--json"))

    assert [d["key"] for d in listed] == [
        "raw/churn/d-fails.csv",
        "raw/churn/c-bad.csv",
        "raw/churn/b-again.csv",
        "raw/churn/a-good.csv",
    ]
    failed, bad, again, good = listed
    assert good["outcome"] == "ingested" and good["data_version"]
    registered = drops.datasets.get_version("churn", good["data_version"])
    assert registered is not None and good["rows"] == registered.rows
    assert again["outcome"] == "duplicate"
    assert again["data_version"] == good["data_version"]
    assert bad["outcome"] == "quarantined"
    assert bad["reason"] == "missing_target"
    assert "target" in bad["message"]
    assert failed["outcome"] == "failed"
    assert failed["error"] == "StorageError"
    assert "InternalError" in failed["message"]
    for drop in listed:
        assert drop["execution"], drop
        assert not any(leak in json.dumps(drop) for leak in LEAKS), drop

    table = drops.cli("drops", "list", columns=80)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in table
    names = ("d-fails", "c-bad", "b-again", "a-good")
    order = [next(i for i, line in enumerate(lines) if name in line) for name in names]
    assert order == sorted(order), "newest first"
    for word in ("failed", "quarantined", "duplicate", "ingested", "missing_target"):
        assert word in table
    assert "StorageError" in table


def test_drops_show_names_the_error_without_a_stack_trace(drops: Drops) -> None:
    shown = drops.cli("drops", "show", "raw/churn/d-fails.csv")

    assert "failed" in shown and "StorageError" in shown and "InternalError" in shown
    assert not any(leak in shown for leak in LEAKS), shown
    quarantined = json.loads(drops.cli("drops", "show", "raw/churn/c-bad.csv", "--json"))
    assert quarantined["outcome"] == "quarantined"
    assert quarantined["reason_record"]["code"] == "missing_target"

    missing = CliRunner().invoke(
        app, ["drops", "show", "raw/churn/nothing.csv", "--state-dir", str(drops.state_dir)]
    )
    assert missing.exit_code == 1
    assert "no drop raw/churn/nothing.csv" in missing.output


@pytest.mark.parametrize(
    ("key", "error", "says"),
    [
        ("raw/churn/d-fails.csv", "StorageError", "InternalError"),
        ("raw/churn/c-bad.csv", "DataValidationError", "The target column 'churned' is missing"),
    ],
)
def test_execution_cause_and_alert_carry_the_error_type_and_message_only(
    drops: Drops, key: str, error: str, says: str
) -> None:
    execution = json.loads(drops.cli("drops", "show", key, "--json"))["execution"]
    described = drops.cloud.client("stepfunctions").describe_execution(executionArn=execution)
    alerts = [json.loads(sent["Message"]) for sent in drops.cloud.sent_notifications()]
    [alert] = [a for a in alerts if a.get("execution") == execution and "error" in a]

    assert described["error"] == alert["error"] == error
    for cause in (described["cause"], alert["cause"]):
        assert says in cause and "errorType" not in cause, cause
        assert not any(leak in cause for leak in LEAKS), cause
