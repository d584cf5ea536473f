"""`mlops drift ...` against a moto server reached as the local cloud (outputs.json +
stack.json written by `mlops local up`): checks stored in the data bucket the way the drift
function stores them, and the drift function's failures as the CLI reports them."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.main import app
from infra.local import lambda_runtime
from tests.helpers.config import CHALLENGER, with_challenger

REPO = Path(__file__).resolve().parents[3]
BUCKET = "mlops-dev-data"
MODEL = "churn"
OLDER, LATEST = "20261126T013000Z-aa11bb", "20261127T013000Z-cc22dd"
FUNCTION = "mlops-dev-drift"
FAILING_HANDLER = """
class WindowUnreadableError(Exception):
    pass


def handler(event, context):
    raise WindowUnreadableError("captures/churn/2026/11/27/part-0.jsonl.gz: not gzip")
"""
# Replies as the drift function's contract says; the check id carries the window it was asked
# for, so a test sees what the CLI sent.
STAND_IN_HANDLER = """
def handler(event, context):
    assert event["source"] == "mlops.cli"
    check_id = f"20261127T013000Z-w{event.get('window_hours', 'default')}"
    prefix = f"reports/drift/churn/{check_id}/"
    retrain = {"requested": False, "reason": None, "skipped": "a retrain ran 2 hours ago",
               "feedback_rows": 0, "feedback_key": None, "execution": None}
    return {
        "check_id": check_id,
        "verdict": "drift",
        "drifted": ["monthly_charges", "[region]"],
        "result_key": prefix + "result.json",
        "report_key": prefix + "report.html",
        "retrain": retrain,
        "performance_verdict": "ok",
    }
