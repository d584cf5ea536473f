"""The evaluate stage against moto, with real trained models: it stores both models' insight on
the held-out rows in `evaluation.json` (slices, fairness on an audit-only column that is no
model feature, calibration, thresholds), never a raw value of a sensitive column, and
`[gate.fairness]` rejects a disparate candidate like any failed criterion."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common import formats
from functions.common.config.loading import deployed_config
from functions.common.contracts import PipelineState, TrainingRun
from functions.evaluate.logic import evaluate
from functions.ml.sample_data import churn_frame
from tests.helpers import REPO
from tests.helpers.models import MODEL, Trained, fit_churn, records
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

RUN = "20261203T060000Z-abc123"


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: str) -> None:
    """The repository's config with `gender` as an audit-only fairness attribute, `region`
    hashed, and `gate` appended."""
    text = (REPO / "mlops.toml").read_text(encoding="utf-8")
    text = text.replace(
        "[dataset.features]",
        'fairness_attributes = ["gender"]\nsensitive = { region = "hash" }\n\n[dataset.features]',
        1,
    )
    path = tmp_path / "mlops.toml"
    path.write_text(text + gate, encoding="utf-8")
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    deployed_config.cache_clear()


def _rows(seed: int) -> pd.DataFrame:
    """Churn rows with an audit-only `gender`: mostly "f" on month-to-month contracts, the
    contracts that churn, so a model that uses the contract selects more of one group."""
    frame = churn_frame(1200, seed=seed, duplicate_share=0.0)
    rng = np.random.default_rng(seed)
    monthly = frame["contract"] == "month-to-month"
    female = np.where(monthly, rng.random(len(frame)) < 0.85, rng.random(len(frame)) < 0.2)
    return frame.assign(gender=np.where(female, "f", "m"))


def _state(cloud: Cloud, frame: pd.DataFrame) -> PipelineState:
    """A candidate trained on the first 900 rows, its artifacts and held-out rows (with the
    audit column) stored as the train stage leaves them."""
    train, holdout = frame.iloc[:900], frame.iloc[900:]
    onnx, signature = fit_churn(train, {"C": 1.0, "max_iter": 1000})
    assert "gender" not in signature.schema
    prefix = f"models/{MODEL}/runs/{RUN}/"
    training = TrainingRun(
        run_id=RUN,
        model_name=MODEL,
        task="classification",
        estimator="logistic_regression",
        params={"C": 1.0},
        data_version="d1",
        data_versions=["d1"],
        rows_train=len(train),
        rows_test=len(holdout),
        run_prefix=prefix,
        onnx_key=prefix + "model.onnx",
        onnx_sha256=hashlib.sha256(onnx).hexdigest(),
        holdout_key=prefix + "holdout.parquet",
        signature_key=prefix + "signature.json",
        reference_profile_key=prefix + "reference_profile.json",
        run_record_key=prefix + "run.json",
        started_at="2026-12-03T06:00:00.000Z",
        code_version="test1234",
    )
    buffer = io.BytesIO()
    holdout.to_parquet(buffer, index=False)
    s3 = cloud.s3
    s3.put_object(Bucket=cloud.bucket, Key=training.onnx_key, Body=onnx)
    s3.put_object(Bucket=cloud.bucket, Key=training.holdout_key, Body=buffer.getvalue())
    s3.put_object(
        Bucket=cloud.bucket,
        Key=training.signature_key,
        Body=json.dumps(formats.stamp(formats.SIGNATURE, signature.to_dict())),
    )
    ModelRegistry(cloud.table).put_run({**training.model_dump(mode="json"), "status": "trained"})
    return PipelineState(training=training)


def _stored(cloud: Cloud, key: str) -> dict[str, Any]:
    document = json.loads(cloud.body(key))
    assert document[formats.FIELD] == formats.FORMATS[formats.EVALUATION].current
    return formats.read(formats.EVALUATION, document)


def test_both_models_insight_is_stored_and_no_sensitive_value_with_it(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, '\n[model_card]\nquantile_feature = "tenure_months"\n')
    frame = _rows(11)
    champion_onnx, champion_signature = fit_churn(frame.iloc[:300], {"C": 0.01, "max_iter": 1000})
    champion = Trained(champion_onnx, champion_signature.to_dict(), records(frame.iloc[:1]))
    publish(cloud, champion)
    state = _state(cloud, frame)

    result = evaluate(state)

    document = _stored(cloud, result.evaluation_key)
    insight = document["insight"]
    candidate, champion_insight = insight["candidate"], insight["champion"]
    assert champion_insight is not None and result.champion_version == 1
    for measured in (candidate, champion_insight):
        assert (measured["task"], measured["metric"]) == ("binary", "roc_auc")
        slices = measured["slices"]["rows"]
        assert {row["feature"] for row in slices} == {
            "contract",
            "payment_method",
            "internet_service",
            "region",
            "tenure_months",
        }
        values = [row["value"] for row in slices]
        assert values == sorted(values)
        assert len(measured["thresholds"]) == 19
        assert measured["calibration"]["method"] is None
        gender = measured["fairness"]["attributes"]["gender"]
        assert {group["group"] for group in gender["groups"]} == {"f", "m"}
        assert sum(group["rows"] for group in gender["groups"]) == 300
    # the two models are measured on the same slices, side by side
    assert {(r["feature"], r["slice"]) for r in candidate["slices"]["rows"]} == {
        (r["feature"], r["slice"]) for r in champion_insight["slices"]["rows"]
    }
    assert candidate["slices"]["rows"][0]["overall"] == pytest.approx(result.metrics["roc_auc"])
    # region is hashed: its slices show hashes, its raw values are nowhere in the document
    stored = cloud.body(result.evaluation_key).decode()
    for region in ("north", "south", "east", "west"):
        assert f'"{region}"' not in stored
    region_slices = [r["slice"] for r in candidate["slices"]["rows"] if r["feature"] == "region"]
    assert region_slices and all(label.startswith("sha256:") for label in region_slices)
    assert result.passed  # no fairness bound configured


def test_the_fairness_gate_rejects_a_disparate_candidate(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "\n[gate.fairness]\nmax_demographic_parity_difference = 0.1\n")
    state = _state(cloud, _rows(12))

    result = evaluate(state)

    document = _stored(cloud, result.evaluation_key)
    parity = document["insight"]["candidate"]["fairness"]["attributes"]["gender"][
        "demographic_parity_difference"
    ]
    assert parity > 0.1
    assert not result.passed
    (criterion,) = [c for c in result.criteria if c.kind == "max_difference"]
    assert (criterion.metric, criterion.passed, criterion.bound) == (
        "demographic_parity_difference",
        False,
        0.1,
    )
    assert criterion.candidate == pytest.approx(parity)
    assert result.failed == [criterion.message]
    assert "across gender" in criterion.message
    run = ModelRegistry(cloud.table).get_run(MODEL, RUN)
    assert run is not None and run["status"] == "rejected"
    assert run["gate_failed"] == [criterion.message]
