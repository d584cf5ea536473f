"""Batch inference on the local cloud, deployed from the synthesized app: a promoted model, a
job of 10 files (CSV, CSV.gz, Parquet, JSON Lines; one with bad rows) scored by the batch
state machine's Distributed Map (items read from S3 by moto's ItemReader, each a row range),
then checked: a prediction for every good row, a reject with its reason for every bad row,
manifest counts that add up, and the same predictions as the online endpoint."""

from __future__ import annotations

import io
import json
import math
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from functions.ml import sample_data
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud
from tests.helpers.openlineage import stored_events
from tests.helpers.served import Served, serving_first_model

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
ROWS_PER_FILE = 1_300
# The job's files, part-00 to part-09, by format.
FORMATS = [
    "jsonl",
    "csv",
    "csv",
    "csv.gz",
    "parquet",
    "parquet",
    "jsonl",
    "csv",
    "parquet",
    "jsonl",
]
BATCH = """
[batch]
max_concurrency = 3
rows_per_item = 1000
tolerated_failure_percentage = 0
"""


def _config_text() -> str:
    text = (REPO_ROOT / "mlops.toml").read_text()
    text = text.replace(
        "capture_sample_rate = 1.0", 'capture_sample_rate = 0.0\nunseen_categories = "reject"'
    )
    return text.split("\n[batch]")[0] + BATCH


def _frame(index: int) -> pd.DataFrame:
    frame = sample_data.churn_frame(ROWS_PER_FILE, seed=500 + index, duplicate_share=0.0)
    return frame[["customer_id", *FEATURES]]


# Rows 3, 10, 11, 12, 40 and 41 of the bad JSON Lines file, and what is wrong with each.
BAD_ROWS = {
    3: ("age", "invalid_type"),
    10: ("monthly_charges", "missing_feature"),
    11: ("contract", "unseen_category"),
    12: (None, "empty_row"),
    40: (None, "malformed_json"),
    41: ("support_calls", "invalid_type"),
}


def _bad_jsonl(frame: pd.DataFrame) -> bytes:
    lines = frame.to_json(orient="records", lines=True).splitlines()
    records = [json.loads(line) for line in lines]
    records[3]["age"] = "forty"
    del records[10]["monthly_charges"]
    records[11]["contract"] = "lifetime"
    records[41]["support_calls"] = True
    out = [json.dumps(record) for record in records]
    out[12] = ""
    out[40] = '{"age": 41, "tenure'
    return ("\n".join(out) + "\n").encode()


def _job_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for index, file_format in enumerate(FORMATS):
        frame = _frame(index)
        name = f"part-{index:02d}.{file_format}"
        files[name] = _bad_jsonl(frame) if index == 0 else sample_data.encode(frame, file_format)
    return files


