"""The predict API over real HTTP: the local API adapter of a local cloud deployed from the
synthesized app (a test config: alias TTL 1 s, small batch and body limits, a gate that
promotes a second good drop), with version 1 promoted by a drop through the state machine.

Good requests agree with onnxruntime on the same rows; every bad input class gets a 4xx JSON
body naming the problem; schemathesis finds no 5xx; a promotion under steady traffic fails no
request; a tampered model file is refused; captures and feedback land in the data bucket."""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore
import numpy as np
import onnxruntime as ort
import pytest
import requests
from typer.testing import CliRunner

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import model_outcome
from functions.ml import sample_data
from functions.ml.onnx_input import Prediction, predict_columns
from infra.cli.main import app as cli_app
from infra.cli.predict_client import SigningCredentials, signed_request
from infra.local import LocalCloud
from tests.helpers.config import ABSOLUTE_GATE, repo_config
from tests.helpers.models import MODEL

pytestmark = pytest.mark.slow

TTL_SECONDS = 1
MAX_ROWS = 50
MAX_BYTES = 65_536
CAPTURE_FIELDS = {
    "record",
    "format_version",
    "request_id",
    "timestamp",
    "model_name",
    "model_version",
    "alias",
    "route",
    "rollout",
    "first_row",
    "rows",
    "request_rows",
    "columns",
    "predictions",
    "probabilities",
    "classes",
    "latency_ms",
    "error",
}


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Realistic request rows (features only, a few missing values as null)."""
    frame = sample_data.churn_frame(count, seed=seed, first_id=7_000_000, duplicate_share=0.0)
    features = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
    records = frame[features].to_dict(orient="records")
    return [
        {
            name: None if isinstance(value, float) and math.isnan(value) else _plain(value)
            for name, value in record.items()
        }
        for record in records
    ]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """A plain HTTP client of the local API, signing as the local operator or as the
    principal whose credentials it is given."""

    def __init__(self, url: str, credentials: SigningCredentials | None = None) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials

    def call(
        self,
        method: str,
        path: str,
        document: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> Reply:
        data = raw if raw is not None else None if document is None else json.dumps(document)
        body = data.encode() if isinstance(data, str) else data
        headers = {"Content-Type": content_type} if content_type and body is not None else {}
        request = signed_request(self.url + path, method, body, headers, self.credentials)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, json.loads(response.read()), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, json.loads(exc.read()), dict(exc.headers))

    def predict(self, instances: list[dict[str, Any]]) -> Reply:
        return self.call("POST", "/v1/predict", {"instances": instances})


class Served:
    """The module's local cloud, its API and the data bucket."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.api = Api(cloud.api_url)
        self.bucket = cloud.outputs["DataBucketName"]
        self.s3 = cloud.client("s3")
        self.registry = ModelRegistry(
            cloud.outputs["RegistryTableName"], dynamodb=cloud.client("dynamodb")
        )

    def drop(self, key: str, body: bytes) -> dict[str, Any]:
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        name = self.cloud.execution_name_for_object(
            self.bucket, key, put.get("VersionId"), put["ETag"]
        )
        described = self.cloud.wait_for_execution(name, timeout=120)
        assert described["status"] == "SUCCEEDED", described
        return model_outcome(json.loads(described["output"]))

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def reference(self, version: int, rows: list[dict[str, Any]]) -> Prediction:
        """What onnxruntime says on these rows with the registered model file."""
        prefix = f"models/{MODEL}/{version}/"
        session = ort.InferenceSession(
            self.get(prefix + "model.onnx"), providers=["CPUExecutionProvider"]
        )
        signature = json.loads(self.get(prefix + "signature.json"))
        columns = {
            spec["name"]: [row[spec["name"]] for row in rows] for spec in signature["inputs"]
        }
        return predict_columns(session, columns, signature)


@pytest.fixture(scope="module")
def served(synth_with_config: Callable[[str], Path]) -> Iterator[Served]:
    cdk_out = synth_with_config(
        repo_config(
            gate=ABSOLUTE_GATE,
            serving={
                "alias_ttl_seconds": TTL_SECONDS,
                "max_batch_rows": MAX_ROWS,
                "max_body_bytes": MAX_BYTES,
            },
        )
    )
    with LocalCloud.start(
        cdk_out, mode="server", port=0, api_port=0, state_dir=cdk_out.parent / "state"
    ) as cloud:
        run = Served(cloud)
        first = run.drop(
            "raw/churn/first.csv", sample_data.encode(sample_data.churn_frame(2_000, seed=31))
        )
        assert first["status"] == "promoted" and first["registered"]["version"] == 1
        yield run


