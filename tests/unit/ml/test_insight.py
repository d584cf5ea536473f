"""Model insight on held-out rows, with real models scored through onnxruntime: an injected
slice failure is listed first, small slices are suppressed, a disparate model is flagged (and
`[gate.fairness]` rejects it), calibration lowers a miscalibrated model's Brier score and the
calibrated ONNX export passes parity, and no raw value of a sensitive column is ever stored."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as skm

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.insight import FairnessGateConfig
from functions.common.config.training import ModelConfig
from functions.common.sensitive import hash_value
from functions.ml.gate import fairness_criteria
from functions.ml.insight import InsightSettings, Privacy, model_insight, scores_of
from functions.ml.onnx_model import OnnxModel, check_parity, export_onnx
from functions.ml.training import fit_model, split_dataset

SCHEMA: dict[str, FeatureType] = {
    "x1": FeatureType.NUMERIC,
    "x2": FeatureType.NUMERIC,
    "plan": FeatureType.CATEGORICAL,
    "region": FeatureType.CATEGORICAL,
}


def _rows(n: int, seed: int, *, broken_plan: str | None = None) -> pd.DataFrame:
    """x1 and x2 drive the label; in `broken_plan`'s rows the label is a coin flip (a slice
    the model cannot get right). `gender` is audit-only: no feature, no effect on the label."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    logit = 2.0 * x1 - 1.5 * x2
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    if broken_plan is not None:
        broken = plan == broken_plan
        label[broken] = rng.random(int(broken.sum())) < 0.5
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "plan": plan,
            "region": rng.choice(
                ["north", "south", "east", "tiny"], size=n, p=[0.4, 0.3, 0.29, 0.01]
            ),
            "gender": rng.choice(["female", "male"], size=n),
            "label": np.where(label, "yes", "no"),
        }
    )


def _fit(
    frame: pd.DataFrame,
    *,
    estimator: str = "logistic_regression",
    params: dict[str, Any] | None = None,
    calibrate: str | None = None,
    schema: dict[str, FeatureType] = SCHEMA,
) -> tuple[OnnxModel, pd.DataFrame, Any]:
    """Fit, export and parity-check as the train stage does; the ONNX model, the held-out
    rows and the fitted pipeline."""
    split = split_dataset(frame, target="label", task=Task.CLASSIFICATION, test_size=0.4, seed=0)
    fitted = fit_model(
        split.train,
        target="label",
        task=Task.CLASSIFICATION,
        schema=schema,
        model=ModelConfig(params=params or {}, calibrate=calibrate),
        estimator=estimator,
    )
    onnx, signature = export_onnx(
        fitted.pipeline, schema=schema, target="label", task=Task.CLASSIFICATION, train=split.train
    )
    model = OnnxModel(onnx, signature)
    check_parity(fitted.pipeline, model, split.test, tolerance=1e-4)  # raises ParityError
    return model, split.test, fitted.pipeline


def _insight(
    model: OnnxModel, holdout: pd.DataFrame, settings: InsightSettings, **kwargs: Any
) -> dict[str, Any]:
    prediction = model.predict(holdout)
    signature = model.signature
    scores = scores_of(
        Task.CLASSIFICATION,
        holdout["label"].to_numpy(),
        prediction.labels,
        prediction.probabilities,
        signature.classes,
    )
    return model_insight(holdout, scores, schema=signature.schema, settings=settings, **kwargs)


@pytest.fixture(scope="module")
def broken() -> tuple[OnnxModel, pd.DataFrame]:
    model, holdout, _ = _fit(_rows(3000, 1, broken_plan="plus"))
    return model, holdout


