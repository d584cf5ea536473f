"""The predict Lambda against moto with real ONNX models: answers equal onnxruntime's, the alias
is followed after its TTL, a tampered model is refused, predictions are captured through
Firehose and feedback is stored once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pytest

from functions.ml.onnx_input import predict_columns
from functions.predict import feedback
from tests.helpers.models import FEATURES, MODEL, Trained
from tests.helpers.predict_api import Api
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud


def expected(trained: Trained, rows: list[dict[str, Any]]) -> Any:
    session = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return predict_columns(session, columns, trained.signature)


def test_no_model_yet_is_503(api: Api) -> None:
    status, body = api.call("POST", "/v1/predict", {"instances": [{}]})
    assert status == 503
    assert body["message"] == "no model is promoted yet"
    assert api.call("GET", "/v2/health/ready")[0] == 503
    assert api.call("GET", "/v1/health")[1]["ready"] is False


def test_predictions_equal_onnxruntime(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    rows = models[1].rows
    status, body = api.call("POST", "/v1/predict", {"instances": rows})
    assert status == 200, body
    reference = expected(models[1], rows)
    assert body["model_version"] == 1 and body["model_name"] == MODEL
    assert body["request_id"].startswith("req-")
    assert body["predictions"] == reference.labels.tolist()
    assert body["classes"] == list(reference.classes)
    np.testing.assert_allclose(body["probabilities"], reference.probabilities, rtol=0, atol=1e-7)


def test_sample_event_as_is(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    from tests.helpers.predict_api import CONTEXT

    response = api.handler.lambda_handler(api.template, CONTEXT)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200, body
    assert body["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert len(body["probabilities"][0]) == 2


def test_unseen_categories_are_counted(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    row = {**models[1].rows[0], "region": "atlantis", "contract": None}
    status, body = api.call("POST", "/v1/predict", {"instances": [row, row]})
    assert status == 200
    assert body["unseen_categories"] == {"region": 2}


def test_unseen_categories_rejected_when_configured(
    serving_config: Any, api: Api, cloud: Cloud, models: dict[int, Trained]
) -> None:
    serving_config(unseen_categories="reject")
    api.reset()
    publish(cloud, models[1])
    rows = [models[1].rows[0], {**models[1].rows[0], "region": "atlantis"}]
    status, body = api.call("POST", "/v1/predict", {"instances": rows})
    assert status == 422
    assert body["field"] == "instances[1].region" and body["error"] == "unseen_category"
    document = api.call("GET", "/openapi.json")[1]
    region = document["components"]["schemas"]["Instance"]["properties"]["region"]
    # Only the training categories; no category is spelled as a number, so no number either.
    [text] = region["anyOf"]
    assert "north" in text["enum"] and "atlantis" not in text["enum"]


def test_model_metadata(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    status, body = api.call("GET", "/v1/model")
    assert status == 200
    assert body["model_version"] == 1 and body["promoted_at"]
    assert [spec["name"] for spec in body["signature"]["inputs"]] == FEATURES
    assert body["classes"] == models[1].signature["classes"]
    assert body["metrics"] == {"roc_auc": 0.81}


def test_open_inference_protocol(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    rows = models[1].rows[:3]
    status, meta = api.call("GET", f"/v2/models/{MODEL}")
    assert status == 200 and meta["platform"] == "onnx" and meta["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["contract"] == "BYTES"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["age"] == "FP32"
    inputs = [
        {
            "name": spec["name"],
            "shape": [3, 1],
            "datatype": "BYTES" if spec["name"] in FEATURES[5:] else "FP32",
            "data": [row[spec["name"]] for row in rows],
        }
        for spec in meta["inputs"]
    ]
    status, body = api.call("POST", f"/v2/models/{MODEL}/infer", {"id": "abc", "inputs": inputs})
    assert status == 200, body
    assert body["id"] == "abc" and body["model_version"] == "1"
    label, probabilities = body["outputs"]
    reference = expected(models[1], rows)
    assert label["data"] == reference.labels.tolist() and label["shape"] == [3]
    assert probabilities["shape"] == [3, 2]
    np.testing.assert_allclose(
        np.reshape(probabilities["data"], (3, 2)), reference.probabilities, atol=1e-7
    )
    assert api.call("POST", "/v2/models/other/infer", {"inputs": inputs})[0] == 404
    assert api.call("GET", "/v2/models/other")[0] == 404
    assert api.call("GET", "/v2/health/ready") == (200, {"ready": True})


def test_alias_move_is_followed_after_ttl(
    api: Api, cloud: Cloud, models: dict[int, Trained]
) -> None:
    publish(cloud, models[1])
    rows = models[2].rows[:20]
    assert api.call("POST", "/v1/predict", {"instances": rows})[1]["model_version"] == 1
    publish(cloud, models[2])
    api.now += 4
    assert api.call("POST", "/v1/predict", {"instances": rows})[1]["model_version"] == 1
    api.now += 1
    status, body = api.call("POST", "/v1/predict", {"instances": rows})
    assert body["model_version"] == 2
    np.testing.assert_allclose(
        body["probabilities"], expected(models[2], rows).probabilities, atol=1e-7
    )


def test_tampered_model_is_refused(
    api: Api,
    cloud: Cloud,
    models: dict[int, Trained],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(cloud, models[1])
    row = models[1].rows[:1]
    assert api.call("POST", "/v1/predict", {"instances": row})[1]["model_version"] == 1
    publish(cloud, models[2], tamper=True)
    api.now += 10
    capsys.readouterr()
    status, body = api.call("POST", "/v1/predict", {"instances": row})
    assert status == 200 and body["model_version"] == 1
    assert "does not match its registered checksum" in caplog.text
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert any(
        blob.get("ModelIntegrityFailures") == [1.0] or blob.get("ModelIntegrityFailures") == 1.0
        for blob in emf
    ), emf


def test_predictions_are_captured_as_one_columnar_record_that_feedback_finds(
    capture_log: Callable[[], list[dict[str, Any]]],
    api: Api,
    cloud: Cloud,
    models: dict[int, Trained],
) -> None:
    api.reset()
    publish(cloud, models[1])
    rows = models[1].rows[:3]
    capture_log()
    body = api.call("POST", "/v1/predict", {"instances": rows})[1]

    [record] = capture_log()
    assert record["request_id"] == body["request_id"] and record["format_version"] == 2
    assert (record["model_name"], record["model_version"], record["alias"]) == (
        MODEL,
        1,
        "production",
    )
    assert (record["route"], record["first_row"], record["rows"], record["request_rows"]) == (
        "v1",
        0,
        3,
        3,
    )
    assert record["columns"] == {name: [row[name] for row in rows] for name in rows[0]}
    assert record["predictions"] == body["predictions"]
    assert record["probabilities"] == body["probabilities"]
    assert record["classes"] == body["classes"] and record["error"] is None
    assert record["latency_ms"] > 0 and record["timestamp"].endswith("Z")

    # Delivered under capture/, the record tells a label what its row was served.
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    cloud.s3.put_object(
        Bucket=cloud.bucket,
        Key=f"capture/dt={day}/mlops-dev-capture-1",
        Body=json.dumps(record).encode() + b"\n",
    )
    item = {"request_id": body["request_id"], "row": 1, "label": "yes"}
    assert api.call("POST", "/v1/feedback", {"feedback": [item]})[1]["unmatched"] == 0
    [key] = cloud.keys("feedback/")
    stored = json.loads(cloud.body(key))
    assert stored["format_version"] == 2
    assert stored["served"] == {
        "model_name": MODEL,
        "model_version": 1,
        "alias": "production",
        "rollout": None,
        "prediction": body["predictions"][1],
    }


def test_feedback_is_stored_once(api: Api, cloud: Cloud, models: dict[int, Trained]) -> None:
    publish(cloud, models[1])
    feedback = {
        "feedback": [
            {"request_id": "req-000001", "row": 0, "label": "yes"},
            {"request_id": "req-000001", "row": 1, "label": "no", "features": {"age": 30}},
        ]
    }
    assert api.call("POST", "/v1/feedback", feedback) == (
        200,
        {"stored": 2, "duplicates": 0, "unmatched": 2},
    )
    assert api.call("POST", "/v1/feedback", feedback) == (
        200,
        {"stored": 0, "duplicates": 2, "unmatched": 2},
    )
    keys = cloud.keys("feedback/")
    assert len(keys) == 2
    assert keys[0].startswith("feedback/dt=") and keys[0].endswith("/req-000001-0.json")
    stored = json.loads(cloud.body(keys[0]))
    assert stored["label"] == "yes" and stored["row"] == 0


def _captured(cloud: Cloud, request_id: str, rows: int) -> None:
    """A capture object as Firehose writes it: one JSON line per predicted row."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        json.dumps({"request_id": request_id, "row": row, "model_version": 1, "features": {}})
        for row in range(rows)
    ]
    cloud.s3.put_object(
        Bucket=cloud.bucket,
        Key=f"capture/dt={day}/mlops-dev-capture-1",
        Body=("\n".join(lines) + "\n").encode(),
    )


