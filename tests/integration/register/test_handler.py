"""The register Lambda against moto, with a real trained model: a run that passed the gate
becomes version N under models/<name>/<N>/ with its metadata and model card (HTML and Model Card
Toolkit JSON, showing the insight of the evaluation and both models' importances), and the
production model; a corrupted model or a lost promotion race leaves production as it was."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.dataset import Task
from functions.common.contracts import Criterion, EvaluationResult
from functions.common.errors import ArtifactIntegrityError, ModelRegistryError, StalePromotionError
from functions.ml.features import target_array
from functions.ml.metrics import evaluate_predictions
from functions.ml.mlflow_format import MLFLOW_FILES, MLFLOW_VERSION, version_uuid
from functions.ml.model_card import render as model_card
from functions.ml.onnx_model import OnnxModel, Signature
from functions.ml.reference_profile import reference_profile
from functions.ml.sample_data import churn_frame
from functions.register import logic
from functions.register.handler import lambda_handler
from tests.helpers import REPO
from tests.helpers.lambda_context import lambda_context
from tests.helpers.model_card import importance, insight
from tests.helpers.models import fit_churn
from tests.helpers.training import training_run

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

MODEL = "churn"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mlops-dev-pipeline:run-1"


@dataclass(frozen=True)
class Trained:
    """What the train and evaluate stages produce for one run, before any upload."""

    onnx: bytes
    signature: dict[str, Any]
    candidate: dict[str, Any]
    holdout_x: Any
    profile: dict[str, Any]


@pytest.fixture(scope="module")
def trained() -> Trained:
    """A real logistic regression on churn rows, exported to ONNX and scored on held-out
    rows with onnxruntime, as the train and evaluate stages do."""
    frame = churn_frame(400, seed=5, duplicate_share=0.0)
    train, test = frame.iloc[:300], frame.iloc[300:]
    onnx, signature = fit_churn(train, {"C": 1.0})
    prediction = OnnxModel(onnx, signature).predict(test)
    candidate = evaluate_predictions(
        task=Task.CLASSIFICATION,
        y_true=target_array(test, "churned", Task.CLASSIFICATION),
        labels=prediction.labels,
        probabilities=prediction.probabilities,
        classes=signature.classes,
    )
    profile = reference_profile(
        train,
        schema=signature.schema,
        target="churned",
        predictions=prediction,
        task=Task.CLASSIFICATION,
        sample_rows=10,
        seed=0,
    )
    return Trained(onnx, signature.to_dict(), candidate.to_dict(), test, profile)


@pytest.fixture
def card_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the stage passed to the model card renderer (which still renders the card)."""
    calls: list[dict[str, Any]] = []
    real = model_card.render_model_card

    def recording(**kwargs: Any) -> str:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(logic, "render_model_card", recording)
    return calls


State = dict[str, Any]


@pytest.fixture
def run_state(
    cloud: Cloud, trained: Trained, card_calls: list[dict[str, Any]]
) -> Callable[..., State]:
    """`run_state(run_id, champion_version=..., ...)`: upload one run's artifacts (as the train
    and evaluate stages leave them), record the run, and return the pipeline state."""
    registry = ModelRegistry(cloud.table)

    def make(
        run_id: str,
        *,
        champion_version: int | None = None,
        onnx_sha256: str | None = None,
        passed: bool = True,
        evaluated_run: str | None = None,
        importance: dict[str, Any] | None = None,
        insight: dict[str, Any] | None = None,
    ) -> State:
        sha = hashlib.sha256(trained.onnx).hexdigest()
        training = training_run(MODEL, run_id, onnx_sha256=onnx_sha256 or sha)
        prefix = training.run_prefix
        auc = trained.candidate["metrics"]["roc_auc"]
        criterion = Criterion(
            metric="roc_auc",
            kind="threshold",
            candidate=auc,
            bound=0.5,
            greater_is_better=True,
            passed=passed,
            message=f"roc_auc {auc:.3f} >= 0.5" if passed else f"roc_auc {auc:.3f} < 0.99",
        )
        evaluation = EvaluationResult(
            run_id=evaluated_run or run_id,
            metrics=trained.candidate["metrics"],
            champion_version=champion_version,
            champion_metrics=trained.candidate["metrics"] if champion_version else None,
            criteria=[criterion],
            passed=passed,
            failed=[] if passed else [criterion.message],
            evaluation_key=prefix + "evaluation.json",
        )
        record = {**training.model_dump(mode="json"), "status": "evaluated"}
        s3 = cloud.s3
        s3.put_object(Bucket=cloud.bucket, Key=training.onnx_key, Body=trained.onnx)
        s3.put_object(Bucket=cloud.bucket, Key=training.holdout_key, Body=b"PAR1")
        documents = {
            training.signature_key: trained.signature,
            training.reference_profile_key: trained.profile
            | ({"importance": importance} if importance else {}),
            training.run_record_key: record,
            evaluation.evaluation_key: {
                "result": evaluation.model_dump(mode="json"),
                "candidate": trained.candidate,
                "champion": trained.candidate if champion_version else None,
            }
            | ({"insight": insight} if insight else {}),
        }
        for key, document in documents.items():
            s3.put_object(Bucket=cloud.bucket, Key=key, Body=json.dumps(document))
        registry.put_run(record)
        return {
            "execution": {"id": EXECUTION},
            "detail": {"bucket": {"name": cloud.bucket}},
            "training": training.model_dump(mode="json"),
            "evaluation": evaluation.model_dump(mode="json"),
        }

    return make