def test_an_injected_slice_failure_is_listed_first_and_small_slices_are_suppressed(
    broken: tuple[OnnxModel, pd.DataFrame],
) -> None:
    model, holdout = broken
    insight = _insight(model, holdout, InsightSettings(quantile_feature="x1", quantile_bins=4))
    slices = insight["slices"]
    assert insight["task"] == "binary" and insight["metric"] == "roc_auc"
    first = slices["rows"][0]
    assert (first["feature"], first["kind"], first["slice"]) == ("plan", "category", "plus")
    assert first["value"] < first["overall"] - 0.15
    values = [row["value"] for row in slices["rows"]]
    assert values == sorted(values)  # worst (lowest roc_auc) first
    # region "tiny" has about 12 of 1200 held-out rows: counted, never listed
    listed = {(row["feature"], row["slice"]) for row in slices["rows"]}
    assert ("region", "tiny") not in listed and slices["suppressed"] == 1
    assert slices["min_rows"] == 30
    # quantile bins of x1: four bins of about equal rows, left-closed, the last one closed
    bins = [row for row in slices["rows"] if row["kind"] == "quantile"]
    assert len(bins) == 4 and sum(row["rows"] for row in bins) == len(holdout)
    assert all(abs(row["rows"] - len(holdout) / 4) <= 1 for row in bins)
    assert sum(row["slice"].endswith("]") for row in bins) == 1
    # every listed slice's value is the metric of its rows
    plus = holdout["plan"] == "plus"
    probabilities = model.predict(holdout[plus]).probabilities
    assert probabilities is not None
    expected = skm.roc_auc_score(holdout["label"][plus] == "yes", probabilities[:, 1])
    assert first["value"] == pytest.approx(expected)
    assert first["rows"] == int(plus.sum())


def test_slices_below_three_times_the_minimum_are_flagged_small(
    broken: tuple[OnnxModel, pd.DataFrame],
) -> None:
    model, holdout = broken
    insight = _insight(model, holdout, InsightSettings(privacy=Privacy(min_rows=200)))
    rows = insight["slices"]["rows"]
    assert rows and all(row["rows"] >= 200 for row in rows)
    assert {row["flag"] for row in rows if row["rows"] < 600} == {"small"}
    assert {row["flag"] for row in rows if row["rows"] >= 600} <= {None}


def test_a_disparate_model_is_flagged_and_the_fairness_gate_rejects_it() -> None:
    """The model uses `gender` (here a feature) against the label: its selection rates differ
    by group, which demographic parity measures; a model without it is fair enough."""
    rng = np.random.default_rng(7)
    frame = _rows(3000, 2)
    frame["label"] = np.where(
        (frame["gender"] == "male") & (rng.random(len(frame)) < 0.6), "yes", frame["label"]
    )
    disparate_schema = {**SCHEMA, "gender": FeatureType.CATEGORICAL}
    settings = InsightSettings(fairness_attributes=["gender"])
    bounds = FairnessGateConfig(
        max_demographic_parity_difference=0.1, max_equalized_odds_difference=0.5
    )

    model, holdout, _ = _fit(frame, schema=disparate_schema)
    table = _insight(model, holdout, settings)["fairness"]["attributes"]["gender"]
    predicted = model.predict(holdout).labels == "yes"
    rates = {g: predicted[holdout["gender"] == g].mean() for g in ("female", "male")}
    assert table["demographic_parity_difference"] == pytest.approx(
        abs(rates["male"] - rates["female"])
    )
    assert table["demographic_parity_difference"] > 0.25
    truth = holdout["label"].to_numpy() == "yes"
    assert table["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(truth, predicted, sensitive_features=holdout["gender"])
    )
    assert table["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(truth, predicted, sensitive_features=holdout["gender"])
    )
    assert {group["group"]: group["selection_rate"] for group in table["groups"]} == (
        pytest.approx(rates)
    )
    assert sum(group["rows"] for group in table["groups"]) == len(holdout)
    criteria = fairness_criteria({"attributes": {"gender": table}}, bounds)
    assert [c.metric for c in criteria] == [
        "demographic_parity_difference",
        "equalized_odds_difference",
    ]
    parity = criteria[0]
    assert not parity.passed and parity.kind == "max_difference"
    assert parity.message.startswith("demographic_parity_difference across gender 0.")
    assert "> max 0.1" in parity.message
    assert criteria[1].passed == (table["equalized_odds_difference"] <= 0.5)

    fair = _rows(3000, 2)  # the same rows, the label independent of gender
    model, holdout, _ = _fit(fair)  # gender is audit-only: not a feature
    assert "gender" not in model.signature.schema
    table = _insight(model, holdout, settings)["fairness"]["attributes"]["gender"]
    assert table["demographic_parity_difference"] < 0.1
    assert all(c.passed for c in fairness_criteria({"attributes": {"gender": table}}, bounds))