def test_single_and_batch_predictions_agree_with_onnxruntime(served: Served) -> None:
    rows = _rows(12, seed=41)
    rows[1]["age"], rows[2]["region"], rows[3]["total_charges"] = None, None, None
    expected = served.reference(1, rows)
    single = served.api.predict(rows[:1])
    batch = served.api.predict(rows)

    assert single.status == 200, single.body
    assert batch.status == 200, batch.body
    for reply, count in ((single, 1), (batch, len(rows))):
        assert reply.body["model_name"] == MODEL
        assert reply.body["model_version"] == 1
        assert reply.body["predictions"] == expected.labels[:count].tolist()
        assert reply.body["classes"] == list(expected.classes or ())
        np.testing.assert_allclose(
            reply.body["probabilities"], expected.probabilities[:count], atol=1e-6
        )
        assert reply.body["request_id"] == reply.headers["x-amzn-RequestId"]


def test_predict_creates_its_clients_from_the_layers_trimmed_botocore_data(
    served: Served,
) -> None:
    # Without botocore's own data files in the serving layer, only the trimmed copy the layer
    # carries (python/mlops_botocore_data) is left for predict's clients to read.
    with served.cloud.edited_function("ServingPredictFunction") as deployment:
        (layer,) = deployment.layers
        data = layer / "python" / "mlops_botocore_data"
        assert (data / "VERSION").read_text().strip() == botocore.__version__
        shutil.rmtree(layer / "python" / "botocore" / "data")
        captured_before = len(served.keys("capture/"))

        response = served.api.predict(_rows(1, seed=40))

        assert response.status == 200, response.body
        assert len(served.keys("capture/")) > captured_before, (
            "capture went through the log subscription and Firehose"
        )


def test_each_function_logs_under_its_own_service_name(served: Served) -> None:
    assert served.api.predict(_rows(1, seed=41)).status == 200
    logs = served.cloud.client("logs")
    deployment = served.cloud.deployment
    assert deployment is not None
    services: dict[str, set[str]] = {}
    for logical_id, group in deployment.of_type("AWS::Logs::LogGroup").items():
        for event in logs.filter_log_events(logGroupName=group)["events"]:
            for line in event["message"].splitlines():
                if line.startswith("{") and '"service"' in line:
                    services.setdefault(logical_id, set()).add(json.loads(line)["service"])
    # One function's log group, one service: a function never logs as another.
    assert all(len(found) == 1 for found in services.values()), services
    by_group = {
        logical_id.split("Function")[0]: found.pop() for logical_id, found in services.items()
    }
    assert by_group["ServingPredict"] == "predict"
    assert by_group["PipelineIngest"] == "ingest"
    assert by_group["PipelineTrain"] == "train"
    assert by_group["PipelineRegister"] == "register"


def test_model_health_and_openapi_describe_the_served_version(served: Served) -> None:
    model = served.api.call("GET", "/v1/model")
    health = served.api.call("GET", "/v1/health")
    document = served.api.call("GET", "/openapi.json")

    assert model.status == 200
    assert model.body["model_version"] == 1 and model.body["task"] == "classification"
    assert model.body["classes"] == ["no", "yes"]
    names = [spec["name"] for spec in model.body["signature"]["inputs"]]
    assert set(names) == {*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES}
    assert model.body["metrics"]["roc_auc"] >= 0.75
    assert health.status == 200
    assert health.body["ready"] is True and health.body["model_version"] == 1
    assert document.status == 200
    assert document.body["openapi"].startswith("3.")
    assert {"/v1/predict", "/v1/feedback", "/v2/models/{name}/infer"} <= set(document.body["paths"])
    instance = document.body["components"]["schemas"]["Instance"]
    assert set(instance["required"]) == set(names)


