"""The SageMaker training entry point given the layout SageMaker gives a container
(`/opt/ml/input/config/hyperparameters.json`, `/opt/ml/input/data/<channel>/`,
`/opt/ml/model/`) in a temporary folder: real training on the churn sample data, sockets off."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from functions.common.config.loading import load_config
from functions.common.contracts import DatasetRef, SourceObject
from functions.ml import sample_data
from functions.ml.ingestion import build_manifest, ingest_file
from functions.ml.onnx_model import OnnxModel, Signature
from functions.ml.schema import contract_from_config
from functions.train import sagemaker_entry
from functions.train.sagemaker import JobSpec, train_manifest

REPO = Path(__file__).resolve().parents[3]
RUN_ID = "20261127T010203Z-abc123"
BUCKET = "data-bucket"
ROWS = 1_500


def _dataset_version(tmp: Path, seed: int) -> tuple[DatasetRef, dict[str, Any], Path]:
    config = load_config(REPO / "mlops.toml")
    data = tmp / f"drop-{seed}.csv"
    data.write_bytes(sample_data.encode(sample_data.churn_frame(ROWS, seed=seed)))
    out_dir = tmp / f"curated-{seed}"
    out_dir.mkdir()
    result = ingest_file(
        data,
        name=data.name,
        dataset=config.dataset,
        contract=contract_from_config(config.dataset),
        out_dir=out_dir,
    )
    prefix = f"curated/churn/{result.data_version}/"
    manifest = build_manifest(
        result,
        dataset="churn",
        source={"file": data.name},
        curated_prefix=prefix,
        created_at=f"2026-11-2{seed}T00:00:00Z",
        code_version="test",
    )
    ref = DatasetRef(
        dataset="churn",
        data_version=result.data_version,
        manifest_key=f"{prefix}manifest.json",
        curated_prefix=prefix,
        rows=result.rows_out,
        source=SourceObject(bucket=BUCKET, key=f"raw/churn/{data.name}"),
        created_at=manifest["created_at"],
    )
    return ref, manifest, result.data_path


def _layout(tmp: Path, seeds: tuple[int, ...] = (3,)) -> tuple[Path, JobSpec]:
    """What SageMaker lays out for the job Prepare would start, under `tmp/opt/ml`."""
    root = tmp / "opt" / "ml"
    versions = [_dataset_version(tmp, seed) for seed in seeds]
    spec = JobSpec(
        run_id=RUN_ID,
        job_name=f"mlops-dev-{RUN_ID}",
        bucket=BUCKET,
        trigger=versions[-1][0],
        versions=[ref for ref, _, _ in versions],
        manifests={ref.data_version: manifest for ref, manifest, _ in versions},
        config=load_config(REPO / "mlops.toml").model_dump(mode="json"),
        code_version="abc123",
        execution="arn:aws:states:eu-west-1:123456789012:execution:pipeline:run-1",
    )
    config_dir = root / "input" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "hyperparameters.json").write_text(
        json.dumps({"run_id": RUN_ID, "spec": "job.json"})
    )
    spec_dir = root / "input" / "data" / "spec"
    spec_dir.mkdir(parents=True)
    (spec_dir / "job.json").write_text(spec.model_dump_json())
    # The train channel's ManifestFile: files land by their key relative to its prefix.
    manifest = train_manifest(BUCKET, spec)
    assert manifest[0] == {"prefix": f"s3://{BUCKET}/curated/"}
    for (_, _, data_path), relative in zip(versions, manifest[1:], strict=True):
        local = root / "input" / "data" / "train" / relative
        local.parent.mkdir(parents=True)
        shutil.copy(data_path, local)
    return root, spec


def test_entry_point_trains_the_run_into_the_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, spec = _layout(tmp_path)
    monkeypatch.setenv("MLOPS_SAGEMAKER_ROOT", str(root))

    assert sagemaker_entry.main() == 0

    model_dir = root / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "holdout.parquet",
        "model.onnx",
        "reference_profile.json",
        "run.json",
        "signature.json",
    ]
    run = json.loads((model_dir / "run.json").read_text())
    assert run["run_id"] == RUN_ID
    assert run["execution"] == spec.execution
    assert run["code_version"] == "abc123"
    assert run["data_versions"] == [spec.trigger.data_version]
    assert run["onnx_key"] == f"models/churn/runs/{RUN_ID}/model.onnx"
    assert run["artifacts"]["onnx"] == f"s3://{BUCKET}/models/churn/runs/{RUN_ID}/model.onnx"
    onnx = (model_dir / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx).hexdigest() == run["onnx_sha256"]
    assert run["rows_train"] + run["rows_test"] == spec.trigger.rows
    assert run["parity"]["passed"] is True

    model = OnnxModel(
        onnx, Signature.from_dict(json.loads((model_dir / "signature.json").read_text()))
    )
    holdout = pd.read_parquet(model_dir / "holdout.parquet")
    predicted = model.predict(holdout)
    accuracy = float((predicted.labels == holdout[sample_data.TARGET].to_numpy()).mean())
    assert accuracy > 0.7
    assert not (root / "output" / "failure").exists()


def test_append_mode_trains_on_every_version_in_the_spec(tmp_path: Path) -> None:
    root, spec = _layout(tmp_path, seeds=(3, 4))
    assert sagemaker_entry.main(str(root)) == 0
    run = json.loads((root / "model" / "run.json").read_text())
    assert run["data_versions"] == [v.data_version for v in spec.versions]
    assert run["rows_train"] + run["rows_test"] == sum(v.rows for v in spec.versions)


def test_a_run_id_that_is_not_the_specs_fails_with_the_reason_sagemaker_reports(
    tmp_path: Path,
) -> None:
    root, _ = _layout(tmp_path)
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"run_id": "someone-else", "spec": "job.json"})
    )
    assert sagemaker_entry.main(str(root)) == 1
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("ValueError: hyperparameter run_id 'someone-else'")
    assert not (root / "model").exists() or not any((root / "model").iterdir())


def test_a_file_missing_from_the_train_channel_fails_naming_it(tmp_path: Path) -> None:
    root, spec = _layout(tmp_path)
    shutil.rmtree(root / "input" / "data" / "train")
    assert sagemaker_entry.main(str(root)) == 1
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("FileNotFoundError: ")
    assert spec.manifests[spec.trigger.data_version]["files"][0] in failure
