"""XGBoost (and LightGBM) trained, converted and parity-checked with the training image's own
packages: the image's pinned requirements rebuilt for this machine (the local cloud's host
twin) under the Lambda runtime's Python, where `xgboost-cpu` installs even though the dev
environment's Python cannot (docs/own-model.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.cdk.layers import (
    build_packages,
    host_platforms,
    missing_python_message,
    runtime_python,
)
from infra.cdk.predeploy import TRAINING_REQUIREMENTS

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from functions.common.config.dataset import FeatureType, Task
from functions.common.config.training import ModelConfig
from functions.ml import sample_data
from functions.ml.onnx_model import OnnxModel, check_parity, export_onnx
from functions.ml.training import fit_model, split_dataset

schema = {n: FeatureType.NUMERIC for n in sample_data.NUMERIC_FEATURES}
schema |= {n: FeatureType.CATEGORICAL for n in sample_data.CATEGORICAL_FEATURES}
frame = sample_data.churn_frame(1_500, seed=7)
results = {}
for estimator in ("xgboost", "lightgbm"):
    for task, target in (("classification", "churned"), ("classification", "contract"),
                         ("regression", "monthly_charges")):
        task = Task(task)
        features = {n: k for n, k in schema.items() if n != target}
        split = split_dataset(frame, target=target, task=task, test_size=0.25, seed=3)
        fitted = fit_model(split.train, target=target, task=task, schema=features,
                           model=ModelConfig(estimator=estimator, params={"n_estimators": 60}),
                           estimator=estimator)
        onnx_bytes, signature = export_onnx(fitted.pipeline, schema=features, target=target,
                                            task=task, train=split.train)
        report = check_parity(fitted.pipeline, OnnxModel(onnx_bytes, signature), split.test,
                              tolerance=1e-4)
        results[f"{estimator}-{target}"] = {
            "passed": report.passed, "rows": report.rows,
            "model": [c.__module__ for c in type(fitted.pipeline.steps[-1][1]).__mro__],
        }
print(json.dumps(results))
"""


def test_xgboost_and_lightgbm_convert_with_parity_in_the_training_image() -> None:
    python = runtime_python()
    if python is None:
        pytest.fail(missing_python_message(), pytrace=False)
    site_packages = build_packages(TRAINING_REQUIREMENTS, "training-image-host", host_platforms())

    result = subprocess.run(
        [
            python.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _SCRIPT,
            json.dumps([str(REPO), str(site_packages)]),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(results) == {
        f"{e}-{t}"
        for e in ("xgboost", "lightgbm")
        for t in ("churned", "contract", "monthly_charges")
    }
    assert all(r["passed"] and r["rows"] == 375 for r in results.values()), results
    assert "xgboost.sklearn" in results["xgboost-churned"]["model"]
