"""`make demo` as a user runs it: a fresh synth, the local cloud, three drops, and what
happened to each (promoted, quarantined, rejected), with the model card on disk; then
predictions, a refused request and the model summary from the serving API over HTTP; then a
drift check on normal traffic (no drift) and on shifted traffic (drift, retraining started by
the DriftDetected event, the gate's decision), with the drift reports on disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_promotes_quarantines_and_rejects() -> None:
    env = {**os.environ, "COLUMNS": "200", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo", "--rows", "2000"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "promoted" in out and "quarantined" in out and "rejected" in out
    assert "rows 2000 -> 1980" in out
    assert "registered as version 1" in out
    assert "wrong_delimiter" in out
    assert "candidate vs champion v1" in out
    assert "gate failed: roc_auc" in out
    assert re.search(r"POST http://127\.0\.0\.1:\d+/v1/predict: three customers", out)
    predictions = re.findall(r"│ (?:yes|no) +│ no 0\.\d{3}, yes 0\.\d{3} +│ 1 +│", out)
    assert len(predictions) == 3, out
    assert 'a wrong type (age = "forty") -> HTTP 422: {"error": "invalid_type"' in out
    assert '"field": "instances[0].age"' in out
    assert re.search(r"GET http://127\.0\.0\.1:\d+/v1/model: churn version 1", out)
    # Monitoring closes the loop: no drift, then drift that retrains by itself.
    assert re.search(r"Drift check \S+ \(normal traffic, \d+ rows, model v1\): NO DRIFT", out)
    assert re.search(r"Drift check \S+ \(shifted traffic, 500 rows, model v1\): DRIFT", out)
    assert re.search(r"│ contract +│ major", out) and re.search(r"│ monthly_charges +│ major", out)
    assert "retraining requested (data drift in contract, monthly_charges, tenure_months)" in out
    assert "the DriftDetected event started the pipeline with" in out
    assert "the gate decided" in out or "the gate promoted" in out
    reports = sorted((REPO_ROOT / ".mlops" / "demo").glob("drift_report_*.html"))
    assert reports and "monthly_charges" in reports[-1].read_text()
    # Function log lines go to the log file, not over the demo's output.
    assert '"level":"INFO"' not in out
    card = REPO_ROOT / ".mlops" / "demo" / "model_card_v1.html"
    assert "<svg" in card.read_text()
    logs = (REPO_ROOT / ".mlops" / "demo" / "function-logs.txt").read_text()
    assert "Dataset version registered" in logs
