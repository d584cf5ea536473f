"""`RequestMetrics` writes the EMF documents Powertools' `Metrics` writes for the same calls
(the predict function's request metrics moved from one to the other)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from functions.common.observability import RequestMetrics


def _documents(out: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in out.splitlines() if line.strip()]
    for document in documents:
        assert isinstance(document["_aws"].pop("Timestamp"), int)
        # a dimension set is a set to CloudWatch: its order in the array is not compared
        for directive in document["_aws"]["CloudWatchMetrics"]:
            directive["Dimensions"] = [sorted(names) for names in directive["Dimensions"]]
    return documents


def _request(metrics: Any) -> None:
    metrics.add_dimension(name="model", value="churn")
    metrics.add_metadata(key="model_name", value="churn")
    metrics.add_metadata(key="model_version", value="3")
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PredictedRows", unit="Count", value=12)
    metrics.add_metric(name="CapturedRows", unit=MetricUnit.Count, value=5)
    metrics.add_metric(name="CapturedRows", unit=MetricUnit.Count, value=7)
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=1.25)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "predict")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "mlops-test")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


def test_a_request_is_the_document_powertools_writes(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    powertools = Metrics()
    powertools.clear_metrics()
    _request(powertools)
    powertools.flush_metrics()
    expected = _documents(capsys.readouterr().out)

    ours = RequestMetrics()
    _request(ours)
    ours.flush_metrics()
    (document,) = _documents(capsys.readouterr().out)

    assert [document] == expected
    assert document["CapturedRows"] == [5.0, 7.0]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service"]]
    assert all(document[name] == value for name, value in expected[0].items())


def test_a_single_metric_is_the_document_powertools_writes(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with single_metric(
        name="RequestErrors",
        unit=MetricUnit.Count,
        value=1,
        default_dimensions={"service": "predict"},
    ) as metric:
        metric.add_dimension(name="error", value="missing_feature")
    expected = _documents(capsys.readouterr().out)

    RequestMetrics().single_metric(
        "RequestErrors", MetricUnit.Count, 1, {"error": "missing_feature"}
    )

    assert _documents(capsys.readouterr().out) == expected


def test_nothing_outlives_a_request_and_an_empty_one_writes_nothing(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = RequestMetrics()
    _request(metrics)
    metrics.clear_metrics()
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    metrics.flush_metrics()  # nothing left: no line

    (document,) = _documents(capsys.readouterr().out)
    assert "model" not in document and "model_name" not in document
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert document["ClientErrors"] == [1.0]


def test_disabled_as_for_powertools(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = RequestMetrics()
    _request(metrics)
    metrics.flush_metrics()
    assert capsys.readouterr().out == ""


def test_a_value_that_is_no_number_is_refused(env: None) -> None:
    with pytest.raises(ValueError, match="not a valid number"):
        RequestMetrics().add_metric(name="Predictions", unit=MetricUnit.Count, value="1")  # type: ignore[arg-type]
