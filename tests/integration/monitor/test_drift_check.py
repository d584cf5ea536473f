"""The drift check on moto: capture objects and feedback in the data bucket, a registered model
version with its reference profile, and `run_check` as the scheduled function runs it. The
window moves from check to check, drift raises `DriftDetected` (a queue subscribed through an
EventBridge rule receives it), the cooldown holds, and labelled feedback gives live metrics and
training rows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.loading import MlopsConfig, load_config
from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE
from functions.ml.sample_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, churn_frame
from functions.monitor.handler import BadRequestError, window_hours
from functions.monitor.logic import MonitorService, run_check, summary
from functions.monitor.state import MonitorStore
from tests.helpers.config import CHALLENGER, with_challenger
from tests.helpers.drift import churn_reference, monitored_version

REPO = Path(__file__).resolve().parents[3]
MODEL = "churn"
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
METRICS = {"accuracy": 0.8, "f1_macro": 0.78, "roc_auc": 0.86}


def _config(**drift: Any) -> MlopsConfig:
    config = load_config(REPO / "mlops.toml")
    return config.model_copy(update={"drift": config.drift.model_copy(update=drift)})


def _register(
    cloud: Any, version: int = 1, model: str = MODEL, *, calibrated: bool = False
) -> dict[str, Any]:
    """A registered version of `model` and its reference profile (returned); `calibrated`:
    with the calibration of its held-out probabilities (`churn_reference`)."""
    train = churn_frame(3_000, seed=1, duplicate_share=0.0)
    schema = load_config(REPO / "mlops.toml").dataset.features
    assert schema is not None
    profile = churn_reference(
        train,
        schema,
        sample_rows=1_000,
        predictions=4_000 if calibrated else 600,
        calibrated=calibrated,
    )
    prefix = f"models/{model}/{version}/"
    cloud.s3.put_object(
        Bucket=cloud.bucket, Key=prefix + "reference_profile.json", Body=json.dumps(profile)
    )
    registry = ModelRegistry(cloud.table)
    registry.put_version(monitored_version(model, registry.allocate_version(model), METRICS))
    return profile


def _rows(count: int, seed: int, shift: bool = False) -> list[dict[str, Any]]:
    frame = churn_frame(count, seed=seed, first_id=9_000_000, duplicate_share=0.0)
    if shift:
        frame["monthly_charges"] = frame["monthly_charges"] + 40.0
        frame["tenure_months"] = frame["tenure_months"] * 2.0
        frame["contract"] = "month-to-month"
    records = frame[FEATURES].astype(object).to_dict("records")
    return [{k: (None if v != v else v) for k, v in row.items()} for row in records]


def _capture(
    cloud: Any,
    name: str,
    rows: list[dict[str, Any]],
    version: int = 1,
    predict: str = "no",
    model: str = MODEL,
    scores: list[float] | None = None,
) -> list[str]:
    """One capture object as Firehose writes it: a columnar record per request of 50 rows
    (the predict function's log lines); returns the request ids. `scores`: each row's P(yes)
    (the prediction its argmax), else every row predicted `predict` at P(yes) 0.3."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    lines, ids = [], []
    for start in range(0, len(rows), 50):
        request_id = f"{name}-{start // 50}"
        ids.append(request_id)
        chunk = rows[start : start + 50]
        yes = scores[start : start + 50] if scores is not None else [0.3] * len(chunk)
        record = {
            "record": "capture",
            "format_version": 2,
            "request_id": request_id,
            "timestamp": "2026-11-27T00:00:00.000Z",
            "model_name": model,
            "model_version": version,
            "alias": "production",
            "route": "v1",
            "rollout": None,
            "first_row": 0,
            "rows": len(chunk),
            "request_rows": len(chunk),
            "columns": {feature: [row.get(feature) for row in chunk] for feature in chunk[0]},
            "predictions": (
                ["yes" if p >= 0.5 else "no" for p in yes]
                if scores is not None
                else [predict] * len(chunk)
            ),
            "probabilities": [[1.0 - p, p] for p in yes],
            "classes": ["no", "yes"],
            "latency_ms": 0.5,
            "error": None,
        }
        lines.append(json.dumps(record))
    cloud.s3.put_object(
        Bucket=cloud.bucket, Key=f"capture/dt={day}/{name}", Body="\n".join(lines) + "\n"
    )
    return ids


def _service(cloud: Any, config: MlopsConfig, model: str | None = None) -> MonitorService:
    models = ModelRegistry(cloud.table)
    # (A single-model config edited by `_config` is its own model's view.)
    view = config.for_model(model) if model else config
    return MonitorService(
        config=view,
        bucket=cloud.bucket,
        objects=ObjectStore(cloud.s3),
        models=models,
        state=MonitorStore(models, view.model_name),
        unnamed_capture=view.model_name == config.default_model,
    )


def _check(
    cloud: Any, config: MlopsConfig, model: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    time.sleep(1.05)  # the window ends a whole second before the check
    return run_check(_service(cloud, config, model), **kwargs)


def _portfolio(tmp_path: Path) -> MlopsConfig:
    """The repo's config with two models on its dataset, the challenger with its own cooldown
    and no feedback retraining anywhere."""
    text = with_challenger(drift="cooldown_hours = 1")
    text = text.replace("auto_retrain = true", "auto_retrain = true\nretrain_with_feedback = false")
    path = tmp_path / "mlops.toml"
    path.write_text(text)
    return load_config(path)


@pytest.fixture
def drift_events(
    cloud: Any, subscribe_events: Callable[..., Any]
) -> Callable[[], list[dict[str, Any]]]:
    """DriftDetected events, as a queue subscribed through an EventBridge rule receives them."""
    received: Callable[[], list[dict[str, Any]]] = subscribe_events(
        boto3.client("sqs"), boto3.client("events"), MONITOR_SOURCE, DRIFT_DETECTED
    )
    return received


def test_same_distribution_traffic_is_no_drift_and_writes_the_reports(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    _register(cloud)
    _capture(cloud, "normal-a", _rows(400, seed=11))
    _capture(cloud, "normal-b", _rows(400, seed=12))

    result = _check(cloud, _config(auto_retrain=True))

    assert result["verdict"] == "no_drift", result["versions"][0]["report"]["drifted"]
    assert result["window"]["rows"] == 800 and result["window"]["objects"] == 2
    assert result["versions"][0]["model_version"] == 1
    stored = json.loads(cloud.body(result["result_key"]))
    assert stored["check_id"] == result["check_id"] and stored["verdict"] == "no_drift"
    html = cloud.body(result["report_key"]).decode()
    assert "<html" in html.lower() and "monthly_charges" in html
    assert result["retrain"]["requested"] is False and result["retrain"]["reason"] is None
    assert drift_events() == []
    # The profile has no calibration (as one written before estimates): none, never an error.
    assert result["estimate"]["verdict"] == "unavailable"
    assert "no calibration" in result["estimate"]["notes"][0]


def test_each_check_reads_only_what_was_captured_since_the_previous_one(cloud: Any) -> None:
    _register(cloud)
    _capture(cloud, "first", _rows(300, seed=21))
    first = _check(cloud, _config())
    _capture(cloud, "second", _rows(200, seed=22))
    second = _check(cloud, _config())
    third = _check(cloud, _config())

    assert first["window"]["rows"] == 300
    assert second["window"]["rows"] == 200 and second["window"]["start"] == first["window"]["end"]
    assert third["window"]["rows"] == 0 and third["verdict"] == "insufficient_data"
    # A manual window looks back regardless of the previous checks.
    manual = _check(cloud, _config(), window_hours=1)
    assert manual["window"]["rows"] == 500


def test_shifted_traffic_requests_retraining_once_then_the_cooldown_holds(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    _register(cloud)
    config = _config(auto_retrain=True, cooldown_hours=24, retrain_with_feedback=False)
    _capture(cloud, "shifted-a", _rows(600, seed=31, shift=True))
    first = _check(cloud, config)
    _capture(cloud, "shifted-b", _rows(600, seed=32, shift=True))
    second = _check(cloud, config)

    assert first["verdict"] == "drift"
    drifted = summary(first)["drifted"]
    assert {"monthly_charges", "tenure_months", "contract"} <= set(drifted)
    assert first["retrain"]["requested"] is True and first["retrain"]["via"] == "pipeline"
    assert second["verdict"] == "drift" and second["retrain"]["requested"] is False
    assert "cooldown" in second["retrain"]["skipped"]
    events = drift_events()
    assert [e["check_id"] for e in events] == [first["check_id"], second["check_id"]]
    assert events[0]["retrain"]["via"] == "pipeline"
    assert events[0]["pipeline_input"]["retrain"]["reason"].startswith(
        f"drift check {first['check_id']}"
    )
    assert events[1]["retrain"]["via"] is None  # the rule starts nothing for this one


def test_drift_without_auto_retrain_is_reported_but_starts_nothing(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    _register(cloud)
    _capture(cloud, "shifted", _rows(600, seed=33, shift=True))

    result = _check(cloud, _config(auto_retrain=False))

    assert result["verdict"] == "drift"
    assert result["retrain"] == {**result["retrain"], "requested": False}
    assert result["retrain"]["skipped"] == "auto_retrain is off"
    [event] = drift_events()
    assert event["retrain"]["via"] is None and "monthly_charges" in event["reason"]


def test_wrong_predictions_in_feedback_are_a_performance_drop_and_become_training_rows(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    _register(cloud)
    rows = _rows(200, seed=41)
    ids = _capture(cloud, "served", rows, predict="no")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    # The API's feedback objects for the first two requests (labels contradict "no") ...
    for request_id in ids[:2]:
        for row in range(50):
            document = {"request_id": request_id, "row": row, "label": "yes"}
            cloud.s3.put_object(
                Bucket=cloud.bucket,
                Key=f"feedback/dt={day}/{request_id}-{row}.json",
                Body=json.dumps(document),
            )
    # ... and a CSV of labels a user dropped for the other two.
    csv_lines = ["request_id,row,label"] + [
        f"{request_id},{row},yes" for request_id in ids[2:] for row in range(50)
    ]
    cloud.s3.put_object(
        Bucket=cloud.bucket, Key="feedback/uploads/labels.csv", Body="\n".join(csv_lines)
    )
    config = _config(auto_retrain=True, retrain_with_feedback=True, min_feedback_rows=50)

    result = _check(cloud, config)

    performance = result["performance"]
    assert performance["rows"] == 200 and performance["verdict"] == "drop"
    assert performance["metrics"]["accuracy"] == 0.0
    assert "accuracy" in performance["dropped"]
    assert summary(result)["performance"] == performance  # what `mlops drift run` prints
    assert result["retrain"]["requested"] is True
    assert result["retrain"]["via"] == "feedback_drop"
    key = result["retrain"]["feedback_key"]
    assert key == f"raw/churn/feedback/{result['check_id']}.jsonl"
    training = [json.loads(line) for line in cloud.body(key).splitlines()]
    assert len(training) == 200
    assert all(row["churned"] == "yes" for row in training)
    assert training[0]["monthly_charges"] == rows[0]["monthly_charges"]
    [event] = drift_events()
    assert event["performance"] == "drop" and event["retrain"]["via"] == "feedback_drop"


def test_unreadable_capture_lines_and_unknown_versions_are_reported_not_fatal(
    cloud: Any,
) -> None:
    _register(cloud)
    _capture(cloud, "good", _rows(300, seed=51))
    _capture(cloud, "orphan", _rows(150, seed=52), version=7)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    cloud.s3.put_object(
        Bucket=cloud.bucket,
        Key=f"capture/dt={day}/broken",
        Body=b'not json\n{"features": {}}\n\xff\xfe\n',
    )

    result = _check(cloud, _config())

    versions = {v["model_version"]: v for v in result["versions"]}
    assert versions[1]["rows"] == 300 and versions[1]["report"]["verdict"] == "no_drift"
    assert versions[7]["report"] is None and "not in the registry" in versions[7]["note"]
    assert result["verdict"] == "no_drift"
    skipped = result["window"]["skipped"]
    assert skipped["capture line is not JSON"] == 2
    assert skipped["capture record without columns, rows or model_version"] == 1


def test_manual_window_hours_are_validated() -> None:
    assert window_hours({"source": "mlops.cli"}) is None
    assert window_hours({"window_hours": 6}) == 6
    for bad in (0, -1, "6", 6.5, 10_000, True):
        with pytest.raises(BadRequestError, match="window_hours"):
            window_hours({"window_hours": bad})


def test_the_handler_publishes_dataset_and_per_feature_metrics(
    cloud: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.common.observability import metrics
    from functions.monitor.handler import lambda_handler
    from tests.helpers.lambda_context import lambda_context

    metrics.clear_metrics()  # left by the checks other tests ran outside the handler
    _register(cloud)
    _capture(cloud, "shifted", _rows(600, seed=61, shift=True))
    time.sleep(1.05)
    context = lambda_context("monitor", memory_mb=2048, request=9)

    reply = lambda_handler({"source": "mlops.cli"}, context)

    assert reply["verdict"] == "drift" and "monthly_charges" in reply["drifted"]
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {
        m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }
    assert {"DatasetDrift", "DriftCheckRows", "DriftedFeatureShare", "FeatureDriftScore"} <= names
    scores = {b["feature"]: b["FeatureDriftScore"] for b in blobs if "FeatureDriftScore" in b}
    assert set(scores) == set(FEATURES)
    assert scores["monthly_charges"][0] > 0.25 > scores["age"][0]
    [dataset] = [b for b in blobs if "DatasetDrift" in b]
    # (The service dimension is the process's first POWERTOOLS_SERVICE_NAME; in Lambda, monitor.)
    assert dataset["DatasetDrift"] == [1.0] and "service" in dataset


def test_each_model_is_checked_on_its_own_capture_with_its_own_reports_and_cooldown(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]], tmp_path: Path
) -> None:
    config = _portfolio(tmp_path)
    assert config.for_model(CHALLENGER).drift.cooldown_hours == 1
    _register(cloud, model=MODEL)
    _register(cloud, model=CHALLENGER)
    _capture(cloud, "champion", _rows(600, seed=71, shift=True), model=MODEL)
    _capture(cloud, "challenger", _rows(300, seed=72), model=CHALLENGER)

    champion = _check(cloud, config, MODEL)
    challenger = _check(cloud, config, CHALLENGER)

    # Each check reads only its model's lines, and writes under its model's reports.
    assert champion["window"]["rows"] == 600 and champion["verdict"] == "drift"
    assert champion["window"]["skipped"] == {"capture record of another model": 6}
    assert challenger["window"]["rows"] == 300 and challenger["verdict"] == "no_drift"
    assert champion["result_key"].startswith(f"reports/drift/{MODEL}/")
    assert challenger["result_key"].startswith(f"reports/drift/{CHALLENGER}/")
    assert json.loads(cloud.body(challenger["result_key"]))["model_name"] == CHALLENGER
    # The retrain request names the drifted model only.
    [event] = drift_events()
    assert event["model"] == MODEL
    assert event["pipeline_input"]["retrain"]["model"] == MODEL
    assert event["pipeline_input"]["retrain"]["reason"].startswith(
        f"drift check {champion['check_id']}"
    )

    # The challenger drifts now: the champion's retraining does not hold its cooldown ...
    _capture(cloud, "challenger-shifted", _rows(600, seed=73, shift=True), model=CHALLENGER)
    _capture(cloud, "champion-shifted", _rows(600, seed=74, shift=True), model=MODEL)
    shifted = _check(cloud, config, CHALLENGER)
    again = _check(cloud, config, MODEL)

    assert shifted["verdict"] == "drift" and shifted["retrain"]["requested"] is True
    # ... and the champion's own cooldown (24 h) still holds for the champion.
    assert again["verdict"] == "drift" and again["retrain"]["requested"] is False
    assert "cooldown" in again["retrain"]["skipped"]
    events = {e["model"]: e for e in drift_events()}
    assert {model: e["retrain"]["via"] for model, e in events.items()} == {
        CHALLENGER: "pipeline",
        MODEL: None,
    }
    assert events[CHALLENGER]["pipeline_input"] == {
        "retrain": {
            "reason": f"drift check {shifted['check_id']}: {shifted['retrain']['reason']}",
            "model": CHALLENGER,
        }
    }
    states = {
        model: MonitorStore(ModelRegistry(cloud.table), model).load()
        for model in (MODEL, CHALLENGER)
    }
    assert states[MODEL].last_retrain_check == champion["check_id"]
    assert states[CHALLENGER].last_retrain_check == shifted["check_id"]


def test_the_handler_checks_the_model_its_event_names(
    cloud: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.monitor.handler import model_of

    config = _portfolio(tmp_path)
    assert model_of({"source": "aws.states", "model": CHALLENGER}, config) == CHALLENGER
    assert model_of({"source": "mlops.cli"}, config) == config.default_model == MODEL
    for bad in ("nope", 3, ""):
        with pytest.raises(BadRequestError, match=r"is not configured \(models: churn, churn-rf\)"):
            model_of({"model": bad}, config)


def _feedback(cloud: Any, ids: list[str], labels: list[str]) -> None:
    """The API's feedback objects labelling every row of the requests `ids` (50 rows each)."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for index, label in enumerate(labels):
        request_id, row = ids[index // 50], index % 50
        cloud.s3.put_object(
            Bucket=cloud.bucket,
            Key=f"feedback/dt={day}/{request_id}-{row}.json",
            Body=json.dumps({"request_id": request_id, "row": row, "label": label}),
        )


def test_captured_probabilities_give_an_estimate_kept_beside_the_realized_performance(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    profile = _register(cloud, calibrated=True)
    rng = np.random.default_rng(71)
    scores = (rng.random(600) * 0.8).tolist()  # as the held-out rows: no shift
    ids = _capture(cloud, "scored", _rows(600, seed=71), scores=scores)
    labels = ["yes" if draw < p else "no" for draw, p in zip(rng.random(600), scores, strict=True)]
    _feedback(cloud, ids, labels)

    # (The registered metrics are above this stand-in model's: no live drop either.)
    config = _config(auto_retrain=True, estimate_tolerance=0.05, performance_tolerance=0.2)
    result = _check(cloud, config)

    estimate = result["estimate"]
    assert estimate["verdict"] == "ok" and estimate["rows"] == 600
    assert estimate["model_version"] == 1 and estimate["method"] == "cbpe"
    assert estimate["reference"] == profile["calibration"]["reference"]
    realized = result["performance"]["metrics"]
    assert estimate["realized"]["metrics"] == realized
    # The estimate is within sampling error of the accuracy the labels then realize.
    hits = [(p >= 0.5) == (label == "yes") for p, label in zip(scores, labels, strict=True)]
    truth = np.mean(hits)
    assert realized["accuracy"] == pytest.approx(truth)
    assert abs(estimate["metrics"]["accuracy"] - realized["accuracy"]) < 0.06
    assert estimate["errors"]["accuracy"] == pytest.approx(
        estimate["metrics"]["accuracy"] - realized["accuracy"]
    )
    stored = json.loads(cloud.body(result["result_key"]))
    assert stored["format_version"] == 2 and stored["estimate"] == estimate
    assert stored["versions"][0]["estimate"]["metrics"] == estimate["metrics"]
    html = cloud.body(result["report_key"]).decode()
    assert "Estimated performance" in html and "realized" in html.lower()
    assert summary(result)["estimate"] == estimate
    assert result["retrain"]["requested"] is False and drift_events() == []


def test_an_estimated_drop_without_labels_detects_drift_and_requests_retraining(
    cloud: Any, drift_events: Callable[[], list[dict[str, Any]]]
) -> None:
    _register(cloud, calibrated=True)
    # The same inputs, but the model is unsure of every row: its expected accuracy falls.
    scores = (0.35 + np.random.default_rng(81).random(600) * 0.3).tolist()
    _capture(cloud, "unsure", _rows(600, seed=81), scores=scores)
    config = _config(auto_retrain=True, retrain_with_feedback=False, estimate_tolerance=0.05)

    result = _check(cloud, config)

    assert result["verdict"] == "no_drift"  # the inputs did not move
    estimate = result["estimate"]
    assert estimate["verdict"] == "drop" and "accuracy" in estimate["dropped"]
    assert estimate["changes"]["accuracy"] < -0.05 and estimate["realized"] is None
    assert result["retrain"]["requested"] is True
    assert "estimated performance dropped" in result["retrain"]["reason"]
    [event] = drift_events()
    assert event["estimate"] == "drop" and "estimated performance" in event["reason"]

    # Without a tolerance the same window is estimated but raises nothing.
    _capture(cloud, "unsure-again", _rows(600, seed=82), scores=scores)
    quiet = _check(cloud, _config(auto_retrain=True, estimate_tolerance=None))
    assert quiet["estimate"]["verdict"] == "ok" and quiet["estimate"]["changes"]["accuracy"] < -0.05
    assert quiet["retrain"]["requested"] is False and drift_events() == []
