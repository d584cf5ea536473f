"""The label-free performance estimate (CBPE): calibrated on held-out rows, it tracks the
accuracy the labels later realize on shifted windows, for binary and multiclass models; a
regression model or a profile without calibration gets none, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from functions.common import formats
from functions.ml.drift.estimate import (
    MAX_MAP_POINTS,
    EstimateAccumulator,
    fit_calibration,
    window_estimate,
)
from functions.ml.onnx_input import Prediction
from functions.ml.reference_profile import reference_profile
from tests.helpers.drift import churn_reference
from tests.helpers.models import CHURN_SCHEMA

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"


def _binary(rows: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Known truth: P(yes | x) = sigmoid(2 x0 - x1); covariate shift moves x0 only. The model
    is the truth made overconfident (logit tripled): right in ranking, wrong in probability,
    so only a calibrated estimate is right."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    x[:, 0] += shift
    logit = 2 * x[:, 0] - x[:, 1]
    truth = rng.random(rows) < 1 / (1 + np.exp(-logit))
    score = 1 / (1 + np.exp(-3 * logit))
    return np.column_stack([1 - score, score]), np.where(truth, "yes", "no")


def _predicted(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    return [classes[i] for i in np.argmax(probabilities, axis=1)]


def test_the_binary_estimate_tracks_realized_accuracy_f1_and_auc_under_covariate_shift() -> None:
    held_out, labels = _binary(20_000, 0.0, seed=1)
    calibration = fit_calibration(held_out, ["no", "yes"], labels, seed=0)
    assert calibration is not None and calibration["positive_class"] == "yes"
    assert len(calibration["maps"]["yes"]["x"]) <= MAX_MAP_POINTS
    realized_before = np.mean(np.array(_predicted(held_out, ["no", "yes"])) == labels)
    assert calibration["reference"]["accuracy"] == pytest.approx(realized_before)

    errors = []
    for step, shift in enumerate((0.0, 0.5, 1.0, 1.5)):
        probabilities, truth = _binary(20_000, shift, seed=10 + step)
        predicted = _predicted(probabilities, ["no", "yes"])
        estimate = window_estimate(
            calibration,
            "classification",
            predicted,
            probabilities.tolist(),
            ["no", "yes"],
            tolerance=0.05,
            min_rows=100,
        )
        assert estimate.verdict in ("ok", "drop") and estimate.rows == 20_000
        realized = np.mean(np.array(predicted) == truth)
        errors.append(abs(estimate.metrics["accuracy"] - realized))
        positive = truth == "yes"
        assert estimate.metrics["roc_auc"] == pytest.approx(
            roc_auc_score(positive, probabilities[:, 1]), abs=0.02
        )
        assert estimate.metrics["f1"] == pytest.approx(
            f1_score(positive, np.array(predicted) == "yes"), abs=0.03
        )
    assert max(errors) < 0.02, errors
    # The raw (overconfident) probabilities would have claimed far more.
    raw_claim = np.mean(np.max(_binary(20_000, 0.0, seed=10)[0], axis=1))
    assert raw_claim - realized_before > 0.08


def _multiclass(rows: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes with softmax truth over 2 features; the model is the truth underconfident
    (logits halved); covariate shift moves both features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)) + shift
    logits = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]]) * 1.5
    truth_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    drawn = (rng.random(rows)[:, None] > np.cumsum(truth_p, axis=1)).sum(axis=1)
    model = np.exp(logits / 2) / np.exp(logits / 2).sum(axis=1, keepdims=True)
    return model, np.array(["a", "b", "c"])[drawn]


def test_the_multiclass_estimate_calibrates_each_class_and_tracks_accuracy_and_f1() -> None:
    classes = ["a", "b", "c"]
    held_out, labels = _multiclass(20_000, 0.0, seed=2)
    calibration = fit_calibration(held_out, classes, labels, seed=0)
    assert calibration is not None and calibration["positive_class"] is None
    assert set(calibration["maps"]) == set(classes)
    for step, shift in enumerate((0.0, 0.4, 0.8)):
        probabilities, truth = _multiclass(20_000, shift, seed=20 + step)
        predicted = _predicted(probabilities, classes)
        estimate = window_estimate(
            calibration,
            "classification",
            predicted,
            probabilities.tolist(),
            classes,
            tolerance=0.05,
            min_rows=100,
        )
        assert set(estimate.metrics) == {"accuracy", "f1_macro"}
        realized = np.mean(np.array(predicted) == truth)
        assert estimate.metrics["accuracy"] == pytest.approx(realized, abs=0.02)
        macro = f1_score(truth, predicted, average="macro")
        assert estimate.metrics["f1_macro"] == pytest.approx(macro, abs=0.03)


def test_a_drop_is_an_estimate_below_the_reference_by_more_than_the_tolerance() -> None:
    held_out, labels = _binary(5_000, 0.0, seed=3)
    calibration = fit_calibration(held_out, ["no", "yes"], labels, seed=0)
    # Rows near the boundary: the model is unsure, its expected accuracy falls.
    score = np.random.default_rng(4).uniform(0.45, 0.55, 500)
    unsure = np.column_stack([1 - score, score])
    predicted = _predicted(unsure, ["no", "yes"])
    estimate = window_estimate(
        calibration, "classification", predicted, unsure.tolist(), tolerance=0.05, min_rows=100
    )
    assert estimate.verdict == "drop" and "accuracy" in estimate.dropped
    assert estimate.changes["accuracy"] < -0.05
    # The positive class's F1 and ROC AUC are compared but never make the drop.
    assert estimate.changes["roc_auc"] < -0.05 and "roc_auc" not in estimate.dropped
    assert set(estimate.dropped) <= {"accuracy", "f1_macro"}
    few = window_estimate(
        calibration,
        "classification",
        predicted[:50],
        unsure[:50].tolist(),
        tolerance=0.05,
        min_rows=100,
    )
    assert few.verdict == "insufficient_data" and "min_rows 100" in few.notes[-1]
    silent = window_estimate(
        calibration, "classification", predicted, unsure.tolist(), tolerance=None, min_rows=100
    )
    assert silent.verdict == "ok" and silent.changes["accuracy"] < -0.05


def test_chunks_and_reordered_classes_give_the_same_estimate() -> None:
    held_out, labels = _binary(5_000, 0.0, seed=5)
    calibration = fit_calibration(held_out, ["no", "yes"], labels, seed=0)
    assert calibration is not None
    probabilities, _ = _binary(3_000, 0.7, seed=6)
    predicted = _predicted(probabilities, ["no", "yes"])
    whole = EstimateAccumulator(calibration)
    whole.add(predicted, probabilities.tolist(), ["no", "yes"])
    chunked = EstimateAccumulator(calibration)
    for start in range(0, 3_000, 700):
        part = probabilities[start : start + 700]
        # A record may list the classes in another order: its columns are matched by name.
        chunked.add(predicted[start : start + 700], part[:, ::-1].tolist(), ["yes", "no"])
    chunked.add(["no"], None)  # a record without probabilities is counted, not estimated
    assert chunked.metrics() == pytest.approx(whole.metrics())
    result = chunked.result(tolerance=0.05, min_rows=10)
    assert result.rows == 3_000 and "1 row(s) without usable probabilities" in result.notes[0]


def test_regression_and_profiles_without_calibration_have_no_estimate() -> None:
    regression = window_estimate(None, "regression", [1.5], None, tolerance=0.05, min_rows=1)
    assert regression.verdict == "unavailable" and "regression" in regression.notes[0]
    # A format 2 profile (before calibration) reads as current, without calibration.
    [v2] = [json.loads((FIXTURES / "reference-profile" / "v2.json").read_text())]
    old = formats.read(formats.REFERENCE_PROFILE, v2)
    assert "calibration" not in old
    estimate = window_estimate(
        old.get("calibration"),
        "classification",
        ["no"] * 200,
        [[0.9, 0.1]] * 200,
        ["no", "yes"],
        tolerance=0.05,
        min_rows=100,
    )
    assert estimate.verdict == "unavailable" and "no calibration" in estimate.notes[0]
    assert json.dumps(estimate.to_dict(), allow_nan=False)


def test_the_reference_profile_carries_the_calibration_of_a_classifier_only() -> None:
    from functions.ml.sample_data import churn_frame

    train = churn_frame(600, seed=1, duplicate_share=0.0)
    profile = churn_reference(train, predictions=800, calibrated=True)
    calibration = profile["calibration"]
    assert calibration["classes"] == ["no", "yes"] and calibration["rows"] == 800
    assert set(calibration["reference"]) == {"accuracy", "f1_macro", "f1", "roc_auc"}
    assert json.dumps(profile, allow_nan=False)
    assert "calibration" not in churn_reference(train, predictions=800)
    values = train["monthly_charges"].to_numpy()
    regression = reference_profile(
        train.drop(columns=["churned"]),
        schema={k: v for k, v in CHURN_SCHEMA.items() if k != "monthly_charges"},
        target="monthly_charges",
        predictions=Prediction(labels=values[:100], probabilities=None),
        task="regression",
        sample_rows=10,
        seed=1,
        held_out_labels=values[:100],
    )
    assert "calibration" not in regression