@pytest.mark.parametrize(
    ("features", "field"),
    [
        ('{"age": NaN}', "feedback[1].features.age"),
        ('{"age": Infinity}', "feedback[1].features.age"),
        ('{"monthly_charges": 1e999}', "feedback[1].features.monthly_charges"),
        ('{"age": "forty"}', "feedback[1].features.age"),
        ('{"planet": "mars"}', "feedback[1].features.planet"),
    ],
)
def test_feedback_with_a_bad_feature_is_refused_whole_and_nothing_is_stored(
    api: Api, cloud: Cloud, models: dict[int, Trained], features: str, field: str
) -> None:
    publish(cloud, models[1])
    good = '{"request_id": "req-a", "row": 0, "label": "yes"}'
    bad = f'{{"request_id": "req-b", "row": 0, "label": "no", "features": {features}}}'

    status, body = api.call("POST", "/v1/feedback", raw=f'{{"feedback": [{good}, {bad}]}}')

    assert status == 422, body
    assert body["error"] == "invalid_feedback" and body["field"] == field
    assert cloud.keys("feedback/") == []


def test_feedback_labels_rows_and_request_ids_are_checked_against_the_model_and_capture(
    api: Api, cloud: Cloud, models: dict[int, Trained]
) -> None:
    publish(cloud, models[1])
    _captured(cloud, "req-captured", rows=3)
    item = {"request_id": "req-captured", "row": 2, "label": "yes"}

    unknown_class = api.call("POST", "/v1/feedback", {"feedback": [{**item, "label": "maybe"}]})
    beyond = api.call("POST", "/v1/feedback", {"feedback": [item, {**item, "row": 3}]})
    assert cloud.keys("feedback/") == []
    stored = api.call(
        "POST",
        "/v1/feedback",
        {"feedback": [item, {"request_id": "req-never-seen", "row": 7, "label": "no"}]},
    )

    assert unknown_class[0] == 422 and unknown_class[1]["field"] == "feedback[0].label"
    assert "'no', 'yes'" in unknown_class[1]["message"]
    assert beyond[0] == 422 and beyond[1]["field"] == "feedback[1].row"
    assert "3 rows" in beyond[1]["message"]
    assert stored == (200, {"stored": 2, "duplicates": 0, "unmatched": 1})
    assert len(cloud.keys("feedback/")) == 2


