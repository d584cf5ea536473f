"""What a model's iteration of the pipeline's Map hands its stage functions (`PipelineState`:
`model`, `execution`, `trigger`), and how a model's outcome is read from an execution's
output."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common.contracts import PipelineState, SourceObject, model_outcome
from tests.helpers.datasets import dataset_ref
from tests.helpers.training import training_run

SOURCE = SourceObject(bucket="b", key="raw/churn/a.csv", version_id="1")
REF = dataset_ref("v1", SOURCE, created_at="2026-01-01T00:00:00.000Z")


def _training(model: str) -> dict[str, Any]:
    return training_run(model, "r1").model_dump(mode="json")


def test_an_iteration_for_a_drop_reads_the_dataset_version_from_its_trigger() -> None:
    state = PipelineState.model_validate(
        {
            "model": "churn-lgbm",
            "execution": {"id": "arn:exec"},
            "trigger": {"dataset": {**REF.model_dump(mode="json"), "models": ["churn-lgbm"]}},
        }
    )
    assert state.model == "churn-lgbm"
    assert state.dataset is not None and state.dataset.data_version == "v1"
    assert state.dataset.models == ["churn-lgbm"]
    assert state.retrain is None


def test_an_iteration_for_a_retrain_reads_the_request_and_an_old_request_names_no_model() -> None:
    state = PipelineState.model_validate(
        {"model": "churn", "trigger": {"retrain": {"model": "churn", "reason": "drift"}}}
    )
    assert state.retrain is not None and state.retrain.model == "churn"
    assert state.dataset is None
    old = PipelineState.model_validate({"retrain": {"data_version": "v1"}})
    assert old.model is None and old.retrain is not None and old.retrain.model is None


def test_a_stage_refuses_a_training_run_of_another_model() -> None:
    state = PipelineState.model_validate({"model": "churn", "training": _training("churn")})
    assert state.trained_model() == "churn"
    assert PipelineState.model_validate({"training": _training("a")}).trained_model() == "a"
    other = PipelineState.model_validate({"model": "churn", "training": _training("prices")})
    with pytest.raises(ValueError, match="for model 'churn' but its training run r1 is of"):
        other.trained_model()


def test_a_models_outcome_is_read_from_the_executions_output() -> None:
    output = {
        "models": {
            "outcomes": [{"model": "a", "status": "promoted"}, {"model": "b", "status": "failed"}],
            "statuses": ["promoted", "failed"],
        }
    }
    assert model_outcome(output, "b") == {"model": "b", "status": "failed"}
    assert model_outcome({"models": {"outcomes": [{"model": "a"}]}}) == {"model": "a"}
    with pytest.raises(KeyError, match=r"one model.*\['a', 'b'\]"):
        model_outcome(output)
    with pytest.raises(KeyError, match="model 'c'"):
        model_outcome(output, "c")
