"""The records the predict function leaves for the monitor, byte for byte: one columnar
capture line per request (chunked under CloudWatch Logs' event limit; `capture_log`) and a
feedback object per labelled row (`functions.common.records`)."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from functions.adapters.storage import ObjectStore
from functions.common.config.serving import ServingConfig
from functions.common.observability import request_metrics as metrics
from functions.common.records import (
    FeedbackItem,
    ServedRow,
    capture_record,
    feedback_item,
    record_rows,
)
from functions.common.sensitive import SensitiveColumns, hash_value
from functions.ml.onnx_input import Prediction
from functions.predict import logic
from functions.predict.capture_log import LOG_EVENT_LIMIT_BYTES, CaptureLog
from functions.predict.feedback import FeedbackStore
from functions.predict.models import Served
from functions.serving.values import Batch

TIMESTAMP = re.compile(rb'"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')
LATENCY = re.compile(rb'"latency_ms":[0-9.]+')
RECEIVED = re.compile(rb'"received_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')


def _service(out: io.StringIO, max_bytes: int | None = None) -> logic.Service:
    return logic.Service(
        settings=logic.PredictSettings(data_bucket="b", registry_table="t"),
        serving=ServingConfig(),
        models=None,  # type: ignore[arg-type]
        registry=None,  # type: ignore[arg-type]
        capture=CaptureLog(out, max_bytes) if max_bytes else CaptureLog(out),
        feedback=None,  # type: ignore[arg-type]
    )


def _served(sensitive: SensitiveColumns | None = None, rate: float = 1.0) -> Served:
    return Served(
        name="churn",
        store=None,  # type: ignore[arg-type]
        serving=ServingConfig(capture_sample_rate=rate),
        sensitive=sensitive or SensitiveColumns(),
        feedback_lookback_hours=24,
    )


def _model(name: str = "churn", version: int = 3, classes: list[str] | None = None) -> Any:
    return SimpleNamespace(name=name, version=version, alias="production", classes=classes)


def _lines(out: io.StringIO) -> list[bytes]:
    return [
        LATENCY.sub(b'"latency_ms":L', TIMESTAMP.sub(b'"timestamp":"T"', line.encode()))
        for line in out.getvalue().splitlines()
    ]


def test_a_request_is_one_columnar_line_byte_for_byte_with_nan_as_null() -> None:
    out = io.StringIO()
    batch = Batch(
        columns={"age": np.array([30.0, np.nan], dtype=np.float32), "plan": ["pro", None]},
        rows=2,
        unseen={},
    )
    prediction = Prediction(
        labels=np.array(["yes", "no"], dtype=object),
        probabilities=np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
    )

    logic.capture(
        _service(out), _served(), _model(classes=["no", "yes"]), batch, prediction, "req-1", "v1", 0
    )

    assert _lines(out) == [
        b'{"record":"capture","format_version":2,"request_id":"req-1","timestamp":"T",'
        b'"model_name":"churn","model_version":3,"alias":"production","route":"v1",'
        b'"rollout":null,"classes":["no","yes"],"latency_ms":L,"error":null,"first_row":0,'
        b'"rows":2,"request_rows":2,"columns":{"age":[30.0,null],"plan":["pro",null]},'
        b'"predictions":["yes","no"],"probabilities":[[0.25,0.75],[0.5,0.5]]}'
    ]
    record = capture_record(orjson.loads(out.getvalue()))
    assert record is not None
    assert list(record_rows(record)) == [
        (0, {"age": 30.0, "plan": "pro"}, "yes"),
        (1, {"age": None, "plan": None}, "no"),
    ]


def test_the_timestamp_is_now_in_utc_to_the_millisecond_across_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The date and time formatted once per second are those of the second asked for: the
    text is what `datetime.isoformat` writes (milliseconds truncated, `Z`)."""
    import time
    from datetime import UTC, datetime, timedelta

    from functions.predict import capture_log

    moments = [
        1_796_265_193_999_999_999,  # the last nanosecond of a second ...
        1_796_265_194_000_000_000,  # ... the next second
        1_796_265_194_123_456_789,
        1_767_225_599_500_000_000,  # the last second of 2025
        1_767_225_600_001_000_000,
    ]
    for ns in moments:
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
        text = expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert capture_log.timestamp() == text
    monkeypatch.undo()
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = datetime.fromisoformat(capture_log.timestamp())
    assert before <= stamp <= datetime.now(UTC)