"""


@dataclass
class Local:
    endpoint: str
    state_dir: Path
    outputs: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def set_outputs(self, **outputs: str) -> None:
        self.outputs.update(outputs)
        (self.state_dir / "outputs.json").write_text(json.dumps(self.outputs))


@pytest.fixture
def local(local_state: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Local:
    """A fresh "local cloud" with the data bucket and the state files of `mlops local up`;
    the working directory is a temporary one (`--open` saves reports under it)."""
    monkeypatch.chdir(tmp_path)
    server, state_dir = local_state.endpoint, local_state.state_dir
    cloud = Local(server, state_dir, {})
    cloud.set_outputs(DataBucketName=BUCKET)
    cloud.client("s3").create_bucket(Bucket=BUCKET)
    return cloud


def mlops(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _feature(name: str, kind: str, severity: str, score: float | None, **stats: Any) -> Any:
    return {
        "name": name,
        "kind": kind,
        "severity": severity,
        "statistics": stats,
        "p_values": {},
        "notes": [],
        "score": score,
        "histogram": None,
    }


def _result(check_id: str, verdict: str) -> dict[str, Any]:
    features = {
        "age": _feature("age", "numeric", "none", 0.03, psi=0.01, wasserstein_normed=0.03),
        "monthly_charges": _feature(
            "monthly_charges", "numeric", "major", 0.48, psi=0.31, wasserstein_normed=0.48
        ),
        "[region]": _feature("[region]", "categorical", "minor", 0.12, js_distance=0.12, unseen=7),
    }
    report = {
        "verdict": verdict,
        "rows": 1_500,
        "method": "effect_size",
        "drifted_share": 2 / 3,
        "drifted": ["monthly_charges", "[region]"],
        "features": features,
        "prediction": _feature("prediction", "categorical", "minor", 0.11, js_distance=0.11),
        "skipped": [],
        "notes": [],
        "thresholds": {},
    }
    return {
        "check_id": check_id,
        "model_name": MODEL,
        "checked_at": f"{check_id[:4]}-{check_id[4:6]}-{check_id[6:8]}T01:30:00Z",
        "window": {
            "start": "2026-11-26T01:30:00Z",
            "end": "2026-11-27T01:30:00Z",
            "objects": 12,
            "rows": 1_800,
        },
        "verdict": verdict,
        "versions": [
            {"model_version": 3, "rows": 1_500, "report": report},
            {"model_version": 2, "rows": 300, "report": _quiet(report)},
            {"model_version": 7, "rows": 25, "report": None, "note": "no reference profile"},
        ],
        "performance": {
            "rows": 640,
            "verdict": "drop",
            "metrics": {"roc_auc": 0.71},
            "reference": {"roc_auc": 0.84},
            "changes": {"roc_auc": -0.13},
            "dropped": ["roc_auc"],
            "notes": [],
        },
        "retrain": {
            "requested": True,
            "reason": "data drift and a performance drop",
            "skipped": None,
            "feedback_rows": 640,
            "feedback_key": None,
            "execution": "drift-20261127",
        },
        "result_key": f"reports/drift/{MODEL}/{check_id}/result.json",
        "report_key": f"reports/drift/{MODEL}/{check_id}/report.html",
    }


def _quiet(report: dict[str, Any]) -> dict[str, Any]:
    """The same features without drift (another version's share of the window)."""
    quiet = copy.deepcopy(report)
    for feature in quiet["features"].values():
        feature["severity"] = "none"
    quiet.update(verdict="no_drift", drifted=[], drifted_share=0.0)
    return quiet


ESTIMATE = {
    "rows": 1_500,
    "verdict": "drop",
    "method": "cbpe",
    "metrics": {"accuracy": 0.712, "f1_macro": 0.65},
    "reference": {"accuracy": 0.8, "f1_macro": 0.74},
    "changes": {"accuracy": -0.088, "f1_macro": -0.09},
    "dropped": ["accuracy", "f1_macro"],
    "notes": [],
    "model_version": 3,
    "realized": {"rows": 640, "metrics": {"accuracy": 0.7}},
    "errors": {"accuracy": 0.012},
}


@pytest.fixture
def checks(local: Local) -> Local:
    """Two stored checks: an older one without drift (stored before label-free estimates),
    the latest with drift and an estimated drop."""
    s3 = local.client("s3")
    for check_id, verdict in ((LATEST, "drift"), (OLDER, "no_drift")):
        result = _result(check_id, verdict)
        if check_id == LATEST:
            result.update(format_version=2, estimate=ESTIMATE)
        s3.put_object(Bucket=BUCKET, Key=result["result_key"], Body=json.dumps(result))
        s3.put_object(
            Bucket=BUCKET,
            Key=result["report_key"],
            Body=f"<!doctype html><title>drift {check_id}</title>".encode(),
            ContentType="text/html",
        )
    return local


def test_drift_show_prints_the_latest_check(checks: Local) -> None:
    result = mlops("drift", "show")

    assert result.exit_code == 0, result.output
    assert f"check {LATEST} of churn" in result.output
    assert "2026-11-26T01:30:00Z to 2026-11-27T01:30:00Z (12 objects, 1,800 rows)" in result.output
    assert "verdict: drift" in result.output
    assert "performance: drop on 640 labelled rows: roc_auc 0.7100 (reference 0.8400, -0.1300)" in (
        result.output
    )
    assert "retrain: requested (data drift and a performance drop), execution drift-20261127" in (
        result.output
    )
    assert (
        "estimate: drop on 1,500 rows without labels: accuracy 0.7120 (reference 0.8000, "
        "realized 0.7000); f1_macro 0.6500 (reference 0.7400)"
    ) in " ".join(result.output.split())
    assert "model version 3: 1,500 rows, drift, 2 drifted" in result.output
    assert "model version 2: 300 rows, no_drift, 0 drifted" in result.output
    assert "model version 7: 25 rows, not compared: no reference profile" in result.output


def test_drift_show_lists_features_most_drifted_first(checks: Local) -> None:
    result = mlops("drift", "show", LATEST)

    assert result.exit_code == 0, result.output
    table = result.output.split("model version 3")[1].split("model version 2")[0]
    rows = [line for line in table.splitlines() if "numeric" in line or "categorical" in line]
    assert ["monthly_charges" in rows[0], "[region]" in rows[1], "age" in rows[2]] == [True] * 3
    assert "major" in rows[0] and "0.4800" in rows[0] and "0.3100" in rows[0]
    assert "minor" in rows[1] and "7" in rows[1]
    assert "predictions (model output)" in rows[3] and "0.1100" in rows[3]


def test_drift_show_of_an_older_check_by_id(checks: Local) -> None:
    result = mlops("drift", "show", OLDER)

    assert result.exit_code == 0, result.output
    assert f"check {OLDER} of churn" in result.output
    assert "verdict: no_drift" in result.output


def test_drift_show_json_prints_the_stored_document_only(checks: Local) -> None:
    result = mlops("drift", "show", "--json")

    assert result.exit_code == 0, result.output
    stored = {**_result(LATEST, "drift"), "format_version": 2, "estimate": ESTIMATE}
    assert json.loads(result.stdout) == stored


def test_drift_show_open_saves_the_report_and_opens_it(
    checks: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("infra.cli.drift.typer.launch", lambda url, **_: opened.append(url))

    result = mlops("drift", "show", OLDER, "--open")

    saved = tmp_path / ".mlops" / "reports" / MODEL / f"{OLDER}.html"
    assert result.exit_code == 0, result.output
    assert saved.read_text() == f"<!doctype html><title>drift {OLDER}</title>"
    assert opened == [str(saved)]
    assert f"report: {saved}" in result.output


def test_drift_show_of_an_unknown_check_names_it(checks: Local) -> None:
    result = mlops("drift", "show", "20250101T000000Z-nope00")

    assert result.exit_code == 1
    assert "error: no drift check 20250101T000000Z-nope00 of churn is stored" in result.output
    assert "Traceback" not in result.output


def test_drift_show_before_any_check_says_so(local: Local) -> None:
    result = mlops("drift", "show")

    assert result.exit_code == 1
    assert "error: no drift check of churn is stored yet" in result.output
    assert "run one with `mlops drift run --model churn`" in result.output


def test_drift_run_without_a_drift_function_in_the_stack_fails_clearly(local: Local) -> None:
    result = mlops("drift", "run")

    assert result.exit_code == 1
    assert "has no output DriftFunctionName" in result.output
    assert "Traceback" not in result.output


def test_drift_run_of_a_function_that_does_not_exist_fails_clearly(local: Local) -> None:
    local.set_outputs(DriftFunctionName="mlops-dev-missing")

    result = mlops("drift", "run")

    assert result.exit_code == 1
    assert "ResourceNotFoundException" in result.output and "mlops-dev-missing" in result.output


def _deploy(local: Local, module: str, source: str) -> None:
    """Deploy `source` as the drift function (handler `<module>.handler`), run in-process by
    the local cloud's Lambda runtime, and name it in the stack outputs."""
    lambda_runtime.install()
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = local.client("iam").create_role(
        RoleName="drift", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as code:
        code.writestr(f"{module}.py", source)
    local.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=role,
        Handler=f"{module}.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=30,
    )
    local.set_outputs(DriftFunctionName=FUNCTION)


def test_drift_run_reports_the_function_error_in_one_line(local: Local) -> None:
    _deploy(local, "drift_failing", FAILING_HANDLER)

    result = mlops("drift", "run", "--window-hours", "6")

    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert errors == [
        "error: the drift check failed: WindowUnreadableError: "
        "captures/churn/2026/11/27/part-0.jsonl.gz: not gzip"
    ]
    assert "Traceback" not in result.output


def test_drift_run_prints_the_verdict_the_retrain_decision_and_where_the_results_are(
    local: Local,
) -> None:
    _deploy(local, "drift_stand_in", STAND_IN_HANDLER)

    result = mlops("drift", "run", "--window-hours", "6")

    assert result.exit_code == 0, result.output
    assert "check 20261127T013000Z-w6: verdict drift" in result.output
    assert "drifted features: monthly_charges, [region]" in result.output
    assert "performance: ok" in result.output
    assert "retrain: not requested (a retrain ran 2 hours ago)" in result.output
    key = f"s3://{BUCKET}/reports/drift/churn/20261127T013000Z-w6"
    assert f"result: {key}/result.json" in result.output
    assert f"report: {key}/report.html" in result.output


def test_drift_run_prints_the_live_performance_it_measured(local: Local) -> None:
    source = STAND_IN_HANDLER.replace(
        '"performance_verdict": "ok",',
        '"performance_verdict": "drop", "performance": {"rows": 401, "verdict": "drop",'
        ' "model_version": 1, "metrics": {"accuracy": 0.32}, "reference": {"accuracy": 0.9},'
        ' "changes": {"accuracy": -0.58}, "dropped": ["accuracy"], "notes": []},',
    )
    _deploy(local, "drift_performance", source)

    result = mlops("drift", "run")

    assert result.exit_code == 0, result.output
    assert (
        "performance: drop on 401 labelled rows of model version 1: accuracy 0.3200 "
        "(reference 0.9000, -0.5800)"
    ) in " ".join(result.output.split())


# Replies with the model it was asked to check, as the drift function does.
MODEL_ECHO_HANDLER = """
def handler(event, context):
    model = event["model"]
    check_id = "20261128T013000Z-echo00"
    prefix = f"reports/drift/{model}/{check_id}/"
    return {
        "model": model, "check_id": check_id, "verdict": "no_drift", "drifted": [],
        "result_key": prefix + "result.json", "report_key": prefix + "report.html",
        "retrain": {"requested": False, "reason": None, "skipped": None},
        "performance_verdict": None,
    }
"""


@pytest.fixture
def portfolio(local: Local, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Local:
    """The repo's config with a second model on its dataset; a check of each model stored."""
    config = tmp_path / "portfolio.toml"
    config.write_text(with_challenger())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    s3 = local.client("s3")
    for model, check_id, verdict in ((MODEL, OLDER, "no_drift"), (CHALLENGER, LATEST, "drift")):
        result = _result(check_id, verdict)
        result["model_name"] = model
        for name in ("result_key", "report_key"):
            result[name] = result[name].replace(f"/{MODEL}/", f"/{model}/")
        s3.put_object(Bucket=BUCKET, Key=result["result_key"], Body=json.dumps(result))
    return local


def test_drift_run_checks_the_model_named_by_model(portfolio: Local) -> None:
    _deploy(portfolio, "drift_echo", MODEL_ECHO_HANDLER)

    challenger = mlops("drift", "run", "--model", CHALLENGER)
    default = mlops("drift", "run")

    assert challenger.exit_code == 0, challenger.output
    assert f"model {CHALLENGER}" in challenger.output
    assert f"reports/drift/{CHALLENGER}/20261128T013000Z-echo00/result.json" in challenger.output
    assert default.exit_code == 0, default.output
    assert f"reports/drift/{MODEL}/20261128T013000Z-echo00/result.json" in default.output


def test_drift_show_and_list_read_the_named_models_checks(portfolio: Local) -> None:
    shown = mlops("drift", "show", "--model", CHALLENGER)
    listed = mlops("drift", "list", "--model", CHALLENGER, "--json")
    default = mlops("drift", "list", "--json")

    assert shown.exit_code == 0, shown.output
    assert f"check {LATEST} of {CHALLENGER}" in shown.output
    assert listed.exit_code == 0, listed.output
    assert [(c["model"], c["check_id"], c["verdict"]) for c in json.loads(listed.stdout)] == [
        (CHALLENGER, LATEST, "drift")
    ]
    assert [(c["model"], c["check_id"]) for c in json.loads(default.stdout)] == [(MODEL, OLDER)]


def test_drift_list_shows_the_latest_checks_newest_first(checks: Local) -> None:
    result = mlops("drift", "list")
    only_latest = mlops("drift", "list", "--last", "1", "--json")

    assert result.exit_code == 0, result.output
    assert result.output.index(LATEST) < result.output.index(OLDER)
    assert "0.7120 / 0.7000" in result.output  # the estimate beside the realized accuracy
    assert [c["check_id"] for c in json.loads(only_latest.stdout)] == [LATEST]
    newest, older = json.loads(mlops("drift", "list", "--json").stdout)
    assert newest["estimate"] == "drop" and newest["estimated_accuracy"] == 0.712
    assert newest["realized_accuracy"] == 0.7
    assert older["estimate"] is None  # a result from before estimates


def test_an_unknown_model_is_one_line_naming_the_configured_ones(portfolio: Local) -> None:
    result = mlops("drift", "show", "--model", "nope")

    assert result.exit_code == 2
    assert "error: --model 'nope' is not a configured model: churn, churn-rf" in " ".join(
        result.output.split()
    )