def _tensors(inputs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` as the v2 input tensors the metadata's `inputs` describe."""
    return [
        {
            "name": spec["name"],
            "shape": [len(rows), 1],
            "datatype": spec["datatype"],
            "data": [row[spec["name"]] for row in rows],
        }
        for spec in inputs
    ]


def test_v2_ready_metadata_and_infer(served: Served) -> None:
    rows = _rows(3, seed=42)
    expected = served.reference(1, rows)
    ready = served.api.call("GET", "/v2/health/ready")
    metadata = served.api.call("GET", f"/v2/models/{MODEL}")
    inputs = _tensors(metadata.body["inputs"], rows)
    infer = served.api.call(
        "POST", f"/v2/models/{MODEL}/infer", {"id": "probe-1", "inputs": inputs}
    )
    other = served.api.call("GET", "/v2/models/not-this-one")

    assert ready.status == 200 and ready.body == {"ready": True}
    assert metadata.status == 200
    assert metadata.body["name"] == MODEL and metadata.body["versions"] == ["1"]
    assert infer.status == 200, infer.body
    assert infer.body["model_version"] == "1" and infer.body["id"] == "probe-1"
    labels, probabilities = infer.body["outputs"]
    assert labels["data"] == expected.labels.tolist()
    assert probabilities["shape"] == [3, 2]
    np.testing.assert_allclose(
        np.reshape(probabilities["data"], (3, 2)), expected.probabilities, atol=1e-6
    )
    # The protocol's error object: the message as `error`, the stable code as `code`.
    assert other.status == 404 and other.body["code"] == "model_not_found"
    assert "'not-this-one'" in other.body["error"] and other.body["models"] == [MODEL]


def entry_alias(entry: dict[str, Any]) -> str:
    """The alias a request for version 1 reports: production's when 1 is production."""
    return "production" if entry["production_version"] == 1 else "version"


def test_the_model_routes_reach_the_function_as_api_gateway_routes_them(served: Served) -> None:
    rows = _rows(3, seed=44)
    expected = served.reference(1, rows)
    listing = served.api.call("GET", "/v1/models")
    named = served.api.call("POST", f"/v1/models/{MODEL}/predict", {"instances": rows})
    described = served.api.call("GET", f"/v1/models/{MODEL}")
    version = served.api.call("GET", f"/v2/models/{MODEL}/versions/1")
    inputs = _tensors(version.body["inputs"], rows)
    pinned = served.api.call("POST", f"/v2/models/{MODEL}/versions/1/infer", {"inputs": inputs})
    unknown = served.api.call("POST", "/v1/models/nope/predict", {"instances": rows})
    missing = served.api.call("GET", f"/v2/models/{MODEL}/versions/99")

    assert listing.status == 200, listing.body
    assert listing.body["default_model"] == MODEL
    [entry] = listing.body["models"]
    assert (entry["name"], entry["status"]) == (MODEL, "ready")
    assert entry["production_version"] >= 1
    assert named.status == 200, named.body
    assert named.body["model_name"] == MODEL
    assert described.status == 200 and described.body["model_name"] == MODEL
    assert version.status == 200 and version.body["versions"] == ["1"]
    assert pinned.status == 200, pinned.body
    # Version 1 is production here: the loaded production answers, and says so.
    assert pinned.body["model_version"] == "1"
    assert pinned.body["parameters"]["alias"] == entry_alias(entry)
    np.testing.assert_allclose(
        np.reshape(pinned.body["outputs"][1]["data"], (3, 2)), expected.probabilities, atol=1e-6
    )
    assert unknown.status == 404 and unknown.body["models"] == [MODEL]
    assert missing.status == 404 and missing.body["code"] == "version_not_found"


def _good() -> dict[str, Any]:
    return _rows(1, seed=43)[0]


def _with(**changes: Any) -> dict[str, Any]:
    return {"instances": [{**_good(), **changes}]}


def _without(name: str) -> dict[str, Any]:
    row = _good()
    del row[name]
    return {"instances": [row]}


# API Gateway's request model for POST /v1/predict (required `instances`, minItems 1) answers
# these before the function, with its generic body: a 4xx JSON, but naming no problem.
# (id, request kwargs for Api.call, status, error code, text the message must contain)
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("malformed_json", {"raw": b'{"instances": [{"age": 3'}, 400, "malformed_json", "JSON"),
    (
        "wrong_content_type",
        {"document": _with(), "content_type": "text/plain"},
        415,
        "unsupported_media_type",
        "application/json",
    ),
    (
        "body_too_large",
        {"document": {"instances": [_good()] * 400}},
        413,
        "body_too_large",
        f"{MAX_BYTES} bytes",
    ),
    ("missing_instances", {"document": {"rows": [_good()]}}, 422, "missing_field", "instances"),
    ("empty_batch", {"document": {"instances": []}}, 422, "empty_batch", "empty"),
    (
        "too_many_rows",
        {"document": {"instances": [_good()] * (MAX_ROWS + 1)}},
        413,
        "too_many_rows",
        f"limit is {MAX_ROWS}",
    ),
    ("missing_feature", {"document": _without("tenure_months")}, 422, "missing_feature", "tenure"),
    ("unknown_feature", {"document": _with(shoe_size=44)}, 422, "unknown_feature", "shoe_size"),
    ("wrong_type", {"document": _with(age="forty")}, 422, "invalid_type", "instances[0].age"),
    ("nan", {"raw": json.dumps(_with(age=math.nan))}, 422, "invalid_number", "finite number"),
    ("infinity", {"raw": json.dumps(_with(age=math.inf))}, 422, "invalid_number", "inf"),
    ("boolean_category", {"document": _with(region=True)}, 422, "invalid_type", "region"),
    ("not_an_object", {"document": [1, 2]}, 422, "invalid_body", "JSON object"),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "named"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_gets_a_4xx_json_body_naming_the_problem(
    served: Served, request_kwargs: dict[str, Any], status: int, code: str, named: str
) -> None:
    reply = served.api.call("POST", "/v1/predict", **request_kwargs)

    assert 400 <= reply.status < 500, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.status == status, reply.body
    assert reply.body["error"] == code, reply.body
    assert named in reply.body["message"], reply.body


def test_unseen_category_is_accepted_and_counted_by_default(served: Served) -> None:
    reply = served.api.predict([_good(), {**_good(), "region": "atlantis"}])

    assert reply.status == 200, reply.body
    assert reply.body["unseen_categories"] == {"region": 1}
    assert len(reply.body["predictions"]) == 2


def test_schemathesis_finds_no_server_error(
    served: Served, operator_auth: requests.auth.AuthBase
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error

    document = served.api.call("GET", "/openapi.json").body
    schema = schemathesis.openapi.from_dict(document)
    strategy = st.one_of(
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    statuses: list[int] = []

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=served.api.url, checks=[not_a_server_error], timeout=30, auth=operator_auth
        )
        statuses.append(response.status_code)

    no_server_error()
    assert statuses and all(status < 500 for status in statuses)
    assert any(status == 200 for status in statuses)


def test_a_request_reaches_capture_as_one_columnar_record_through_the_log_subscription(
    served: Served,
) -> None:
    rows = _rows(3, seed=44)
    reply = served.api.predict(rows)
    request_id = reply.body["request_id"]
    day = datetime.now(UTC).strftime("%Y-%m-%d")

    # The function logged it; the log group's subscription filter handed it to Firehose, which
    # extracted the message and wrote it under the day's prefix, one record per line.
    lines = [
        line
        for key in served.keys(f"capture/dt={day}/")
        for line in served.get(key).decode().splitlines()
    ]
    records = [json.loads(line) for line in lines]
    assert all(record["record"] == "capture" for record in records), "only capture records"
    [record] = [r for r in records if r["request_id"] == request_id]
    assert set(record) == CAPTURE_FIELDS and record["format_version"] == 2
    assert record["model_name"] == MODEL and record["model_version"] == 1
    assert (record["alias"], record["route"], record["rollout"]) == ("production", "v1", None)
    assert (record["first_row"], record["rows"], record["request_rows"]) == (0, 3, 3)
    for name in rows[0]:
        assert record["columns"][name] == pytest.approx([row[name] for row in rows])
    assert record["predictions"] == reply.body["predictions"]
    assert record["probabilities"] == reply.body["probabilities"]
    assert record["error"] is None and record["latency_ms"] > 0
    assert record["timestamp"].startswith(day)


def test_feedback_is_stored_once_and_matches_a_captured_request(served: Served) -> None:
    reply = served.api.predict(_rows(2, seed=45))
    request_id = reply.body["request_id"]
    item = {"request_id": request_id, "row": 1, "label": "yes"}

    first = served.api.call("POST", "/v1/feedback", {"feedback": [item]})
    again = served.api.call("POST", "/v1/feedback", {"feedback": [item]})
    bad = served.api.call("POST", "/v1/feedback", {"feedback": [{**item, "row": -1}]})

    assert first.status == 200 and first.body == {"stored": 1, "duplicates": 0, "unmatched": 0}
    assert again.status == 200 and again.body == {"stored": 0, "duplicates": 1, "unmatched": 0}
    assert bad.status == 422 and bad.body["field"] == "feedback[0].row"
    stored = [key for key in served.keys("feedback/") if request_id in key]
    assert len(stored) == 1 and stored[0].endswith(f"/{request_id}-1.json")
    document = json.loads(served.get(stored[0]))
    assert document["label"] == "yes" and document["row"] == 1
    captured = {
        json.loads(line)["request_id"]
        for key in served.keys("capture/")
        for line in served.get(key).decode().splitlines()
    }
    assert document["request_id"] in captured


class Traffic:
    """A few threads sending predictions until stopped; every reply is kept."""

    def __init__(self, api: Api, threads: int = 3) -> None:
        self.api = api
        self.rows = _rows(4, seed=46)
        self.replies: list[tuple[float, int, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send) for _ in range(threads)]

    def _send(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = self.api.predict(self.rows)
                outcome: tuple[float, int, Any] = (started, reply.status, reply.body)
            except Exception as exc:  # a dropped connection is a failure too
                outcome = (started, 0, repr(exc))
            with self._lock:
                self.replies.append(outcome)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_promotion_under_traffic_fails_no_request(served: Served) -> None:
    second = sample_data.encode(sample_data.churn_frame(2_500, seed=32, first_id=50_000))
    with Traffic(served.api) as traffic:
        time.sleep(0.5)
        output = served.drop("raw/churn/second.csv", second)
        promoted_by = time.monotonic()
        time.sleep(TTL_SECONDS + 1.5)

    assert output["status"] == "promoted" and output["registered"]["version"] == 2
    failures = [(status, body) for _, status, body in traffic.replies if status != 200]
    assert not failures, failures[:3]
    versions = [body["model_version"] for _, _, body in traffic.replies]
    assert set(versions) == {1, 2}, "served v1, then v2, with nothing else in between"
    settled = [
        body["model_version"]
        for started, _, body in traffic.replies
        if started > promoted_by + TTL_SECONDS + 0.5
    ]
    assert settled and set(settled) == {2}
    assert served.api.call("GET", "/v1/model").body["model_version"] == 2


def test_tampered_model_file_is_refused_and_the_previous_version_keeps_serving(
    served: Served,
) -> None:
    current = served.registry.get_alias(MODEL)
    assert current is not None and current.version == 2
    registered = served.registry.get_version(MODEL, 2)
    assert registered is not None
    version = served.registry.allocate_version(MODEL)
    prefix = f"models/{MODEL}/{version}/"
    # Version 1's file under the new version's key, with version 2's checksum on record.
    served.s3.put_object(
        Bucket=served.bucket,
        Key=prefix + "model.onnx",
        Body=served.get("models/churn/1/model.onnx"),
    )
    served.s3.put_object(
        Bucket=served.bucket,
        Key=prefix + "signature.json",
        Body=served.get(registered.prefix + "signature.json"),
    )
    served.registry.put_version(
        registered.model_copy(
            update={"version": version, "prefix": prefix, "onnx_key": prefix + "model.onnx"}
        )
    )
    served.registry.promote(MODEL, version, expected_current=2, reason="e2e: tampered file")
    time.sleep(TTL_SECONDS + 0.2)

    try:
        replies = [served.api.predict(_rows(2, seed=47)) for _ in range(3)]
        health = served.api.call("GET", "/v1/health")
    finally:
        served.registry.rollback(MODEL, reason="e2e: undo the tampered promotion")

    assert [reply.status for reply in replies] == [200, 200, 200]
    assert {reply.body["model_version"] for reply in replies} == {2}
    assert health.body["model_version"] == 2


def test_mlops_predict_posts_a_file_and_prints_the_answers(served: Served, tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"instances": [_good(), _good()]}))
    result = CliRunner().invoke(
        cli_app, ["predict", "--file", str(rows), "--url", served.api.url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    answer = served.api.predict([_good(), _good()]).body
    assert f"model version {answer['model_version']}" in result.output
    for label in answer["predictions"]:
        assert str(label) in result.output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**_good(), "age": "forty"}]))
    result = CliRunner().invoke(cli_app, ["predict", "--file", str(bad), "--url", served.api.url])
    assert result.exit_code != 0
    assert "age" in result.output