def test_a_regression_line_has_numeric_predictions_and_null_probabilities() -> None:
    out = io.StringIO()
    batch = Batch(columns={"age": np.array([30.0])}, rows=1, unseen={})
    prediction = Prediction(labels=np.array([1.5], dtype=np.float32), probabilities=None)

    logic.capture(_service(out), _served(), _model("price", 1), batch, prediction, "r", "v2", 0)

    line = orjson.loads(out.getvalue())
    assert (line["route"], line["predictions"], line["probabilities"]) == ("v2", [1.5], None)
    assert line["classes"] is None and line["rows"] == 1


def test_a_failed_scoring_writes_an_error_record_without_rows() -> None:
    out = io.StringIO()
    batch = Batch(columns={"age": np.array([30.0, 40.0])}, rows=2, unseen={})

    logic.capture(_service(out), _served(), _model(), batch, None, "r", "v1", 0, RuntimeError("x"))

    line = orjson.loads(out.getvalue())
    assert line["error"] == logic.SCORING_FAILED
    assert (line["rows"], line["columns"], line["predictions"]) == (0, {}, [])
    assert line["request_rows"] == 2
    assert capture_record(line) is not None  # counted by readers, no rows to read


def test_sensitive_columns_are_hashed_per_value_or_dropped() -> None:
    out = io.StringIO()
    sensitive = SensitiveColumns({"email": "hash", "ssn": "drop", "age": "hash"}, salt="s")
    batch = Batch(
        columns={
            "email": ["a@x", "b@x", "a@x", None],
            "ssn": ["1", "2", "3", "4"],
            "age": np.array([42.0, np.nan, 42.0, 7.0]),
        },
        rows=4,
        unseen={},
    )
    prediction = Prediction(labels=np.array([0.0, 1.0, 0.0, 1.0]), probabilities=None)

    logic.capture(_service(out), _served(sensitive), _model(), batch, prediction, "r", "v1", 0)

    columns = orjson.loads(out.getvalue())["columns"]
    assert set(columns) == {"email", "age"}
    email = hash_value("a@x", "s")
    assert columns["email"] == [email, hash_value("b@x", "s"), email, ""]
    # Hashed as the reference profile hashes them: the model's categorical text of 42.0.
    assert columns["age"] == [
        hash_value(42.0, "s"),
        "",
        hash_value(42.0, "s"),
        hash_value(7.0, "s"),
    ]
    assert "a@x" not in out.getvalue() and '"1"' not in out.getvalue()


