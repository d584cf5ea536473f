"""model_card.json: the Model Card Toolkit's schema (v0.0.2, kept under tests/data with its
license) validates it, with a card's overall metrics, importances, slices, fairness and
calibration in `quantitative_analysis` and the worst slices and fairness gaps in
`considerations`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker

from functions.ml.model_card.document import model_card_document
from tests.helpers import REPO
from tests.helpers.model_card import TINY_SLICE, card_inputs

SCHEMA_DIR = REPO / "tests" / "data" / "model_card_toolkit"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((SCHEMA_DIR / "model_card.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=FormatChecker())


def document(champion: bool = True, **overrides: Any) -> dict[str, Any]:
    inputs = {**card_inputs(champion=champion), **overrides}
    return model_card_document(
        model_name=inputs["model_name"],
        version=inputs["version"],
        path="s3://bucket/models/churn/3/",
        card_key="reports/churn/3/model_card.html",
        run=inputs["run"],
        evaluation=inputs["evaluation"],
        signature=inputs["signature"],
        importance=inputs["importance"],
        insight=inputs["insight"],
        created_at=inputs["created_at"],
    )


def _errors(validator: Draft7Validator, doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_schema_is_kept_with_its_license() -> None:
    assert "Apache License" in (SCHEMA_DIR / "LICENSE").read_text()


def test_a_full_card_validates_against_the_model_card_toolkit_schema(
    validator: Draft7Validator,
) -> None:
    doc = document()

    assert _errors(validator, doc) == []
    assert set(doc) == {
        "schema_version",
        "model_details",
        "model_parameters",
        "quantitative_analysis",
        "considerations",
    }
    assert doc["model_details"]["version"] == {
        "name": "3",
        "date": "2026-11-27",
        "diff": doc["model_details"]["version"]["diff"],
    }
    assert "compared against version 2" in doc["model_details"]["version"]["diff"]
    assert doc["model_parameters"]["input_format_map"] == [
        {"key": "tenure_months", "value": "numeric"},
        {"key": "plan", "value": "categorical"},
    ]


def test_a_card_without_insight_or_champion_validates_too(validator: Draft7Validator) -> None:
    doc = document(champion=False, insight=None, importance=None, created_at=None)

    assert _errors(validator, doc) == []
    assert doc["considerations"] == {}
    types = {metric["type"] for metric in doc["quantitative_analysis"]["performance_metrics"]}
    assert "roc_auc" in types and "brier_score" not in types


def test_the_validator_refuses_what_the_schema_does_not_allow(validator: Draft7Validator) -> None:
    # The schema admits no other top-level property: the document carries no format_version.
    stamped = {**document(), "format_version": 1}
    wrong_type = document()
    wrong_type["quantitative_analysis"]["performance_metrics"][0]["value"] = 0.5

    assert any("format_version" in error for error in _errors(validator, stamped))
    assert _errors(validator, wrong_type)


def test_quantitative_analysis_carries_importances_slices_fairness_and_calibration() -> None:
    metrics = document()["quantitative_analysis"]["performance_metrics"]
    by_slice = {(m["type"], m.get("slice")): m for m in metrics}

    importance = by_slice[("permutation importance (roc_auc loss)", "feature tenure_months")]
    assert importance["value"] == "0.12"
    assert importance["confidence_interval"] == {"lower_bound": "0.094", "upper_bound": "0.146"}
    assert by_slice[("roc_auc", "plan = premium")]["value"] == "0.55"
    # A hashed sensitive value stays hashed: the JSON shows nothing the HTML card hides.
    assert ("roc_auc", "region = sha256:1a2b3c4d") in by_slice
    assert by_slice[("demographic_parity_difference", "attribute gender")]["value"] == "0.12"
    assert by_slice[("equalized_odds_difference", "attribute age_band")]["value"] == "0.07"
    assert by_slice[("brier_score", None)]["value"] == "0.18"


def test_considerations_name_the_worst_slices_the_suppressed_ones_and_fairness_gaps() -> None:
    considerations = document()["considerations"]
    limitations = [item["description"] for item in considerations["limitations"]]

    assert limitations[0] == (
        "roc_auc on plan = premium is 0.55 against 0.8 overall (a small slice)."
    )
    assert "3 slices with fewer than 30 rows are not reported." in limitations
    risks = considerations["ethical_considerations"]
    assert risks[0]["name"].startswith("gender: demographic parity difference 0.12")
    assert risks[0]["mitigation_strategy"] == "no fairness criterion in the promotion gate"
    (tradeoff,) = considerations["tradeoffs"]
    assert tradeoff["description"].startswith("At threshold 0.5 F1 is highest")


def test_a_slice_below_the_minimum_rows_stays_out_of_the_json() -> None:
    leaky = card_inputs()["insight"]
    leaky["candidate"]["slices"]["rows"].insert(0, dict(TINY_SLICE))
    doc = document(insight=leaky)

    assert "only-three-customers" not in json.dumps(doc)
    limitations = [item["description"] for item in doc["considerations"]["limitations"]]
    assert "4 slices with fewer than 30 rows are not reported." in limitations


def test_a_fairness_criterion_of_the_gate_is_the_mitigation() -> None:
    inputs = card_inputs()
    criterion = {
        **inputs["evaluation"]["criteria"][0],
        "metric": "demographic_parity_difference",
        "message": "demographic_parity_difference 0.12 <= 0.2",
    }
    evaluation = {**inputs["evaluation"], "criteria": [criterion]}
    risks = document(evaluation=evaluation)["considerations"]["ethical_considerations"]

    assert risks[0]["mitigation_strategy"] == "demographic_parity_difference 0.12 <= 0.2"