def invoke(state: State) -> dict[str, Any]:
    return lambda_handler(state, lambda_context("register", request=1, remaining_ms=300_000))


def test_a_passed_run_becomes_version_1_and_the_production_model(
    cloud: Cloud,
    trained: Trained,
    run_state: Callable[..., State],
    card_calls: list[dict[str, Any]],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    state = run_state("20260101T000000Z-aaa")

    result = invoke(state)

    sha = hashlib.sha256(trained.onnx).hexdigest()
    assert result["version"] == 1
    assert (result["promoted"], result["previous_version"]) == (True, None)
    assert result["prefix"] == "models/churn/1/"
    assert cloud.keys("models/churn/1/") == [
        "models/churn/1/evaluation.json",
        "models/churn/1/metadata.json",
        *(f"models/churn/1/mlflow/{name}" for name in sorted(MLFLOW_FILES)),
        "models/churn/1/model.onnx",
        "models/churn/1/reference_profile.json",
        "models/churn/1/run.json",
        "models/churn/1/signature.json",
    ]
    # The registered ONNX file is the trained model, byte for byte, and it still predicts.
    copied = cloud.body("models/churn/1/model.onnx")
    assert hashlib.sha256(copied).hexdigest() == sha == result["onnx_sha256"]
    signature = Signature.from_dict(trained.signature)
    served = OnnxModel(copied, signature).predict(trained.holdout_x)
    original = OnnxModel(trained.onnx, signature).predict(trained.holdout_x)
    assert len(served.labels) == len(trained.holdout_x)
    assert np.array_equal(served.probabilities, original.probabilities)

    metadata = json.loads(cloud.body("models/churn/1/metadata.json"))
    assert metadata["version"] == 1
    assert metadata["onnx_sha256"] == sha
    assert metadata["onnx_bytes"] == len(trained.onnx)
    assert metadata["run_id"] == "20260101T000000Z-aaa"
    assert metadata["data_versions"] == ["d1"]
    assert metadata["metrics"] == trained.candidate["metrics"]
    assert metadata["classes"] == ["no", "yes"]
    assert metadata["signature"] == trained.signature
    assert metadata["code_version"] == "test1234"
    assert metadata["gate"]["passed"] is True
    # The registry item carries the commit of the code that trained it (lineage).
    registered = ModelRegistry(cloud.table).get_version("churn", 1)
    assert registered is not None and registered.code_version == "train123"

    card = cloud.s3.get_object(Bucket=cloud.bucket, Key="reports/churn/1/model_card.html")
    assert card["ContentType"].startswith("text/html")
    assert result["model_card_key"] == "reports/churn/1/model_card.html"
    (call,) = card_calls
    assert (call["model_name"], call["version"]) == ("churn", 1)
    assert call["candidate_eval"] == trained.candidate
    assert call["champion_eval"] is None
    assert call["signature"] == trained.signature
    assert call["evaluation"]["run_id"] == "20260101T000000Z-aaa"

    registry = ModelRegistry(cloud.table)
    version = registry.get_version(MODEL, 1)
    assert version is not None and version.run_id == "20260101T000000Z-aaa"
    alias = registry.get_alias(MODEL)
    assert alias is not None and (alias.version, alias.execution) == (1, EXECUTION)
    history = registry.history(MODEL)
    assert [(c.kind, c.from_version, c.to_version) for c in history] == [("promote", None, 1)]
    run = registry.get_run(MODEL, "20260101T000000Z-aaa")
    assert run is not None
    assert (run["status"], run["version"], run["promoted"]) == ("registered", 1, True)

    (event,) = promotions()
    assert (event["model"], event["version"], event["previous_version"]) == ("churn", 1, None)
    assert event["execution"] == EXECUTION
    assert event["metrics"] == trained.candidate["metrics"]


def test_the_version_is_also_written_in_mlflows_model_format(
    cloud: Cloud, trained: Trained, run_state: Callable[..., State]
) -> None:
    """models/churn/1/mlflow/: an MLmodel naming both flavors and the signature, and a graph
    fed one 1-D column per feature (as MLflow's ONNX wrapper feeds a DataFrame) that predicts
    what the registered model predicts."""
    import onnxruntime as ort

    invoke(run_state("20260101T000000Z-aaa"))

    mlmodel = yaml.safe_load(cloud.body("models/churn/1/mlflow/MLmodel"))
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.onnx"
    assert mlmodel["flavors"]["onnx"]["data"] == "model.onnx"
    assert mlmodel["mlflow_version"] == MLFLOW_VERSION
    sha = hashlib.sha256(trained.onnx).hexdigest()
    assert mlmodel["model_uuid"] == version_uuid("churn", 1, sha)
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert [(spec["name"], spec["type"]) for spec in inputs][-4:] == [
        ("contract", "string"),
        ("payment_method", "string"),
        ("internet_service", "string"),
        ("region", "string"),
    ]
    example = json.loads(cloud.body("models/churn/1/mlflow/input_example.json"))
    assert example["columns"] == [spec["name"] for spec in trained.signature["inputs"]]
    typical, missing = example["data"]
    assert all(value in (None, "") for value in missing)
    # The typical row is the training data's (the run's reference profile), not placeholders.
    charges = trained.profile["features"]["monthly_charges"]["mean"]
    assert typical[example["columns"].index("monthly_charges")] == pytest.approx(charges, 1e-3)

    session = ort.InferenceSession(cloud.body("models/churn/1/mlflow/model.onnx"))
    rows = trained.holdout_x
    feed = {}
    for spec in trained.signature["inputs"]:
        column = rows[spec["name"]]
        if spec["type"] == "categorical":
            feed[spec["name"]] = column.fillna("").astype(str).to_numpy(dtype=object)
        else:
            feed[spec["name"]] = column.to_numpy(dtype=np.float32)
    names = [output.name for output in session.get_outputs()]
    assert names == ["label", "probability_no", "probability_yes"]
    label, no, yes = session.run(names, feed)
    expected = OnnxModel(trained.onnx, Signature.from_dict(trained.signature)).predict(rows)
    assert list(label) == list(expected.labels)
    assert np.abs(np.column_stack([no, yes]) - expected.probabilities).max() < 1e-6


def test_a_run_that_beat_the_champion_takes_over_production(
    cloud: Cloud,
    run_state: Callable[..., State],
    card_calls: list[dict[str, Any]],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    invoke(run_state("20260101T000000Z-aaa"))

    result = invoke(run_state("20260102T000000Z-bbb", champion_version=1))

    assert (result["version"], result["previous_version"]) == (2, 1)
    registry = ModelRegistry(cloud.table)
    alias = registry.get_alias(MODEL)
    assert alias is not None and alias.version == 2
    assert [c.to_version for c in registry.history(MODEL)] == [1, 2]
    assert card_calls[-1]["champion_eval"] is not None
    assert [(e["version"], e["previous_version"]) for e in promotions()] == [(1, None), (2, 1)]


def test_a_checksum_mismatch_fails_and_registers_nothing(
    cloud: Cloud,
    run_state: Callable[..., State],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    state = run_state("20260101T000000Z-aaa", onnx_sha256="0" * 64)

    with pytest.raises(ArtifactIntegrityError, match="training recorded 0000"):
        invoke(state)

    registry = ModelRegistry(cloud.table)
    assert registry.list_versions(MODEL) == []
    assert registry.get_alias(MODEL) is None
    run = registry.get_run(MODEL, "20260101T000000Z-aaa")
    assert run is not None and run["status"] == "evaluated"
    assert cloud.keys("reports/") == []
    assert cloud.keys("models/churn/1/mlflow/") == []
    assert promotions() == []
    # The number it took is never handed out again.
    assert invoke(run_state("20260102T000000Z-bbb"))["version"] == 2


def test_a_promotion_that_lost_a_race_leaves_production_alone(
    cloud: Cloud,
    run_state: Callable[..., State],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    invoke(run_state("20260101T000000Z-aaa"))
    promotions()
    # Evaluated while there was no champion; version 1 was promoted meanwhile.
    late = run_state("20260102T000000Z-bbb", champion_version=None)

    with pytest.raises(StalePromotionError, match="production of churn is version 1"):
        invoke(late)

    registry = ModelRegistry(cloud.table)
    alias = registry.get_alias(MODEL)
    assert alias is not None and alias.version == 1
    assert len(registry.history(MODEL)) == 1
    version = registry.get_version(MODEL, 2)
    assert version is not None and version.promoted is False
    run = registry.get_run(MODEL, "20260102T000000Z-bbb")
    assert run is not None
    assert (run["status"], run["version"], run["promoted"]) == ("registered", 2, False)
    assert "version 1" in run["promotion_error"]
    assert promotions() == []


def test_a_retried_registration_resumes_instead_of_registering_again(
    cloud: Cloud,
    run_state: Callable[..., State],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    state = run_state("20260101T000000Z-aaa")

    first, again = invoke(state), invoke(state)

    assert first == again
    registry = ModelRegistry(cloud.table)
    assert [v.version for v in registry.list_versions(MODEL)] == [1]
    assert len(registry.history(MODEL)) == 1
    # At least once: the retry publishes the promotion again (same revision).
    assert [(e["version"], e["revision"]) for e in promotions()] == [(1, 1), (1, 1)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"passed": False}, "did not pass the gate"),
        ({"evaluated_run": "someone-else"}, "evaluation is of run someone-else"),
    ],
)
def test_a_run_without_its_own_passed_evaluation_is_refused(
    cloud: Cloud, run_state: Callable[..., State], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelRegistryError, match=message):
        invoke(run_state("20260101T000000Z-aaa", **changes))

    registry = ModelRegistry(cloud.table)
    assert registry.list_versions(MODEL) == []
    assert registry.get_alias(MODEL) is None


def test_the_model_card_is_one_html_page_about_this_version(
    cloud: Cloud, run_state: Callable[..., State]
) -> None:
    invoke(run_state("20260101T000000Z-aaa"))

    page = cloud.body("reports/churn/1/model_card.html").decode()

    assert page.lstrip().lower().startswith("<!doctype html")
    assert "churn" in page
    assert "20260101T000000Z-aaa" in page


def test_the_card_and_its_json_show_the_insight_and_both_models_importances(
    cloud: Cloud, run_state: Callable[..., State], card_calls: list[dict[str, Any]]
) -> None:
    schema = json.loads((REPO / "tests/data/model_card_toolkit/model_card.schema.json").read_text())
    validator = Draft7Validator(schema, format_checker=FormatChecker())
    invoke(run_state("20260101T000000Z-aaa", importance=importance(0.7)))
    insights = {"candidate": insight(), "champion": insight(shift=-0.03)}

    invoke(
        run_state(
            "20260102T000000Z-bbb", champion_version=1, importance=importance(), insight=insights
        )
    )

    assert cloud.keys("reports/churn/") == [
        "reports/churn/1/model_card.html",
        "reports/churn/1/model_card.json",
        "reports/churn/2/model_card.html",
        "reports/churn/2/model_card.json",
    ]
    # The champion's importances come from its registered version's reference profile.
    assert card_calls[-1]["importance"] == importance()
    assert card_calls[-1]["champion_importance"] == importance(0.7)
    assert card_calls[-1]["insight"] == insights
    card = cloud.body("reports/churn/2/model_card.html").decode()
    for section in ("importance", "slices", "fairness", "calibration", "thresholds"):
        assert f'<section id="{section}">' in card, section
    assert 'class="bar champion"' in card and "sha256:1a2b3c4d" in card
    stored = cloud.s3.get_object(Bucket=cloud.bucket, Key="reports/churn/2/model_card.json")
    assert stored["ContentType"] == "application/json"
    document = json.loads(stored["Body"].read())
    assert list(validator.iter_errors(document)) == []
    assert document["model_details"]["path"] == f"s3://{cloud.bucket}/models/churn/2/"
    assert document["model_details"]["version"]["name"] == "2"
    kinds = {m["type"] for m in document["quantitative_analysis"]["performance_metrics"]}
    assert {"roc_auc", "brier_score", "demographic_parity_difference"} <= kinds
    # Version 1's evaluation had no insight: its card has no insight section, its JSON is valid.
    first = cloud.body("reports/churn/1/model_card.html").decode()
    assert '<section id="importance">' in first and '<section id="slices">' not in first
    first_document = json.loads(cloud.body("reports/churn/1/model_card.json"))
    assert list(validator.iter_errors(first_document)) == []