def test_a_large_request_is_chunked_by_rows_under_the_event_limit() -> None:
    out = io.StringIO()
    rows = 20_000
    rng = np.random.default_rng(1)
    batch = Batch(
        columns={
            "age": rng.normal(40, 10, rows),
            "plan": [f"plan-{i % 7}" for i in range(rows)],
        },
        rows=rows,
        unseen={},
    )
    prediction = Prediction(
        labels=np.array(["yes", "no"] * (rows // 2), dtype=object),
        probabilities=rng.random((rows, 2)),
    )

    logic.capture(_service(out), _served(), _model(), batch, prediction, "big", "v1", 0)

    lines = out.getvalue().encode().splitlines()
    assert len(lines) > 1
    assert all(len(line) + 26 <= LOG_EVENT_LIMIT_BYTES for line in lines)
    records = [capture_record(orjson.loads(line)) for line in lines]
    assert all(r is not None and r["request_rows"] == rows for r in records)
    starts = [r["first_row"] for r in records if r]
    counts = [r["rows"] for r in records if r]
    assert starts == [sum(counts[:i]) for i in range(len(counts))] and sum(counts) == rows
    ages = [value for r in records if r for value in r["columns"]["age"]]
    assert ages == pytest.approx(batch.columns["age"].tolist())
    assert [p for r in records if r for p in r["predictions"]] == prediction.labels.tolist()


def test_chunks_halve_until_each_fits() -> None:
    out = io.StringIO()
    # Rows of very different sizes: the average row misjudges the chunk.
    plan = ["x" * 5000 if i >= 90 else "y" for i in range(100)]
    batch = Batch(columns={"plan": plan}, rows=100, unseen={})
    prediction = Prediction(labels=np.zeros(100), probabilities=None)

    logic.capture(_service(out, 20_000), _served(), _model(), batch, prediction, "r", "v1", 0)

    lines = out.getvalue().encode().splitlines()
    assert all(len(line) <= 20_000 for line in lines)
    assert sum(orjson.loads(line)["rows"] for line in lines) == 100


def test_requests_are_sampled_by_capture_sample_rate() -> None:
    out = io.StringIO()
    svc = _service(out)
    batch = Batch(columns={"age": np.array([1.0])}, rows=1, unseen={})
    prediction = Prediction(labels=np.array([1.0]), probabilities=None)
    for index in range(400):
        logic.capture(svc, _served(rate=0.25), _model(), batch, prediction, str(index), "v1", 0)

    assert 60 < len(out.getvalue().splitlines()) < 140


class _Bucket:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def put_object(self, **request: Any) -> None:
        self.bodies[request["Key"]] = request["Body"]


def test_a_feedback_object_is_the_records_json_byte_for_byte() -> None:
    bucket = _Bucket()
    store = FeedbackStore("b", ObjectStore(bucket))
    served = ServedRow(
        model_name="churn", model_version=3, alias="candidate", rollout=7, prediction="no"
    )
    store.captured_rows = lambda items, hours=None: (  # type: ignore[method-assign]
        {"req-1": 2},
        {("req-1", 1): served},
    )
    items = [
        FeedbackItem(request_id="req-1", row=0, label="yes", features=None),
        FeedbackItem(request_id="req-1", row=1, label=2.5, features={"age": 30}),
    ]

    assert store.store(items) == {"stored": 2, "duplicates": 0, "unmatched": 0}

    assert sorted(RECEIVED.sub(b'"received_at":"T"', body) for body in bucket.bodies.values()) == [
        b'{"request_id":"req-1","row":0,"label":"yes","features":null,"received_at":"T",'
        b'"served":null,"format_version":2}',
        b'{"request_id":"req-1","row":1,"label":2.5,"features":{"age":30},"received_at":"T",'
        b'"served":{"model_name":"churn","model_version":3,"alias":"candidate","rollout":7,'
        b'"prediction":"no"},"format_version":2}',
    ]


def test_records_are_read_back_through_the_contract() -> None:
    version_1 = {"request_id": "r", "row": 4, "model_version": 1, "features": {"age": 3}}
    upgraded = capture_record(version_1)
    assert upgraded is not None
    assert (upgraded["first_row"], upgraded["rows"], upgraded["columns"]) == (4, 1, {"age": [3]})
    assert (upgraded["alias"], upgraded["route"], upgraded["request_rows"]) == (
        "production",
        None,
        None,
    )
    assert list(record_rows(upgraded)) == [(4, {"age": 3}, None)]
    assert capture_record({"model_version": True, "features": {}}) is None
    assert capture_record({"model_version": 1}) is None
    assert capture_record([]) is None
    # Columns that do not hold `rows` values are not a record a reader can use.
    assert (
        capture_record(
            {
                "format_version": 2,
                "model_version": 1,
                "first_row": 0,
                "rows": 2,
                "columns": {"age": [1]},
                "predictions": [1, 2],
            }
        )
        is None
    )
    assert feedback_item({"request_id": "r", "label": "yes", "age": "3"}) == {
        "request_id": "r",
        "row": 0,
        "label": "yes",
        "features": {"age": "3"},
    }
    assert feedback_item({"request_id": "r", "row": "x", "label": "yes"}) is None
    assert feedback_item({"request_id": "r", "label": float("nan")}) is None


class _FailingSession:
    def run(self, *_: Any) -> Any:
        raise RuntimeError("onnxruntime failed")


def test_scoring_that_raises_is_captured_as_an_error_then_raised() -> None:
    out = io.StringIO()
    store = SimpleNamespace(rollout=None)
    served = Served(
        name="churn",
        store=store,  # type: ignore[arg-type]
        serving=ServingConfig(),
        sensitive=SensitiveColumns(),
        feedback_lookback_hours=24,
    )
    model = SimpleNamespace(
        name="churn",
        version=2,
        alias="candidate",
        classes=["no", "yes"],
        session=_FailingSession(),
        signature={"inputs": [], "onnx_outputs": [{"name": "label"}]},
    )
    batch = Batch(columns={}, rows=3, unseen={})

    with pytest.raises(RuntimeError, match="onnxruntime failed"):
        logic._score(_service(out), served, model, batch, "req-9", "v2")  # type: ignore[arg-type]

    [line] = [orjson.loads(text) for text in out.getvalue().splitlines()]
    assert (line["request_id"], line["alias"], line["model_version"]) == ("req-9", "candidate", 2)
    assert (line["error"], line["rows"], line["request_rows"]) == ("scoring_failed", 0, 3)


def test_a_capture_that_cannot_be_written_never_fails_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    out.close()  # stdout gone: the write raises
    batch = Batch(columns={"age": np.array([1.0])}, rows=1, unseen={})
    prediction = Prediction(labels=np.array([1.0]), probabilities=None)

    metrics.clear_metrics()
    logic.capture(_service(out), _served(), _model(), batch, prediction, "r", "v1", 0)

    capsys.readouterr()
    metrics.flush_metrics()
    [emf] = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert emf["CaptureFailures"] == [1.0]
