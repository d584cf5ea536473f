"""The hot path's lean route answers exactly as the Powertools resolver does: for each request
below, `lambda_handler` (lean) and the resolver give the same status, headers and body, and
write the same metrics (one EMF line per request, with the `model` dimension)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.models import Trained
from tests.helpers.predict_api import CONTEXT, api_event


def _emf(out: str) -> list[dict[str, Any]]:
    blobs = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    for blob in blobs:
        blob["_aws"].pop("Timestamp")
        if "PredictLatency" in blob:
            assert all(value >= 0 for value in blob.pop("PredictLatency"))
    return blobs


def _v2(trained: Trained, rows: int = 1) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "BYTES" if isinstance(value, str) else "FP32",
                "shape": [rows, 1],
                "data": [value] * rows,
            }
            for name, value in trained.row.items()
        ]
    }


def _requests(trained: Trained) -> list[tuple[str, str, Any, dict[str, Any]]]:
    row = trained.row
    return [
        ("POST", "/v1/predict", {"instances": [row, row]}, {}),
        ("POST", "/v1/predict", {"instances": [{**row, "age": "old"}]}, {}),
        ("POST", "/v1/predict", {"rows": []}, {}),
        ("POST", "/v1/predict", None, {"raw": "{not json"}),
        ("POST", "/v1/predict", {"instances": [row]}, {"headers": {"content-type": "text/csv"}}),
        (
            "POST",
            "/v1/predict",
            {"instances": [row]},
            {"headers": {"CONTENT-TYPE": "application/json"}},
        ),
        ("POST", "/v1/models/churn/predict", {"instances": [row]}, {}),
        ("POST", "/v1/models/other/predict", {"instances": [row]}, {}),
        ("POST", "/v1/models/a%20b!/predict", {"instances": [row]}, {}),
        ("POST", "/v2/models/churn/infer", _v2(trained, 3), {}),
        ("POST", "/v2/models/churn/infer", _v2(trained), {"headers": {}}),
        ("POST", "/v2/models/churn/infer", {"inputs": [{"name": "age"}]}, {}),
        ("POST", "/v2/models/nope/infer", _v2(trained), {}),
        ("POST", "/v2/models/churn/versions/1/infer", _v2(trained), {}),
        ("POST", "/v2/models/churn/versions/01/infer", _v2(trained), {}),
        ("POST", "/v2/models/churn/versions/x/infer", None, {"raw": "[1,"}),
    ]


@pytest.mark.parametrize("index", range(16))
def test_lean_route_answers_as_the_resolver(
    make_service: Callable[..., Any],
    trained: Trained,
    capsys: pytest.CaptureFixture[str],
    index: int,
) -> None:
    from functions.common.observability import request_metrics
    from functions.predict import handler

    make_service()
    method, path, body, kwargs = _requests(trained)[index]
    event = api_event(method, path, body, **kwargs)
    handler.lambda_handler(api_event("POST", "/v1/predict", {"instances": [trained.row]}), CONTEXT)
    capsys.readouterr()  # the model loaded (its own metric) and served once

    lean = handler.lambda_handler(event, CONTEXT)
    lean_metrics = _emf(capsys.readouterr().out)
    request_metrics.clear_metrics()
    try:
        resolved = handler.app.resolve(event, CONTEXT)
    finally:
        request_metrics.flush_metrics()
    resolved_metrics = _emf(capsys.readouterr().out)

    assert lean == resolved
    assert lean_metrics == resolved_metrics
    assert len(lean_metrics) in (1, 2)  # the request's line, and RequestErrors for an error
    if lean["statusCode"] == 200:
        (line,) = lean_metrics
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]]
        assert line["model"] == "churn" and line["Predictions"] == [1.0]
    else:
        assert 400 <= lean["statusCode"] < 500, lean


def test_only_the_hot_path_skips_the_resolver(
    make_service: Callable[..., Any], trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.predict import handler

    make_service()
    resolved: list[str] = []
    resolve = handler.app.resolve

    def spy(event: dict[str, Any], context: Any) -> dict[str, Any]:
        resolved.append(f"{event['httpMethod']} {event['path']}")
        return resolve(event, context)

    monkeypatch.setattr(handler.app, "resolve", spy)
    for method, path, body in (
        ("POST", "/v1/predict", {"instances": [trained.row]}),
        ("POST", "/v1/models/churn/predict", {"instances": [trained.row]}),
        ("POST", "/v2/models/churn/infer", _v2(trained)),
        ("POST", "/v2/models/churn/versions/1/infer", _v2(trained)),
        ("GET", "/v1/predict", None),
        ("POST", "/v1/predict/", {"instances": [trained.row]}),
        ("POST", "/v1/models/a/b/predict", {"instances": [trained.row]}),
        ("GET", "/v1/model", None),
        ("POST", "/v1/feedback", {"feedback": []}),
    ):
        handler.lambda_handler(api_event(method, path, body), CONTEXT)
    assert resolved == [
        "GET /v1/predict",
        "POST /v1/predict/",
        "POST /v1/models/a/b/predict",
        "GET /v1/model",
        "POST /v1/feedback",
    ]