def test_the_fairness_gate_fails_when_too_few_groups_are_large_enough_to_compare() -> None:
    """Every group below the minimum size is suppressed: no difference was measured, so a bound
    on it fails (it does not pass on a difference of zero)."""
    model, holdout, _ = _fit(_rows(3000, 2))
    settings = InsightSettings(
        fairness_attributes=["gender"], privacy=Privacy(min_rows=len(holdout))
    )
    table = _insight(model, holdout, settings)["fairness"]["attributes"]["gender"]
    assert table["groups"] == [] and table["suppressed"] == 2
    assert table["demographic_parity_difference"] is None
    bounds = FairnessGateConfig(max_demographic_parity_difference=0.1)
    (criterion,) = fairness_criteria({"attributes": {"gender": table}}, bounds)
    assert not criterion.passed
    assert criterion.message.startswith("demographic_parity_difference across gender is undefined")


def test_the_fairness_gate_fails_when_fairness_was_not_measured() -> None:
    (criterion,) = fairness_criteria(None, FairnessGateConfig(max_equalized_odds_difference=0.2))
    assert not criterion.passed and "not measured" in criterion.message


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_lowers_a_miscalibrated_models_brier_score_and_passes_parity(
    method: str,
) -> None:
    """A heavily regularised logistic regression is underconfident: its probabilities huddle
    around the base rate."""
    frame = _rows(2000, 3)
    shrunk = {"C": 0.001}
    raw, holdout, _ = _fit(frame, params=shrunk)
    # `_fit` checks parity of the calibrated export at 1e-4, as the train stage does
    calibrated, same_rows, pipeline = _fit(frame, params=shrunk, calibrate=method)
    assert type(pipeline.steps[-1][1]).__name__ == "CalibratedClassifierCV"
    assert same_rows.equals(holdout)
    before = _insight(raw, holdout, InsightSettings())["calibration"]
    after = _insight(calibrated, holdout, InsightSettings(), calibration_method=method)[
        "calibration"
    ]
    assert (before["method"], after["method"]) == (None, method)
    assert after["brier"] < before["brier"] - 0.05
    probabilities = calibrated.predict(holdout).probabilities
    assert probabilities is not None
    assert after["brier"] == pytest.approx(
        skm.brier_score_loss(holdout["label"] == "yes", probabilities[:, 1])
    )
    curve = after["curve"]
    assert sum(point["rows"] for point in curve) == len(holdout)
    assert all(0 <= point["mean_predicted"] <= 1 for point in curve)
    assert [p["mean_predicted"] for p in curve] == sorted(p["mean_predicted"] for p in curve)


def test_the_threshold_table_matches_scikit_learn_at_every_threshold(
    broken: tuple[OnnxModel, pd.DataFrame],
) -> None:
    model, holdout = broken
    table = _insight(model, holdout, InsightSettings())["thresholds"]
    probabilities = model.predict(holdout).probabilities
    assert probabilities is not None
    truth = holdout["label"].to_numpy() == "yes"
    assert [row["threshold"] for row in table] == pytest.approx(np.arange(0.05, 0.951, 0.05))
    for row in table:
        called = probabilities[:, 1] >= row["threshold"]
        assert row["precision"] == pytest.approx(
            skm.precision_score(truth, called, zero_division=0)
        )
        assert row["recall"] == pytest.approx(skm.recall_score(truth, called))
        assert row["f1"] == pytest.approx(skm.f1_score(truth, called, zero_division=0))
    recalls = [row["recall"] for row in table]
    assert recalls == sorted(recalls, reverse=True)


def test_no_raw_value_of_a_sensitive_column_is_in_the_insight() -> None:
    """`region` is hashed, `gender` dropped (both features): slices and fairness groups show
    truncated hashes and numbered groups; the dropped column has no slices at all."""
    frame = _rows(3000, 4)
    schema = {**SCHEMA, "gender": FeatureType.CATEGORICAL}
    model, holdout, _ = _fit(frame, schema=schema)
    privacy = Privacy({"region": "hash", "gender": "drop"}, salt="pepper", min_rows=30)
    insight = _insight(
        model,
        holdout,
        InsightSettings(fairness_attributes=["gender", "region"], privacy=privacy),
    )
    stored = json.dumps(insight)
    for raw in ("north", "south", "east", "tiny", "female", "male"):
        assert raw not in stored
    region = [row for row in insight["slices"]["rows"] if row["feature"] == "region"]
    expected = {"sha256:" + hash_value(v, "pepper")[:8] for v in ("north", "south", "east")}
    assert {row["slice"] for row in region} == expected
    assert not [row for row in insight["slices"]["rows"] if row["feature"] == "gender"]
    groups = insight["fairness"]["attributes"]["gender"]["groups"]
    assert {group["group"] for group in groups} == {"group 1", "group 2"}
    assert groups[0]["rows"] >= groups[1]["rows"]


