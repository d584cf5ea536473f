"""`make demo` as a user runs it: a fresh synth, the local cloud, a good and a bad drop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_versions_the_good_drop_and_quarantines_the_bad_one() -> None:
    env = {**os.environ, "COLUMNS": "200", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo", "--rows", "2000"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SUCCEEDED" in out and "FAILED" in out
    assert "rows in 2000 -> rows out 1980" in out
    assert "wrong_delimiter" in out
    assert "quarantine/churn/semicolon_separated.csv.reason.json" in out
    assert "alerts published to the SNS topic: 1" in out
    # Function log lines go to the log file, not over the demo's output.
    assert '"level":"INFO"' not in out
    logs = (REPO_ROOT / ".mlops" / "demo" / "function-logs.txt").read_text()
    assert "Dataset version registered" in logs
