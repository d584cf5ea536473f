"""The closed loop on the local cloud, deployed from the synthesized app with `auto_retrain` on:
a promoted model serves traffic over HTTP, the capture lands under capture/, the drift
schedule starts the drift checks (a Map over the one model), normal traffic is no drift;
shifted traffic is drift, its `DriftDetected` event starts the pipeline with a retrain request,
and the gate decides; a second drift inside the cooldown starts nothing."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud
from tests.helpers.config import repo_config
from tests.helpers.served import Served, serving_first_model

pytestmark = pytest.mark.slow

GATE = """[gate.metrics.roc_auc]
threshold = 0.75

"""
DRIFT = """[drift]
schedule = "rate(1 day)"
auto_retrain = true
cooldown_hours = 24
"""
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]


def _rows(
    count: int,
    seed: int,
    shifted: bool,
    nulls: str | None = None,
    moved: tuple[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Churn rows; `shifted` moves three features, `nulls` blanks every other value of one
    column, `moved` (a feature and its reference profile) shifts one feature a long way."""
    frame = sample_data.churn_frame(count, seed=seed, first_id=8_000_000, duplicate_share=0.0)
    if nulls is not None:
        frame.loc[frame.index[::2], nulls] = None
    if moved is not None and moved[1]["type"] == "numeric":
        frame[moved[0]] = frame[moved[0]] + 2 * moved[1]["std"]
    elif moved is not None:
        counts = {k: v for k, v in moved[1]["counts"].items() if k}
        frame[moved[0]] = min(counts, key=counts.__getitem__)
    if shifted:
        frame["monthly_charges"] = frame["monthly_charges"] * 1.6
        frame["tenure_months"] = frame["tenure_months"] * 2.0
        frame["contract"] = "month-to-month"
    records = frame[FEATURES].astype(object).to_dict(orient="records")
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else _plain(v) for k, v in r.items()}
        for r in records
    ]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class Loop(Served):
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        super().__init__(cloud, state_dir)
        rules = cloud.deployment.of_type("AWS::Events::Rule") if cloud.deployment else {}
        [self.schedule] = [
            logical
            for logical in rules
            if logical.startswith("MonitoringDrift") and "Schedule" in logical
        ]

    def traffic(
        self,
        seed: int,
        shifted: bool,
        rows: int = 400,
        nulls: str | None = None,
        moved: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        for start in range(0, rows, 100):
            instances = _rows(100, seed + start, shifted, nulls, moved)
            body = json.dumps({"instances": instances}).encode()
            request = signed_request(
                self.cloud.api_url.rstrip("/") + "/v1/predict",
                "POST",
                body,
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200

    def check(self) -> dict[str, Any]:
        """Fire the drift schedule; returns the result document the check wrote."""
        before = set(self.results())
        time.sleep(1.1)  # the check's window ends a whole second before it starts
        checks = str(self.cloud.outputs["DriftChecksStateMachineArn"])
        started = len(self.cloud.executions(checks))
        self.cloud.fire_schedule(self.schedule)
        latest, *_ = self.cloud.wait_for_executions(started + 1, 300, checks)
        assert latest["status"] == "SUCCEEDED", latest
        [new] = set(self.results()) - before
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=new)["Body"].read())

    def results(self) -> list[str]:
        return [key for key in self.keys("reports/drift/churn/") if key.endswith("/result.json")]


@pytest.fixture(scope="module")
def loop(synth_with_config: Callable[[str], Path]) -> Iterator[Loop]:
    with serving_first_model(synth_with_config(repo_config(gate=GATE, drift=DRIFT)), Loop) as loop:
        yield loop


