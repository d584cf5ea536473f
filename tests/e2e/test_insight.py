"""Model insight on the local cloud, through the real state machine and the training image's
packages on Python 3.13: a drop with an audit-only `gender` column (a fairness attribute, no
feature) trains a calibrated (isotonic) model that passes parity, the evaluate stage stores
both sections of insight with no raw value of the hashed `region`, and `[gate.fairness]`
rejects the candidate, whose selection rate differs by gender through the contract."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.common import formats
from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.local import LocalCloud
from tests.helpers.config import ABSOLUTE_GATE, repo_config

FAIRNESS_GATE = "[gate.fairness]\nmax_demographic_parity_difference = 0.1\n\n"


def _config() -> str:
    text = repo_config(gate=ABSOLUTE_GATE + FAIRNESS_GATE)
    text = text.replace(
        "[dataset.features]",
        'fairness_attributes = ["gender"]\nsensitive = { region = "hash" }\n\n[dataset.features]',
        1,
    )
    return text.replace("[model]\n", '[model]\ncalibrate = "isotonic"\n', 1)


def _drop(rows: int, seed: int) -> bytes:
    """Churn rows with `gender`: mostly "f" on month-to-month contracts, which churn most."""
    frame = sample_data.churn_frame(rows, seed=seed, first_id=700_000)
    rng = np.random.default_rng(seed)
    monthly = (frame["contract"] == "month-to-month").to_numpy()
    female = np.where(monthly, rng.random(len(frame)) < 0.85, rng.random(len(frame)) < 0.2)
    frame["gender"] = np.where(female, "f", "m")
    return sample_data.encode(frame)


@pytest.fixture(scope="module")
def outcome(
    tmp_path_factory: pytest.TempPathFactory, synth_with_config: Callable[[str], Path]
) -> Iterator[dict[str, Any]]:
    cdk_out = synth_with_config(_config())
    state = tmp_path_factory.mktemp("insight-state")
    with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state) as cloud:
        bucket = cloud.outputs["DataBucketName"]
        s3 = cloud.client("s3")
        key = "raw/churn/with-gender.csv"
        put = s3.put_object(Bucket=bucket, Key=key, Body=_drop(3_000, seed=31))
        name = cloud.execution_name_for_object(bucket, key, put.get("VersionId"), put["ETag"])
        described = cloud.wait_for_execution(name, timeout=300)
        output = json.loads(described.get("output") or "{}")
        result = {"status": described["status"], "outcome": model_outcome(output, "churn")}
        evaluation = result["outcome"].get("evaluation") or {}
        if evaluation.get("evaluation_key"):
            body = s3.get_object(Bucket=bucket, Key=evaluation["evaluation_key"])["Body"].read()
            result["document"] = body.decode()
        yield result


def test_a_disparate_candidate_is_rejected_by_the_fairness_gate(outcome: dict[str, Any]) -> None:
    assert outcome["status"] == "SUCCEEDED"
    assert outcome["outcome"]["status"] == "rejected"
    evaluation = outcome["outcome"]["evaluation"]
    assert evaluation["metrics"]["roc_auc"] >= 0.75  # a good model, rejected for fairness only
    (failed,) = evaluation["failed"]
    assert failed.startswith("demographic_parity_difference across gender ")
    assert failed.endswith("> max 0.1")
    assert "registered" not in outcome["outcome"]


def test_the_insight_is_stored_without_raw_sensitive_values(outcome: dict[str, Any]) -> None:
    training = outcome["outcome"]["training"]
    assert training["estimator"] == "logistic_regression"
    stored = outcome["document"]
    document = formats.read(formats.EVALUATION, json.loads(stored))
    candidate = document["insight"]["candidate"]
    assert document["insight"]["champion"] is None
    assert candidate["calibration"]["method"] == "isotonic"
    assert 0 < candidate["calibration"]["brier"] < 0.25
    assert len(candidate["thresholds"]) == 19
    gender = candidate["fairness"]["attributes"]["gender"]
    assert {group["group"] for group in gender["groups"]} == {"f", "m"}
    assert gender["demographic_parity_difference"] > 0.1
    features = {row["feature"] for row in candidate["slices"]["rows"]}
    assert {"contract", "region"} <= features and "gender" not in features
    for region in sample_data.REGIONS:
        assert f'"{region}"' not in stored
