"""The upgrade test: a stack deployed from the previous release (the git revision in
`upgrade_from.txt`, synthesized with its own code) runs drops, training, predictions, feedback
and a drift check; the stack is then updated in place to the current code
(`LocalCloud.update`, as CloudFormation would), `mlops migrate` runs, and the lifecycle goes
on: the old model serves the same predictions, its history is intact, a retraining takes the
old and the new data versions, the drift check reads the old and the new capture, and a batch
job the old release scored at `batch/{in,out}/<job>/` is moved under the model's folders,
where `mlops batch show` reads its manifest.

A release bumps `upgrade_from.txt` to itself."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.cli.deployed_template import DeployedTemplateError, synthesize_revision
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud
from tests.helpers.served import Served

pytestmark = pytest.mark.slow

UPGRADE_FROM = Path(__file__).with_name("upgrade_from.txt")
REPO = Path(__file__).resolve().parents[2]
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
STATEFUL = ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue")


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    frame = sample_data.churn_frame(count, seed=seed, first_id=7_000_000, duplicate_share=0.0)
    records = frame[FEATURES].astype(object).to_dict(orient="records")
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _post(cloud: LocalCloud, path: str, document: dict[str, Any]) -> dict[str, Any]:
    request = signed_request(
        cloud.api_url.rstrip("/") + path,
        "POST",
        json.dumps(document).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        body: dict[str, Any] = json.loads(response.read())
        return body


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    ).stdout.strip()


def _in_history(revision: str) -> bool:
    return bool(_git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"))


def _shallow_clone() -> bool:
    return _git("rev-parse", "--is-shallow-repository") == "true"


def _drift_window_rows(served: Served) -> int:
    time.sleep(1.1)  # the check's window ends a whole second before it starts
    served.cli("drift", "run", "--window-hours", "1")
    shown = json.loads(served.cli("drift", "show", "--json"))
    return int(shown["window"]["rows"])


OLD_JOB = "before-upgrade"


def _old_batch_job(cloud: LocalCloud, served: Served, rows: list[dict[str, Any]]) -> None:
    """A batch job as the previous release took it: files, then the `_START` marker, under
    `batch/in/<job>/`; waits for the job's manifest under `batch/out/<job>/`."""
    lines = "".join(json.dumps(row) + "\n" for row in rows).encode()
    served.s3.put_object(Bucket=served.bucket, Key=f"batch/in/{OLD_JOB}/rows.jsonl", Body=lines)
    served.s3.put_object(Bucket=served.bucket, Key=f"batch/in/{OLD_JOB}/_START", Body=b"")
    manifest = f"batch/out/{OLD_JOB}/manifest.json"
    deadline = time.monotonic() + 240
    while manifest not in served.keys(f"batch/out/{OLD_JOB}/"):
        assert time.monotonic() < deadline, "the previous release's batch job wrote no manifest"
        time.sleep(1)
    cloud.wait_idle(60)


def test_a_stack_of_the_previous_release_upgrades_in_place_and_keeps_serving(
    cdk_out: Path, tmp_path: Path
) -> None:
    revision = UPGRADE_FROM.read_text(encoding="utf-8").split()[0]
    old_out = tmp_path / "previous" / "cdk.out"
    if not _in_history(revision) and _shallow_clone():
        pytest.skip(
            f"this clone is shallow and lacks the pinned release {revision[:12]}: "
            "`git fetch --unshallow` (CI's checkout: fetch-depth 0) lets the upgrade test run"
        )
    try:
        synthesize_revision(revision, old_out, {"stage": "dev"})
    except DeployedTemplateError as exc:
        pytest.fail(str(exc), pytrace=False)
    state_dir = tmp_path / "state"
    rows = _rows(50, seed=71)

    with LocalCloud.start(old_out, mode="server", port=0, api_port=0, state_dir=state_dir) as cloud:
        served = Served(cloud, state_dir)
        # The previous release's lifecycle: a drop trained and promoted, predictions (their
        # capture), feedback on one of them, a drift check over the capture.
        first = cloud.drop(
            "raw/churn/first.csv",
            sample_data.encode(sample_data.churn_frame(2_000, seed=31)),
            timeout=240,
        )
        assert json.loads(first["output"])["status"] == "promoted"
        before = _post(cloud, "/v1/predict", {"instances": rows})
        feedback = {"request_id": before["request_id"], "row": 0, "label": "yes"}
        assert _post(cloud, "/v1/feedback", {"feedback": [feedback]})["stored"] == 1
        assert _drift_window_rows(served) == len(rows)
        _old_batch_job(cloud, served, rows)
        old_outputs = served.keys(f"batch/out/{OLD_JOB}/")
        history = served.cli("models", "history")
        runs = json.loads(served.cli("runs", "list", "--json"))
        assert cloud.deployment is not None
        stateful = {
            logical_id: resource.created.ref
            for logical_id, resource in cloud.deployment.resources.items()
            if resource.type in STATEFUL and resource.created is not None
        }
        feedback_keys = served.keys("feedback/")

        updated = cloud.update(cdk_out)

        changes = [resource.change for resource in updated.resources.values()]
        assert "updated" in changes and "kept" in changes
        # Every resource holding data is still the same one, with its data.
        for logical_id, physical_id in stateful.items():
            resource = updated.resources[logical_id]
            assert resource.change in ("kept", "updated", "recorded"), (logical_id, resource)
            assert updated.physical_id(logical_id) == physical_id
        assert served.keys("feedback/") == feedback_keys
        served.cli("migrate", "--local", "--apply")

        # The old batch job is under the model's folders now; its manifest reads as today's.
        assert served.keys(f"batch/in/{OLD_JOB}/") == [f"batch/in/{OLD_JOB}/_START"]
        assert served.keys(f"batch/out/{OLD_JOB}/") == []
        assert served.keys(f"batch/in/churn/{OLD_JOB}/") == [f"batch/in/churn/{OLD_JOB}/rows.jsonl"]
        assert served.keys(f"batch/out/churn/{OLD_JOB}/") == sorted(
            key.replace("batch/out/", "batch/out/churn/", 1) for key in old_outputs
        )
        job = json.loads(served.cli("batch", "show", OLD_JOB, "--json"))
        assert job["format_version"] == 2 and job["model_name"] == "churn"
        assert job["scored"] == len(rows)
        assert job["per_file"][0]["key"] == f"batch/in/churn/{OLD_JOB}/rows.jsonl"

        # The old model still serves, the same predictions, and its history is intact.
        after = _post(cloud, "/v1/predict", {"instances": rows})
        assert after["model_version"] == before["model_version"] == 1
        assert after["predictions"] == before["predictions"]
        np.testing.assert_allclose(after["probabilities"], before["probabilities"], atol=1e-6)
        assert served.cli("models", "history") == history
        assert json.loads(served.cli("runs", "list", "--json")) == runs

        # The drift check reads the capture of both releases.
        assert _drift_window_rows(served) == 2 * len(rows)

        # A retraining after a new drop trains on the old and the new data versions.
        second = cloud.drop(
            "raw/churn/second.csv",
            sample_data.encode(sample_data.churn_frame(1_000, seed=32, first_id=5_000_000)),
            timeout=240,
        )
        assert second["status"] == "SUCCEEDED", second.get("cause")
        assert model_outcome(json.loads(second["output"]))["status"] in ("promoted", "rejected")
        newest, *older = json.loads(served.cli("runs", "list", "--json"))
        assert older == runs
        assert len(newest["data_versions"]) == 2
        assert set(runs[0]["data_versions"]) < set(newest["data_versions"])
