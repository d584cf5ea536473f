"""The shadow report's figures, checked against values worked out by hand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from functions.ml.shadow_report import report_lines, shadow_report


def _record(
    request_id: str,
    predictions: list[Any],
    *,
    alias: str = "production",
    version: int = 3,
    first_row: int = 0,
    probabilities: list[list[float]] | None = None,
    classes: list[str] | None = None,
    latency_ms: float | None = 1.0,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "first_row": first_row,
        "rows": len(predictions),
        "model_name": "churn",
        "model_version": version,
        "alias": alias,
        "predictions": predictions,
        "probabilities": probabilities,
        "classes": classes,
        "latency_ms": latency_ms,
        "error": error,
    }


CLASSES = ["no", "yes"]


def test_agreement_and_confusion_count_rows_of_joined_requests() -> None:
    capture = [
        _record("a", ["no", "no", "yes"], classes=CLASSES, latency_ms=2.0),
        _record("b", ["yes"], classes=CLASSES, latency_ms=4.0),
        _record("b", ["no"], first_row=1, classes=CLASSES, latency_ms=4.0),
        _record("c", ["no"], alias="candidate", classes=CLASSES),
    ]
    shadow = [
        _record(
            "a", ["no", "yes", "yes"], alias="shadow", version=5, classes=CLASSES, latency_ms=1.0
        ),
        _record("b", ["no"], alias="shadow", version=5, classes=CLASSES, latency_ms=3.0),
        _record(
            "b", ["no"], first_row=1, alias="shadow", version=5, classes=CLASSES, latency_ms=5.0
        ),
        _record("c", ["no"], alias="shadow", version=5, classes=CLASSES),  # candidate's: no pair
        _record("d", [], alias="shadow", version=5, classes=CLASSES, error="sensitive_feature"),
    ]
    report = shadow_report(capture, shadow)
    assert report["task"] == "classification"
    assert (report["requests"], report["rows"]) == (3, 5)
    assert report["agreement"] == pytest.approx(3 / 5)
    assert report["confusion"] == {"no": {"no": 2, "yes": 1}, "yes": {"no": 1, "yes": 1}}
    assert report["skipped"] == {"sensitive_feature": 1}
    assert report["unmatched"] == 1
    assert (report["shadow_versions"], report["production_versions"]) == ([5], [3])
    assert report["latency_ms"]["shadow"]["p50"] == 3.0
    assert report["latency_ms"]["production"]["p50"] == 4.0
    assert report["latency_ms"]["shadow"]["p99"] == pytest.approx(np.percentile([1, 3, 5], 99))


def test_class_drift_is_the_psi_of_predicted_classes() -> None:
    capture = [_record("a", ["no"] * 8 + ["yes"] * 2, classes=CLASSES)]
    shadow = [_record("a", ["no"] * 5 + ["yes"] * 5, alias="shadow", classes=CLASSES)]
    (drift,) = shadow_report(capture, shadow)["output_drift"]
    expected = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert drift["output"] == "class"
    assert drift["psi"] == pytest.approx(expected)
    assert drift["severity"] == "major"  # 0.37 > 0.25


def test_identical_outputs_agree_fully_and_do_not_drift() -> None:
    probabilities = [[0.7, 0.3], [0.2, 0.8]]
    capture = [_record("a", ["no", "yes"], probabilities=probabilities, classes=CLASSES)]
    shadow = [
        _record("a", ["no", "yes"], alias="shadow", probabilities=probabilities, classes=CLASSES)
    ]
    report = shadow_report(capture, shadow)
    assert report["agreement"] == 1.0
    assert [d["output"] for d in report["output_drift"]] == [
        "class",
        "probability of no",
        "probability of yes",
    ]
    assert all(
        d["psi"] == pytest.approx(0.0) and d["severity"] == "none" for d in report["output_drift"]
    )


def test_regression_reports_the_distribution_of_shadow_minus_production() -> None:
    production = [10.0, 20.0, 30.0, 40.0]
    shadow_values = [11.0, 18.0, 30.0, 44.0]
    report = shadow_report(
        [_record("a", production)], [_record("a", shadow_values, alias="shadow", version=2)]
    )
    assert report["task"] == "regression"
    assert report["agreement"] is None
    errors = report["errors"]
    assert errors["mean"] == pytest.approx((1 - 2 + 0 + 4) / 4)
    assert errors["p50_abs"] == pytest.approx(1.5)
    assert errors["p95_abs"] == pytest.approx(np.percentile([1, 2, 0, 4], 95))
    assert errors["max_abs"] == 4.0
    (drift,) = report["output_drift"]
    assert drift["output"] == "prediction" and drift["psi"] >= 0


def test_no_joined_request_reports_nothing_to_compare() -> None:
    report = shadow_report([], [_record("x", ["no"], alias="shadow", classes=CLASSES)])
    assert (report["requests"], report["unmatched"], report["task"]) == (0, 1, None)
    assert report_lines(report)[0].startswith("requests compared: 0")


def test_text_lines_show_agreement_confusion_latency_and_drift() -> None:
    capture = [_record("a", ["no", "yes"], classes=CLASSES, latency_ms=2.0)]
    shadow = [
        _record("a", ["no", "no"], alias="shadow", version=4, classes=CLASSES, latency_ms=1.0)
    ]
    text = "\n".join(report_lines(shadow_report(capture, shadow)))
    assert "shadow version(s) 4 vs production 3" in text
    assert "agreement with production: 50.00%" in text
    assert "latency ms p50/p99: shadow 1/1, production 2/2" in text
    assert "output drift, class: PSI" in text