class Job(Served):
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        super().__init__(cloud, state_dir)
        self.run_output, self.run_code = "", 0

    def predict_online(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        request = signed_request(
            self.cloud.api_url.rstrip("/") + "/v1/predict",
            "POST",
            json.dumps({"instances": rows}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))


@pytest.fixture(scope="module")
def job(
    synth_with_config: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Job]:
    with serving_first_model(synth_with_config(_config_text()), Job) as handle:
        folder = tmp_path_factory.mktemp("job")
        for name, body in _job_files().items():
            (folder / name).write_bytes(body)
        handle.run_output = handle.cli(
            "batch", "run", str(folder), "--job", "e2e", "--wait", code=None
        )
        handle.run_code = handle.exit_code
        yield handle


def _manifest(job: Job) -> dict[str, Any]:
    return dict(json.loads(job.get("batch/out/churn/e2e/manifest.json")))


def _predictions(job: Job) -> pd.DataFrame:
    keys = [k for k in job.keys("batch/out/churn/e2e/") if k.endswith(".parquet")]
    return pd.concat([pd.read_parquet(io.BytesIO(job.get(k))) for k in keys], ignore_index=True)


def _rejects(job: Job) -> list[dict[str, Any]]:
    keys = job.keys("batch/out/churn/e2e/rejects/")
    return [json.loads(line) for k in keys for line in job.get(k).splitlines() if line.strip()]


def test_the_manifest_counts_add_up(job: Job) -> None:
    manifest = _manifest(job)

    assert manifest["files"] == 10 and manifest["model_version"] == 1
    assert manifest["rows"] == 10 * ROWS_PER_FILE
    assert manifest["rejected"] == len(BAD_ROWS)
    assert manifest["rows"] == manifest["scored"] + manifest["rejected"] + manifest["not_scored"]
    assert manifest["not_scored"] == 0 and manifest["failed_items"] == []
    # 1,300 rows per file and 1,000 rows per item: every file is two row ranges.
    assert manifest["items"] == 20
    for file in manifest["per_file"]:
        assert file["rows"] == file["scored"] + file["rejected"] + file["not_scored"]
        assert file["items"] == 2
    assert sum(manifest["rejects_by_error"].values()) == len(BAD_ROWS)
    assert manifest["timings"]["rows_per_second"] > 0


def test_the_job_is_one_openlineage_run_from_its_folder_to_its_outputs(job: Job) -> None:
    events = [
        e
        for e in stored_events(job.s3, job.bucket, "churn.batch")
        if "batch/in/churn/e2e/" in {d["name"] for d in e["inputs"]}
    ]
    assert sorted(e["eventType"] for e in events) == ["COMPLETE", "START"]
    assert len({e["run"]["runId"] for e in events}) == 1, "plan and finalize name one run"
    (complete,) = [e for e in events if e["eventType"] == "COMPLETE"]
    assert [d["name"] for d in complete["outputs"]] == ["batch/out/churn/e2e/"]
    assert "models/churn/1/" in {d["name"] for d in complete["inputs"]}
    assert complete["run"]["facets"]["nominalTime"]["nominalStartTime"]
    assert complete["run"]["facets"]["parent"]["job"]["name"]


def test_every_good_row_has_exactly_one_prediction(job: Job) -> None:
    predictions = _predictions(job)

    expected = {
        (f"batch/in/churn/e2e/part-{index:02d}.{ext}", row)
        for index, ext in enumerate(FORMATS)
        for row in range(ROWS_PER_FILE)
        if not (index == 0 and row in BAD_ROWS)
    }
    got = list(zip(predictions["input_key"], predictions["row"], strict=True))
    assert len(got) == len(set(got)) and set(got) == expected
    assert set(predictions["model_version"]) == {1}
    assert set(predictions["prediction"]) <= {"no", "yes"}
    total = predictions["probability_no"] + predictions["probability_yes"]
    assert np.allclose(total, 1.0)


def test_every_bad_row_is_rejected_with_its_reason(job: Job) -> None:
    rejects = _rejects(job)

    found = {reject["row"]: (reject["field"], reject["error"]) for reject in rejects}
    assert found == BAD_ROWS
    assert {reject["input_key"] for reject in rejects} == {"batch/in/churn/e2e/part-00.jsonl"}
    by_row = {reject["row"]: reject for reject in rejects}
    assert "must be a number" in by_row[3]["reason"]
    assert "'lifetime'" in by_row[11]["reason"]
    assert "monthly_charges" in by_row[10]["reason"]


def test_predictions_equal_the_online_endpoints(job: Job) -> None:
    predictions = _predictions(job).set_index(["input_key", "row"])
    for index, ext in ((1, "csv"), (3, "csv.gz"), (4, "parquet"), (6, "jsonl")):
        frame = _frame(index).iloc[:200]
        rows = [
            {k: None if isinstance(v, float) and math.isnan(v) else _plain(v) for k, v in r.items()}
            for r in frame[FEATURES].astype(object).to_dict(orient="records")
        ]
        online = job.predict_online(rows)
        batch = (
            predictions.loc[f"batch/in/churn/e2e/part-{index:02d}.{ext}"].sort_index().iloc[:200]
        )
        assert list(batch["prediction"]) == online["predictions"]
        online_yes = [p[online["classes"].index("yes")] for p in online["probabilities"]]
        assert np.allclose(batch["probability_yes"], online_yes, atol=1e-6)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def test_batch_show_prints_the_manifest_and_rejects(job: Job) -> None:
    shown = job.cli("batch", "show", "e2e")

    assert "part-00.jsonl" in shown
    assert "invalid_type" in shown and "unseen_category" in shown


def test_a_start_marker_starts_a_job_on_its_folder(job: Job) -> None:
    body = sample_data.encode(_frame(20), "csv")
    job.s3.put_object(Bucket=job.bucket, Key="batch/in/churn/marker/only.csv", Body=body)
    job.s3.put_object(Bucket=job.bucket, Key="batch/in/churn/marker/_START", Body=b"")
    arn = job.cloud.outputs["BatchStateMachineArn"]

    executions = job.cloud.wait_for_executions(2, timeout=180, state_machine_arn=arn)

    [started] = [e for e in executions if "marker/_START" in e["input"]]
    assert started["status"] == "SUCCEEDED"
    manifest = json.loads(job.get("batch/out/churn/marker/manifest.json"))
    assert manifest["files"] == 1 and manifest["scored"] == ROWS_PER_FILE


def test_a_failed_item_beyond_the_tolerance_fails_the_job_after_a_manifest_and_an_alert(
    job: Job,
) -> None:
    good = sample_data.encode(_frame(30), "parquet")
    # Damaged data pages, intact footer: the plan counts the rows, scoring the item fails.
    damaged = good[:4] + bytes(len(good) // 2 - 4) + good[len(good) // 2 :]
    job.s3.put_object(
        Bucket=job.bucket,
        Key="batch/in/churn/broken/ok.csv",
        Body=sample_data.encode(_frame(31), "csv"),
    )
    job.s3.put_object(Bucket=job.bucket, Key="batch/in/churn/broken/damaged.parquet", Body=damaged)
    alerts_before = len(job.cloud.sent_notifications())

    output = job.cli("batch", "run", "batch/in/churn/broken/", "--wait", code=1)

    manifest = json.loads(job.get("batch/out/churn/broken/manifest.json"))
    assert manifest["status"] == "failed"
    assert manifest["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    assert {item["key"] for item in manifest["failed_items"]} == {
        "batch/in/churn/broken/damaged.parquet"
    }
    assert manifest["not_scored"] == ROWS_PER_FILE
    assert manifest["rows"] == manifest["scored"] + manifest["rejected"] + manifest["not_scored"]
    assert "failed: the map failed (States.ExceedToleratedFailureThreshold)" in " ".join(
        output.split()
    )
    assert len(job.cloud.sent_notifications()) == alerts_before + 1


def test_a_job_with_rejected_rows_is_partial_says_why_and_exits_3(job: Job) -> None:
    manifest = _manifest(job)

    assert manifest["status"] == "partial"
    assert manifest["status_reason"] == (
        "6 of 13,000 rows rejected (share 0.0462% <= max_rejected_share 10%)"
    )
    assert job.run_code == 3
    assert "partial" in job.run_output
    shown = job.cli("batch", "show", "e2e")
    assert "partial: 6 of 13,000 rows rejected" in " ".join(shown.split())


def _put_job(job: Job, name: str, frame: pd.DataFrame) -> None:
    body = sample_data.encode(frame, "csv")
    job.s3.put_object(Bucket=job.bucket, Key=f"batch/in/churn/{name}/rows.csv", Body=body)


def test_a_job_that_scores_no_row_fails_says_why_and_alerts(job: Job) -> None:
    # A producer's file without one of the model's features: every row is rejected.
    _put_job(job, "nothing", _frame(40).iloc[:58].drop(columns=["monthly_charges"]))
    alerts_before = len(job.cloud.sent_notifications())

    output = job.cli("batch", "run", "batch/in/churn/nothing/", "--wait", code=1)

    manifest = json.loads(job.get("batch/out/churn/nothing/manifest.json"))
    assert manifest["status"] == "failed"
    assert manifest["scored"] == 0 and manifest["rejected"] == 58
    assert manifest["status_reason"] == (
        "no row was scored: 58 of 58 rows rejected (missing_feature 58)"
    )
    assert "no row was scored" in " ".join(output.split())
    alerts = job.cloud.sent_notifications()[alerts_before:]
    assert len(alerts) == 1 and "no row was scored" in alerts[0]["Message"]
    shown = " ".join(job.cli("batch", "show", "nothing").split())
    assert "failed: no row was scored" in shown


def test_a_job_rejecting_more_than_max_rejected_share_fails(job: Job) -> None:
    frame = _frame(41).iloc[:100].astype({"age": object})
    frame.loc[frame.index[:30], "age"] = "forty"
    _put_job(job, "mostly-bad", frame)

    job.cli("batch", "run", "batch/in/churn/mostly-bad/", "--wait", code=1)

    manifest = json.loads(job.get("batch/out/churn/mostly-bad/manifest.json"))
    assert manifest["status"] == "failed"
    assert manifest["scored"] == 70 and manifest["rejected"] == 30
    assert manifest["status_reason"] == (
        "30 of 100 rows rejected (share 30% > max_rejected_share 10%)"
    )