def test_feedback_reads_only_the_newest_capture_objects(
    api: Api, cloud: Cloud, models: dict[int, Trained], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback, "CAPTURE_SCAN_OBJECTS", 3)
    publish(cloud, models[1])
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    for index in range(5):  # oldest first: req-0 ... req-4, one object each
        line = {"request_id": f"req-{index}", "row": 0, "model_version": 1, "features": {}}
        cloud.s3.put_object(
            Bucket=cloud.bucket,
            Key=f"capture/dt={day}/mlops-dev-capture-{index}",
            Body=json.dumps(line).encode() + b"\n",
        )
    items = [{"request_id": f"req-{index}", "row": 1, "label": "yes"} for index in (0, 4)]

    status, body = api.call("POST", "/v1/feedback", {"feedback": items})

    # req-4's capture is among the newest three: its row 1 is beyond the request's one row.
    # req-0's is older than what the route reads: stored as unmatched.
    assert status == 422 and body["field"] == "feedback[1].row", body
    assert api.call("POST", "/v1/feedback", {"feedback": items[:1]})[1] == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 1,
    }


def test_concurrent_requests_while_alias_moves(
    api: Api, cloud: Cloud, models: dict[int, Trained]
) -> None:
    publish(cloud, models[1])
    rows = models[1].rows[:5]
    results: list[tuple[int, Any]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        for _ in range(15):
            try:
                results.append(api.call("POST", "/v1/predict", {"instances": rows}))
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    publish(cloud, models[2])
    api.now += 10
    for thread in threads:
        thread.join()
    assert not errors
    assert all(status == 200 for status, _ in results), results[:3]
    versions = {body["model_version"] for _, body in results}
    assert versions <= {1, 2}
    for _, body in results:
        reference = expected(models[body["model_version"]], rows)
        np.testing.assert_allclose(body["probabilities"], reference.probabilities, atol=1e-7)
    assert api.call("POST", "/v1/predict", {"instances": rows})[1]["model_version"] == 2
