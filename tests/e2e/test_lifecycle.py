"""The lifecycle on the local cloud through the real state machine: a first drop is trained
and promoted, a second good drop promotes v2, rollback moves the alias back, a drop whose
model is worse is rejected with `production` unchanged, and a retrain by data version works
without a new drop. Every step's OpenLineage events are valid against the spec, and they lead
from a model version back to the raw objects it was trained on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.cli.main import app
from infra.local import LocalCloud
from infra.local.synth import synthesize
from tests.helpers.config import ABSOLUTE_GATE, repo_config
from tests.helpers.openlineage import stored_events

REPO_ROOT = Path(__file__).resolve().parents[2]


def _config(tmp: Path) -> Path:
    """The repo's config, with a gate of absolute thresholds only."""
    path = tmp / "mlops.toml"
    path.write_text(repo_config(gate=ABSOLUTE_GATE))
    return path


def _noisy(rows: int, seed: int) -> bytes:
    """Churn rows whose labels were shuffled: no model can learn them."""
    frame = sample_data.churn_frame(rows, seed=seed, first_id=900_000)
    rng = np.random.default_rng(seed)
    frame[sample_data.TARGET] = rng.permutation(frame[sample_data.TARGET].to_numpy())
    return sample_data.encode(frame)


class Lifecycle:
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.bucket = cloud.outputs["DataBucketName"]
        self.registry = ModelRegistry(cloud.outputs["RegistryTableName"], cloud.client("dynamodb"))
        self.s3 = cloud.client("s3")
        self.steps: dict[str, dict[str, Any]] = {}

    def drop(self, step: str, key: str, body: bytes) -> dict[str, Any]:
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        name = self.cloud.execution_name_for_object(
            self.bucket, key, put.get("VersionId"), put["ETag"]
        )
        return self._finish(step, self.cloud.wait_for_execution(name, timeout=300))

    def cli(self, *args: str) -> str:
        """`mlops ...` against this cloud, as a user runs it from another shell."""
        result = CliRunner().invoke(
            app, [*args, "--state-dir", str(self.state_dir)], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, result.output
        return result.output

    def retrain(self, step: str, data_version: str) -> dict[str, Any]:
        self.steps[f"{step}_cli"] = {
            "output": self.cli("runs", "start", "--data-version", data_version, "--reason", "e2e")
        }
        (execution,) = [e for e in self.cloud.executions() if e["name"].startswith("retrain-")]
        return self._finish(step, self.cloud.wait_for_execution(execution["executionArn"], 300))

    def _finish(self, step: str, described: dict[str, Any]) -> dict[str, Any]:
        output = json.loads(described.get("output") or "{}")
        alias = self.registry.get_alias("churn")
        self.steps[step] = {
            "status": described["status"],
            "output": output,
            "outcome": model_outcome(output, "churn") if "models" in output else {},
            "alias": alias.version if alias else None,
        }
        return self.steps[step]


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    config = _config(tmp)
    previous = os.environ.get("MLOPS_CONFIG")
    os.environ["MLOPS_CONFIG"] = str(config)
    try:
        synthesize(REPO_ROOT, tmp / "cdk.out")
    finally:
        if previous is None:
            os.environ.pop("MLOPS_CONFIG")
        else:
            os.environ["MLOPS_CONFIG"] = previous
    state_dir = tmp / "state"
    with LocalCloud.start(tmp / "cdk.out", mode="server", port=0, state_dir=state_dir) as cloud:
        run = Lifecycle(cloud, state_dir)
        first = sample_data.encode(sample_data.churn_frame(2_000, seed=21))
        second = sample_data.encode(sample_data.churn_frame(3_000, seed=22, first_id=10_000))
        run.drop("first", "raw/churn/first.csv", first)
        run.drop("second", "raw/churn/second.csv", second)
        run.steps["rollback"] = {
            "output": run.cli("models", "rollback", "--reason", "e2e: v2 misbehaves"),
            "alias": run.registry.get_alias("churn").version,  # type: ignore[union-attr]
        }
        run.drop("worse", "raw/churn/noisy.csv", _noisy(12_000, seed=23))
        second_version = run.steps["second"]["output"]["dataset"]["data_version"]
        run.retrain("retrain", second_version)
        run.steps["notifications"] = {"sent": cloud.sent_notifications()}
        yield run


def test_first_drop_is_trained_registered_and_promoted(lifecycle: Lifecycle) -> None:
    first = lifecycle.steps["first"]
    assert first["status"] == "SUCCEEDED"
    output = first["outcome"]
    assert output["status"] == "promoted"
    assert output["registered"]["version"] == 1
    assert output["registered"]["promoted"] is True
    assert output["evaluation"]["champion_version"] is None
    assert output["evaluation"]["metrics"]["roc_auc"] >= 0.75
    assert first["alias"] == 1
    card_key = output["registered"]["model_card_key"]
    card = lifecycle.s3.get_object(Bucket=lifecycle.bucket, Key=card_key)
    html = card["Body"].read().decode()
    assert "<svg" in html and "roc_auc" in html
    listed = lifecycle.s3.list_objects_v2(Bucket=lifecycle.bucket, Prefix="models/churn/1/")
    names = {item["Key"].rsplit("/", 1)[-1] for item in listed["Contents"]}
    assert {"model.onnx", "metadata.json", "reference_profile.json", "signature.json"} <= names


def test_second_good_drop_is_judged_against_the_champion_and_promoted(
    lifecycle: Lifecycle,
) -> None:
    second = lifecycle.steps["second"]
    evaluation = second["outcome"]["evaluation"]
    assert evaluation["champion_version"] == 1
    assert evaluation["champion_metrics"]["roc_auc"] > 0.7
    assert (
        second["outcome"]["training"]["data_versions"][0]
        == (lifecycle.steps["first"]["output"]["dataset"]["data_version"])
    ), "append mode trains on every good version so far"
    assert second["outcome"]["registered"]["version"] == 2
    assert second["alias"] == 2
    # Its card draws its importances beside the champion's (read from version 1's profile),
    # and model_card.json sits beside it.
    card = lifecycle.s3.get_object(Bucket=lifecycle.bucket, Key="reports/churn/2/model_card.html")
    html = card["Body"].read().decode()
    assert '<section id="importance">' in html and 'class="bar champion"' in html
    document = json.loads(
        lifecycle.s3.get_object(Bucket=lifecycle.bucket, Key="reports/churn/2/model_card.json")[
            "Body"
        ].read()
    )
    assert document["model_details"]["version"]["name"] == "2"
    assert document["quantitative_analysis"]["performance_metrics"]


def test_rollback_moves_the_alias_back_and_is_recorded(lifecycle: Lifecycle) -> None:
    assert lifecycle.steps["rollback"]["alias"] == 1
    history = lifecycle.registry.history("churn")
    kinds = [(change.kind, change.from_version, change.to_version) for change in history]
    assert ("rollback", 2, 1) in kinds
    (rollback,) = [change for change in history if change.kind == "rollback"]
    assert rollback.reason == "e2e: v2 misbehaves"
    shown = lifecycle.cli("models", "history")
    assert "rollback" in shown and "e2e: v2 misbehaves" in shown


def test_worse_model_is_rejected_and_production_is_unchanged(lifecycle: Lifecycle) -> None:
    worse = lifecycle.steps["worse"]
    assert worse["status"] == "SUCCEEDED"
    assert worse["outcome"]["status"] == "rejected"
    assert worse["outcome"]["evaluation"]["passed"] is False
    assert any("roc_auc" in failed for failed in worse["outcome"]["evaluation"]["failed"])
    assert "registered" not in worse["outcome"]
    assert worse["alias"] == 1
    rejections = [
        json.loads(n["Message"])
        for n in lifecycle.steps["notifications"]["sent"]
        if "rejected" in (n["Subject"] or "")
    ]
    assert len(rejections) == 1
    assert rejections[0]["failed_criteria"] == worse["outcome"]["evaluation"]["failed"]
    assert rejections[0]["model"] == "churn"


def test_retrain_by_data_version_runs_without_a_new_drop(lifecycle: Lifecycle) -> None:
    retrain = lifecycle.steps["retrain"]
    assert retrain["status"] == "SUCCEEDED"
    assert "dataset" not in retrain["output"], "no ingest ran"
    output = retrain["outcome"]
    training = output["training"]
    second = lifecycle.steps["second"]["outcome"]["training"]
    assert training["data_version"] == second["data_version"]
    assert training["data_versions"] == second["data_versions"], "the noisy drop came later"
    assert output["status"] == "promoted"
    assert output["registered"]["version"] == 3
    assert retrain["alias"] == 3
    printed = lifecycle.steps["retrain_cli"]["output"]
    assert "promoted" in printed and "production is now version 3" in printed


def test_lineage_leads_from_a_version_back_to_the_raw_objects_it_was_trained_on(
    lifecycle: Lifecycle,
) -> None:
    events = stored_events(lifecycle.s3, lifecycle.bucket)
    runs: dict[str, list[str]] = {}
    for event in events:
        runs.setdefault(event["run"]["runId"], []).append(event["eventType"])
    for kinds in runs.values():  # one START and one end per run
        assert sorted(kinds) in (["COMPLETE", "START"], ["FAIL", "START"]), kinds
    jobs = {e["job"]["name"] for e in events}
    assert {"ingest.churn", "churn.train", "churn.evaluate", "churn.register"} <= jobs
    completed = [e for e in events if e["eventType"] == "COMPLETE"]

    def made(name: str) -> dict[str, Any]:
        """The one completed run that wrote dataset `name`."""
        (run,) = [e for e in completed if name in {d["name"] for d in e["outputs"]}]
        return run

    register = made("models/churn/2/")
    assert register["job"]["name"] == "churn.register"
    (run,) = register["inputs"]
    train = made(run["name"])
    assert train["job"]["name"] == "churn.train"
    # Both steps name the same pipeline execution as their parent run.
    parents = {e["run"]["facets"]["parent"]["run"]["runId"] for e in (register, train)}
    assert len(parents) == 1
    raw = {}
    for curated in train["inputs"]:
        assert curated["facets"]["schema"]["fields"], "the manifest's columns"
        ingest = made(curated["name"])
        assert ingest["job"]["name"] == "ingest.churn"
        (source,) = ingest["inputs"]
        raw[source["name"]] = source["facets"]["version"]["datasetVersion"]
    sources = {
        step: lifecycle.steps[step]["output"]["dataset"]["source"] for step in ("first", "second")
    }
    assert raw == {s["key"]: s["version_id"] for s in sources.values()}
    # The rejected candidate was evaluated, never registered.
    worse = lifecycle.steps["worse"]["outcome"]["training"]["run_prefix"]
    assert made(worse)["job"]["name"] == "churn.train"
    registered = [e for e in completed if e["job"]["name"] == "churn.register"]
    assert worse not in {d["name"] for e in registered for d in e["inputs"]}
