"""The records the predict function leaves for the monitor, byte for byte: a capture line per
predicted row and a feedback object per labelled row (`functions.common.records`)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import numpy as np

from functions.adapters.storage import ObjectStore
from functions.common.config.serving import ServingConfig
from functions.common.records import FeedbackItem, capture_record, feedback_item
from functions.common.sensitive import SensitiveColumns
from functions.ml.onnx_input import Prediction
from functions.predict import logic
from functions.predict.feedback import FeedbackStore
from functions.predict.models import Served
from functions.serving.values import Batch

TIMESTAMP = re.compile(rb'"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')
RECEIVED = re.compile(rb'"received_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')


class _Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put_lines(self, lines: list[bytes]) -> int:
        self.lines.extend(lines)
        return 0


def _service(capture: _Lines) -> logic.Service:
    return logic.Service(
        settings=logic.PredictSettings(data_bucket="b", registry_table="t"),
        serving=ServingConfig(),
        models=None,  # type: ignore[arg-type]
        registry=None,  # type: ignore[arg-type]
        capture=capture,  # type: ignore[arg-type]
        feedback=None,  # type: ignore[arg-type]
    )


_SERVED = Served(
    name="churn",
    store=None,  # type: ignore[arg-type]
    serving=ServingConfig(),
    sensitive=SensitiveColumns(),
    feedback_lookback_hours=24,
)


def test_a_capture_line_is_the_records_json_byte_for_byte() -> None:
    capture = _Lines()
    batch = Batch(
        columns={"age": np.array([30.0, np.nan]), "plan": ["pro", None]}, rows=2, unseen={}
    )
    prediction = Prediction(
        labels=np.array(["yes", "no"], dtype=object),
        probabilities=np.array([[0.25, 0.75], [0.5, 0.5]]),
    )
    model = SimpleNamespace(name="churn", version=3)

    logic.capture(_service(capture), _SERVED, model, batch, prediction, "req-1")  # type: ignore[arg-type]

    assert [TIMESTAMP.sub(b'"timestamp":"T"', line) for line in capture.lines] == [
        b'{"request_id":"req-1","row":0,"timestamp":"T","model_name":"churn","model_version":3,'
        b'"features":{"age":30.0,"plan":"pro"},"prediction":"yes","probabilities":[0.25,0.75],'
        b'"format_version":1}\n',
        b'{"request_id":"req-1","row":1,"timestamp":"T","model_name":"churn","model_version":3,'
        b'"features":{"age":null,"plan":null},"prediction":"no","probabilities":[0.5,0.5],'
        b'"format_version":1}\n',
    ]


def test_a_regression_capture_line_has_null_probabilities() -> None:
    capture = _Lines()
    batch = Batch(columns={"age": np.array([30.0])}, rows=1, unseen={})
    prediction = Prediction(labels=np.array([1.5]), probabilities=None)
    model = SimpleNamespace(name="price", version=1)

    logic.capture(_service(capture), _SERVED, model, batch, prediction, "r")  # type: ignore[arg-type]

    assert TIMESTAMP.sub(b'"timestamp":"T"', capture.lines[0]) == (
        b'{"request_id":"r","row":0,"timestamp":"T","model_name":"price","model_version":1,'
        b'"features":{"age":30.0},"prediction":1.5,"probabilities":null,'
        b'"format_version":1}\n'
    )


class _Bucket:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def put_object(self, **request: Any) -> None:
        self.bodies[request["Key"]] = request["Body"]


def test_a_feedback_object_is_the_records_json_byte_for_byte() -> None:
    bucket = _Bucket()
    store = FeedbackStore("b", ObjectStore(bucket))
    store.captured_rows = lambda ids, hours=None: {}  # type: ignore[method-assign]
    items = [
        FeedbackItem(request_id="req-1", row=0, label="yes", features=None),
        FeedbackItem(request_id="req-1", row=1, label=2.5, features={"age": 30}),
    ]

    assert store.store(items) == {"stored": 2, "duplicates": 0, "unmatched": 2}

    assert sorted(RECEIVED.sub(b'"received_at":"T"', body) for body in bucket.bodies.values()) == [
        b'{"request_id":"req-1","row":0,"label":"yes","features":null,"received_at":"T",'
        b'"format_version":1}',
        b'{"request_id":"req-1","row":1,"label":2.5,"features":{"age":30},"received_at":"T",'
        b'"format_version":1}',
    ]


def test_records_are_read_back_through_the_contract() -> None:
    assert capture_record({"model_version": 1, "features": {}}) == {
        "model_version": 1,
        "features": {},
    }
    assert capture_record({"model_version": True, "features": {}}) is None
    assert capture_record({"model_version": 1}) is None
    assert capture_record([]) is None
    assert feedback_item({"request_id": "r", "label": "yes", "age": "3"}) == {
        "request_id": "r",
        "row": 0,
        "label": "yes",
        "features": {"age": "3"},
    }
    assert feedback_item({"request_id": "r", "row": "x", "label": "yes"}) is None
    assert feedback_item({"request_id": "r", "label": float("nan")}) is None
