"""The shadow scorer's record scoring, with a real model (logistic regression on churn rows,
exported to ONNX) in onnxruntime: what it scores, what it skips and why, and the shape of the
records it writes."""

from __future__ import annotations

import json
from typing import Any

import onnxruntime as ort
import pytest

from functions.ml.capture_lines import capture_records
from functions.ml.onnx_input import predict_columns
from functions.serving.features import feature_specs
from functions.shadow.scoring import (
    INVALID_VALUE,
    MISSING_FEATURE,
    SENSITIVE_FEATURE,
    ShadowModel,
    jsonl,
    shadow_records,
)
from tests.helpers.models import FEATURES, Trained, trained_churn


@pytest.fixture(scope="module")
def trained() -> Trained:
    from functions.ml.sample_data import churn_frame

    return trained_churn(300, seed=3, c=0.5, asked=churn_frame(20, seed=9, duplicate_share=0.0))


def _model(trained: Trained, sensitive: frozenset[str] = frozenset()) -> ShadowModel:
    session = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
    return ShadowModel(
        version=4,
        signature=trained.signature,
        specs=feature_specs(trained.signature),
        session=session,
        sensitive=sensitive,
    )


def _capture(values: list[dict[str, Any]], request_id: str = "r1", **fields: Any) -> dict[str, Any]:
    return {
        "record": "capture",
        "format_version": 2,
        "request_id": request_id,
        "timestamp": "2026-12-02T20:00:00.123Z",
        "model_name": "churn",
        "model_version": 3,
        "alias": "production",
        "route": "v1",
        "rollout": None,
        "first_row": 0,
        "rows": len(values),
        "request_rows": len(values),
        "columns": {name: [row[name] for row in values] for name in FEATURES},
        "predictions": ["no"] * len(values),
        "probabilities": [[0.9, 0.1]] * len(values),
        "classes": ["no", "yes"],
        "latency_ms": 0.5,
        "error": None,
        **fields,
    }


def test_a_record_is_scored_by_the_shadow_version_as_predict_would(trained: Trained) -> None:
    model = _model(trained)
    record = _capture(trained.rows[:7], first_row=0)
    (shadow,), counts = shadow_records([record], model)
    expected = predict_columns(
        model.session, {name: record["columns"][name] for name in FEATURES}, trained.signature
    )
    assert shadow["alias"] == "shadow"
    assert shadow["model_version"] == 4
    assert shadow["production_version"] == 3
    assert (shadow["request_id"], shadow["first_row"], shadow["rows"]) == ("r1", 0, 7)
    assert shadow["predictions"] == expected.labels.tolist()
    assert shadow["probabilities"] == expected.probabilities.tolist()
    assert shadow["classes"] == trained.signature["classes"]
    assert shadow["latency_ms"] > 0
    assert shadow["error"] is None
    assert (counts.scored, counts.rows, counts.skipped) == (1, 7, {})


def test_failed_candidate_and_pinned_records_are_not_shadowed(trained: Trained) -> None:
    rows = trained.rows[:2]
    records = [
        _capture(rows, "a", error="scoring_failed", rows=0, columns={}, predictions=[]),
        _capture(rows, "b", alias="candidate"),
        _capture(rows, "c", alias="version"),
        _capture(rows, "d"),
    ]
    written, counts = shadow_records(records, _model(trained))
    assert [r["request_id"] for r in written] == ["d"]
    assert counts.skipped == {"error": 1, "candidate": 1, "version": 1}


def test_a_model_using_a_sensitive_column_is_not_scored_and_says_why(trained: Trained) -> None:
    record = _capture(trained.rows[:3])
    (shadow,), counts = shadow_records([record], _model(trained, frozenset({"region"})))
    assert shadow["error"] == SENSITIVE_FEATURE
    assert (shadow["rows"], shadow["predictions"]) == (0, [])
    assert counts.scored == 0 and counts.skipped == {SENSITIVE_FEATURE: 1}


def test_missing_columns_and_refused_values_are_errors_not_guesses(trained: Trained) -> None:
    missing = _capture(trained.rows[:2], "m")
    del missing["columns"]["age"]
    invalid = _capture(trained.rows[:2], "i")
    invalid["columns"]["age"] = ["old", 3]
    written, counts = shadow_records([missing, invalid], _model(trained))
    assert [r["error"] for r in written] == [MISSING_FEATURE, INVALID_VALUE]
    assert counts.skipped == {MISSING_FEATURE: 1, INVALID_VALUE: 1}


def test_version_1_lines_read_as_one_row_version_2_records(trained: Trained) -> None:
    row = trained.rows[0]
    v1 = {
        "request_id": "old",
        "row": 2,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "model_name": "churn",
        "model_version": 1,
        "features": row,
        "prediction": "yes",
        "probabilities": [0.2, 0.8],
    }
    lines = [json.dumps(v1).encode(), b"", b"not json", json.dumps({"format_version": 9}).encode()]
    (record,) = capture_records(lines)
    assert (record["first_row"], record["rows"], record["alias"]) == (2, 1, "production")
    assert record["columns"] == {name: [value] for name, value in row.items()}
    (shadow,), _ = shadow_records([record], _model(trained))
    assert (shadow["request_id"], shadow["first_row"], shadow["rows"]) == ("old", 2, 1)


def test_records_are_written_as_json_lines_with_nan_as_null() -> None:
    body = jsonl([{"a": float("nan"), "b": [1.5, float("inf")]}, {"a": 1}])
    assert body.splitlines() == [b'{"a":null,"b":[1.5,null]}', b'{"a":1}']
