"""A registered version in MLflow's model format, loaded by MLflow itself: the pipeline on the
local cloud registers a churn model (numeric and categorical inputs, missing values in both),
`mlops models export 1 --format mlflow` writes its MLflow folder locally, and a child process in
`.venv-mlflow` (MLflow, onnxruntime and pandas only, built by `make mlflow-venv`; run outside the
repository, so none of this project's code is importable there) loads it with
`mlflow.pyfunc.load_model` and predicts. Its labels and probabilities are ours (`OnnxModel` on
the registered model.onnx, what serving runs) within 1e-5. A version registered before the
register stage wrote the folder is exported too: the CLI builds it from the version's files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from functions.ml.onnx_model import OnnxModel, Signature
from infra.cli.main import app
from infra.local import LocalCloud

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = REPO_ROOT / ".venv-mlflow" / "bin" / "python"
NUMERIC = list(sample_data.NUMERIC_FEATURES)
CATEGORICAL = list(sample_data.CATEGORICAL_FEATURES)
LOADER = """
import importlib.util, json, sys
import pandas as pd
import mlflow.pyfunc
from mlflow.models import Model

folder, rows = sys.argv[1:3]
model = mlflow.pyfunc.load_model(folder)
frame = pd.read_json(rows, orient="split", dtype=False)
numeric = [c.name for c in model.metadata.get_input_schema().inputs if c.type.name == "double"]
frame[numeric] = frame[numeric].astype("float64")
predicted = model.predict(frame)
example = Model.load(folder).load_input_example(folder)
print(json.dumps({
    "ours_importable": importlib.util.find_spec("functions") is not None,
    "flavors": sorted(model.metadata.flavors),
    "columns": list(predicted.columns),
    "rows": predicted.astype(object).values.tolist(),
    "example": model.predict(example).astype(object).values.tolist(),
}))
"""


class Exported:
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.bucket = cloud.outputs["DataBucketName"]
        self.s3 = cloud.client("s3")

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(
            app, [*args, "--state-dir", str(self.state_dir)], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    def body(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def exported(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    if not MLFLOW_PYTHON.exists():
        pytest.fail("MLflow's venv is missing: run `make mlflow-venv`", pytrace=False)
    state_dir = tmp_path_factory.mktemp("mlflow") / "state"
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as cloud:
        first = cloud.drop(
            "raw/churn/first.csv",
            sample_data.encode(sample_data.churn_frame(2_000, seed=41)),
            timeout=240,
        )
        assert model_outcome(json.loads(first["output"]))["status"] == "promoted"
        yield Exported(cloud, state_dir)


def _rows() -> pd.DataFrame:
    """Rows the model never saw, with missing values in numeric and categorical columns and a
    category unseen in training, as a DataFrame gives them to MLflow: numbers as floats, a
    missing category as `""` (the model's missing value; onnxruntime refuses None)."""
    frame = sample_data.churn_frame(600, seed=97, first_id=900_000)[NUMERIC + CATEGORICAL]
    frame = frame.reset_index(drop=True)
    frame.loc[0, "region"] = "atlantis"
    frame.loc[1, NUMERIC] = np.nan
    frame.loc[2, CATEGORICAL] = None
    assert frame[NUMERIC].isna().any().any() and frame[CATEGORICAL].isna().any().any()
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    frame[CATEGORICAL] = frame[CATEGORICAL].astype(object).where(frame[CATEGORICAL].notna(), "")
    return frame


def _load_in_mlflow(folder: Path, rows: pd.DataFrame, workdir: Path) -> dict[str, Any]:
    rows_file = workdir / "rows.json"
    rows.to_json(rows_file, orient="split", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MLFLOW"))}
    done = subprocess.run(
        [str(MLFLOW_PYTHON), "-c", LOADER, str(folder), str(rows_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,  # not the repository: nothing of ours on the child's path
        env={**env, "MLFLOW_TRACKING_URI": f"file://{workdir}/mlruns"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_parity(exported: Exported, folder: Path, tmp_path: Path) -> dict[str, Any]:
    signature = Signature.from_dict(json.loads(exported.body("models/churn/1/signature.json")))
    ours = OnnxModel(exported.body("models/churn/1/model.onnx"), signature)
    rows = _rows()
    expected = ours.predict(rows)
    loaded = _load_in_mlflow(folder, rows, tmp_path)

    assert loaded["ours_importable"] is False
    assert loaded["flavors"] == ["onnx", "python_function"]
    assert loaded["columns"] == ["label", *(f"probability_{c}" for c in signature.classes or [])]
    predicted = pd.DataFrame(loaded["rows"], columns=loaded["columns"])
    assert len(predicted) == len(rows)
    assert list(predicted["label"]) == [str(label) for label in expected.labels]
    probabilities = predicted[loaded["columns"][1:]].to_numpy(dtype=np.float64)
    assert np.abs(probabilities - expected.probabilities).max() <= 1e-5
    # The stored input example (typical values, then every feature missing) predicts too.
    assert len(loaded["example"]) == 2
    return loaded


def test_mlflow_loads_the_exported_version_and_predicts_what_we_predict(
    exported: Exported, tmp_path: Path
) -> None:
    folder = tmp_path / "churn-1"
    printed = exported.cli("models", "export", "1", "--format", "mlflow", "--out", str(folder))

    assert "s3://" in printed and "/models/churn/1/mlflow/" in printed
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        key.rsplit("/", 1)[1]
        for key in (
            item["Key"]
            for item in exported.s3.list_objects_v2(
                Bucket=exported.bucket, Prefix="models/churn/1/mlflow/"
            )["Contents"]
        )
    )
    _check_parity(exported, folder, tmp_path)


def test_a_version_without_a_stored_mlflow_folder_is_built_by_the_export(
    exported: Exported, tmp_path: Path
) -> None:
    """As for a version registered before the register stage wrote the folder."""
    stored = exported.s3.list_objects_v2(Bucket=exported.bucket, Prefix="models/churn/1/mlflow/")
    kept = {item["Key"]: exported.body(item["Key"]) for item in stored["Contents"]}
    for key in kept:
        exported.s3.delete_object(Bucket=exported.bucket, Key=key)
    try:
        folder = tmp_path / "built"
        printed = exported.cli("models", "export", "1", "--out", str(folder))
        assert "built from" in printed
        _check_parity(exported, folder, tmp_path)
    finally:
        for key, body in kept.items():
            exported.s3.put_object(Bucket=exported.bucket, Key=key, Body=body)