def test_multiclass_and_regression_insight() -> None:
    rng = np.random.default_rng(5)
    frame = _rows(1500, 5)
    frame["label"] = np.where(frame["x1"] > 0.5, "high", np.where(frame["x1"] < -0.5, "low", "mid"))
    model, holdout, _ = _fit(frame)
    insight = _insight(model, holdout, InsightSettings(fairness_attributes=["gender"]))
    assert (insight["task"], insight["metric"]) == ("multiclass", "f1_macro")
    assert insight["thresholds"] is None and insight["fairness"] is None
    probabilities = model.predict(holdout).probabilities
    assert probabilities is not None
    onehot = np.asarray(model.signature.classes)[None, :] == holdout["label"].to_numpy()[:, None]
    brier = np.mean(np.sum((probabilities - onehot) ** 2, axis=1))
    assert insight["calibration"]["brier"] == pytest.approx(brier)

    y_true = rng.normal(size=len(holdout))
    predicted = y_true + np.where(holdout["plan"] == "pro", 3.0, 0.1)
    regression = model_insight(
        holdout,
        scores_of(Task.REGRESSION, y_true, predicted, None, None),
        schema=SCHEMA,
        settings=InsightSettings(),
    )
    assert (regression["task"], regression["metric"]) == ("regression", "rmse")
    assert regression["calibration"] is None and regression["thresholds"] is None
    worst = regression["slices"]["rows"][0]
    assert (worst["feature"], worst["slice"]) == ("plan", "pro")
    assert worst["value"] == pytest.approx(3.0)  # rmse: worst is the largest


def test_a_column_the_held_out_rows_lack_is_named() -> None:
    frame = _rows(200, 6)
    scores = scores_of(Task.REGRESSION, np.zeros(200), np.zeros(200), None, None)
    with pytest.raises(ValueError, match="model_card names column.*: nope"):
        model_insight(
            frame, scores, schema=SCHEMA, settings=InsightSettings(slice_features=["nope"])
        )


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_calibrated_multiclass_model_with_a_grid_passes_parity(method: str) -> None:
    """The grid names the estimator's own parameters; inside the calibration wrapper they are
    searched as such, and the run records them under their own names."""
    frame = _rows(1500, 8)
    noise = np.random.default_rng(8).normal(size=len(frame))
    frame["label"] = np.where(
        frame["x1"] + noise > 0.5, "high", np.where(frame["x1"] < -0.5, "low", "mid")
    )
    split = split_dataset(frame, target="label", task=Task.CLASSIFICATION, test_size=0.4, seed=0)
    fitted = fit_model(
        split.train,
        target="label",
        task=Task.CLASSIFICATION,
        schema=SCHEMA,
        model=ModelConfig(calibrate=method, grid={"C": [0.1, 1.0]}),
        estimator="logistic_regression",
    )
    assert fitted.params["C"] in (0.1, 1.0)
    assert fitted.search is not None
    assert [set(c["params"]) for c in fitted.search["candidates"]] == [{"C"}, {"C"}]
    onnx, signature = export_onnx(
        fitted.pipeline, schema=SCHEMA, target="label", task=Task.CLASSIFICATION, train=split.train
    )
    report = check_parity(fitted.pipeline, OnnxModel(onnx, signature), split.test, tolerance=1e-4)
    assert report.passed and signature.classes == ["high", "low", "mid"]


def test_calibrating_a_boosting_framework_is_refused_naming_it() -> None:
    pytest.importorskip("lightgbm")
    with pytest.raises(ValueError, match="model.calibrate is not available for lightgbm"):
        _fit(_rows(300, 9), estimator="lightgbm", calibrate="sigmoid")