def test_normal_traffic_is_no_drift_and_starts_nothing(loop: Loop) -> None:
    loop.traffic(seed=100, shifted=False)

    result = loop.check()

    assert result["verdict"] == "no_drift"
    assert result["window"]["rows"] == 400
    assert result["versions"][0]["model_version"] == 1
    assert result["retrain"]["requested"] is False
    assert len(loop.cloud.executions()) == 1
    html = loop.s3.get_object(Bucket=loop.bucket, Key=result["report_key"])["Body"].read()
    assert b"monthly_charges" in html
    # The trained profile carries the calibration: the captured probabilities give an
    # estimate, near the held-out accuracy on traffic like the training data.
    estimate = result["estimate"]
    assert estimate["verdict"] == "ok" and estimate["rows"] == 400, estimate
    assert abs(estimate["changes"]["accuracy"]) < 0.05
    assert set(estimate["metrics"]) == {"accuracy", "f1_macro", "f1", "roc_auc"}
    assert b"Estimated performance" in html


def test_shifted_traffic_starts_a_retraining_the_gate_decides(loop: Loop) -> None:
    loop.traffic(seed=200, shifted=True)

    result = loop.check()

    assert result["verdict"] == "drift"
    drifted = set(result["versions"][0]["report"]["drifted"])
    assert {"monthly_charges", "tenure_months", "contract"} <= drifted
    assert result["retrain"]["requested"] is True and result["retrain"]["via"] == "pipeline"
    executions = loop.cloud.wait_for_executions(2, timeout=240)
    retrain = [e for e in executions if "retrain" in json.loads(e["input"])]
    assert len(retrain) == 1
    request = json.loads(retrain[0]["input"])["retrain"]
    assert request["reason"].startswith(f"drift check {result['check_id']}")
    assert retrain[0]["status"] == "SUCCEEDED"
    assert model_outcome(json.loads(retrain[0]["output"]))["status"] in ("promoted", "rejected")


def test_drift_inside_the_cooldown_starts_no_second_retraining(loop: Loop) -> None:
    loop.traffic(seed=300, shifted=True)

    result = loop.check()

    assert result["verdict"] == "drift"
    assert result["retrain"]["requested"] is False
    assert "cooldown" in result["retrain"]["skipped"]
    loop.cloud.wait_idle(60)
    assert len(loop.cloud.executions()) == 2


def test_drift_run_and_show_from_the_cli(loop: Loop) -> None:
    time.sleep(1.1)
    ran = loop.cli("drift", "run", "--window-hours", "1")
    shown = json.loads(loop.cli("drift", "show", "--json"))

    # The look-back covers all three batches: 400 normal and 800 shifted rows.
    assert shown["window"]["rows"] == 1_200 and shown["verdict"] == "drift"
    assert shown["check_id"] in ran and "drift" in ran
    assert "cooldown" in shown["retrain"]["skipped"]
    table = loop.cli("drift", "show", shown["check_id"])
    assert "monthly_charges" in table and "major" in table


def test_a_data_quality_break_or_a_critical_feature_is_drift_and_the_cli_says_why(
    loop: Loop,
) -> None:
    # 50 % of the ages missing: one feature of nine (share 0.11 < 0.3), a data-quality break.
    loop.traffic(seed=400, shifted=False, nulls="age")

    broken = loop.check()

    report = broken["versions"][0]["report"]
    assert report["data_quality"] == ["age"]
    assert broken["verdict"] == "drift"
    assert "data quality" in report["decision"]
    shown = loop.cli("drift", "show", broken["check_id"])
    assert "data quality" in shown and report["decision"].split(";")[0] in shown

    # The model's most important feature, alone, drifted: critical by the stored importances.
    version = broken["versions"][0]["model_version"]
    key = f"models/churn/{version}/reference_profile.json"
    profile = json.loads(loop.s3.get_object(Bucket=loop.bucket, Key=key)["Body"].read())
    critical = profile["importance"]["critical"][0]
    loop.traffic(seed=500, shifted=False, moved=(critical, profile["features"][critical]))

    moved = loop.check()

    report = moved["versions"][0]["report"]
    assert report["drifted"] == [critical]
    assert moved["verdict"] == "drift"
    assert f"critical feature(s) with major drift: {critical}" in report["decision"]
