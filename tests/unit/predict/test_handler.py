"""The predict handler's answers to good and bad requests (model and registry faked in memory):
each problem is a 4xx naming the field, and nothing a client sends produces a 5xx."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tests.helpers import REPO
from tests.helpers.models import FEATURES, Trained
from tests.helpers.predict_api import CONTEXT, api_event

Call = Callable[..., tuple[int, Any]]


def test_predict_one_row(call: Call, trained: Trained) -> None:
    status, body = call("POST", "/v1/predict", {"instances": [trained.row]})
    assert status == 200, body
    assert body["model_version"] == 1 and body["model_name"] == "churn"
    assert body["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert body["classes"] == trained.signature["classes"]
    assert math.isclose(sum(body["probabilities"][0]), 1.0, rel_tol=1e-6)


def test_nulls_are_imputed(call: Call, trained: Trained) -> None:
    row = dict.fromkeys(FEATURES)
    assert call("POST", "/v1/predict", {"instances": [row]})[0] == 200


def test_categorical_number_is_its_string(call: Call, trained: Trained) -> None:
    status, body = call("POST", "/v1/predict", {"instances": [{**trained.row, "region": 7}]})
    assert status == 200 and body["unseen_categories"] == {"region": 1}


@pytest.mark.parametrize(
    ("mutate", "status", "code", "field"),
    [
        (lambda r: {"instances": {}}, 422, "invalid_type", "instances"),
        (lambda r: {"rows": [r]}, 422, "missing_field", "instances"),
        (lambda r: [r], 422, "invalid_body", None),
        (lambda r: {"instances": []}, 422, "empty_batch", "instances"),
        (lambda r: {"instances": [r, 5]}, 422, "invalid_instance", "instances[1]"),
        (
            lambda r: {"instances": [{k: v for k, v in r.items() if k != "age"}]},
            422,
            "missing_feature",
            "instances[0].age",
        ),
        (
            lambda r: {"instances": [{**r, "shoe_size": 3}]},
            422,
            "unknown_feature",
            "instances[0].shoe_size",
        ),
        (lambda r: {"instances": [{**r, "age": "42"}]}, 422, "invalid_type", "instances[0].age"),
        (lambda r: {"instances": [{**r, "age": True}]}, 422, "invalid_type", "instances[0].age"),
        (
            lambda r: {"instances": [{**r, "age": float("nan")}]},
            422,
            "invalid_number",
            "instances[0].age",
        ),
        (lambda r: {"instances": [{**r, "age": 1e300}]}, 422, "invalid_number", "instances[0].age"),
        (
            lambda r: {"instances": [{**r, "age": 10**400}]},
            422,
            "invalid_number",
            "instances[0].age",
        ),
        (
            lambda r: {"instances": [{**r, "region": False}]},
            422,
            "invalid_type",
            "instances[0].region",
        ),
        (
            lambda r: {"instances": [{**r, "region": ["north"]}]},
            422,
            "invalid_type",
            "instances[0].region",
        ),
        (lambda r: {"instances": [r] * 1001}, 413, "too_many_rows", "instances"),
    ],
)
def test_bad_instances(
    call: Call,
    trained: Trained,
    mutate: Callable[[dict[str, Any]], Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer, body = call("POST", "/v1/predict", raw=json.dumps(mutate(trained.row)))
    assert (answer, body["error"], body.get("field")) == (status, code, field), body
    assert body["message"]


def test_malformed_json(call: Call) -> None:
    status, body = call("POST", "/v1/predict", raw='{"instances": [')
    assert status == 400 and body["error"] == "malformed_json"


def test_infinity_literal(call: Call, trained: Trained) -> None:
    raw = json.dumps({"instances": [trained.row]}).replace("42", "Infinity", 1)
    raw = raw.replace(f'"age": {json.dumps(trained.row["age"])}', '"age": Infinity')
    status, body = call("POST", "/v1/predict", raw=raw)
    assert status == 422 and body["field"] == "instances[0].age"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type(call: Call, trained: Trained, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, body = call("POST", "/v1/predict", {"instances": [trained.row]}, headers=headers)
    assert status == 415 and body["error"] == "unsupported_media_type"


def test_json_suffix_content_type(call: Call, trained: Trained) -> None:
    headers = {"content-type": "application/vnd.api+json; charset=utf-8"}
    assert call("POST", "/v1/predict", {"instances": [trained.row]}, headers=headers)[0] == 200


def test_body_too_large(make_service: Callable[..., Any], trained: Trained) -> None:
    from functions.predict import handler

    make_service(max_body_bytes=1024)
    body = json.dumps({"instances": [trained.row] * 10})
    response = handler.lambda_handler(api_event("POST", "/v1/predict", raw=body), CONTEXT)
    assert response["statusCode"] == 413


def test_unseen_category_rejected(make_service: Callable[..., Any], trained: Trained) -> None:
    from functions.predict import handler

    make_service(unseen_categories="reject")
    body = {"instances": [{**trained.row, "contract": "lifetime"}]}
    response = handler.lambda_handler(api_event("POST", "/v1/predict", body), CONTEXT)
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["field"] == "instances[0].contract"


def test_unknown_route_is_json_404(call: Call) -> None:
    status, body = call("GET", "/v1/nothing")
    assert status == 404 and body["error"] == "not_found"


def test_v2_shapes(call: Call, trained: Trained) -> None:
    status, meta = call("GET", "/v2/models/churn")
    assert status == 200
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    inputs = [
        {
            "name": i["name"],
            "datatype": i["datatype"],
            "shape": [2],
            "data": [trained.row[i["name"]]] * 2,
        }
        for i in meta["inputs"]
    ]
    status, body = call("POST", "/v2/models/churn/infer", {"inputs": inputs})
    assert status == 200, body
    assert [o["shape"] for o in body["outputs"]] == [[2], [2, 2]]
    assert body["id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    inputs[0]["datatype"] = "BYTES"
    status, body = call("POST", "/v2/models/churn/infer", {"inputs": inputs})
    assert status == 422 and body["field"] == "inputs[0].datatype"
    status, body = call("POST", "/v2/models/churn/infer", {"inputs": inputs[1:]})
    assert status == 422 and body["code"] == "missing_feature"
    assert body["error"].startswith("'inputs' has no tensor for feature")


@pytest.mark.parametrize(
    ("headers", "extra", "status", "code"),
    [
        ({}, b"", 200, None),
        ({"Inference-Header-Content-Length": "{size}"}, b"", 200, None),
        ({"inference-header-content-length": "{size}"}, b"\x00\x00\x80?", 415, None),
        ({"Inference-Header-Content-Length": "abc"}, b"", 400, "invalid_header"),
        ({"Inference-Header-Content-Length": "99999"}, b"", 400, "invalid_header"),
        ({"Content-Type": "text/plain"}, b"", 415, "unsupported_media_type"),
    ],
)
def test_v2_infer_takes_json_without_content_type_and_with_its_header_length(
    call: Call, trained: Trained, headers: dict[str, str], extra: bytes, status: int, code: str
) -> None:
    meta = call("GET", "/v2/models/churn")[1]
    inputs = [
        {
            "name": i["name"],
            "datatype": i["datatype"],
            "shape": [1],
            "data": [trained.row[i["name"]]],
        }
        for i in meta["inputs"]
    ]
    raw = json.dumps({"inputs": inputs})
    sent = {name: value.format(size=len(raw)) for name, value in headers.items()}

    answer, body = call(
        "POST", "/v2/models/churn/infer", raw=raw + extra.decode("latin-1"), headers=sent
    )

    assert answer == status, body
    if code is not None:
        assert body["code"] == code
    if status == 415 and extra:
        # Binary tensor data in a text body (not sent as application/octet-stream).
        assert body["field"] == "Content-Type" and "application/octet-stream" in body["error"]


def test_openapi_document_is_valid(call: Call, trained: Trained) -> None:
    status, document = call("GET", "/openapi.json")
    assert status == 200
    validate(document)
    instance = document["components"]["schemas"]["Instance"]
    assert instance["required"] == FEATURES
    assert instance["properties"]["age"]["type"] == "number"
    assert instance["properties"]["region"]["anyOf"][0]["type"] == "string"
    request = document["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["instances"]["maxItems"] == 1000
    for path in (
        "/v1/predict",
        "/v1/model",
        "/v1/health",
        "/v1/feedback",
        "/openapi.json",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/infer",
    ):
        assert path in document["paths"]


def test_feedback_validation(call: Call) -> None:
    good = {"feedback": [{"request_id": "abc-1", "row": 0, "label": "yes"}]}
    assert call("POST", "/v1/feedback", good) == (200, {"stored": 1, "duplicates": 0})
    bad = {"feedback": [{"request_id": "../etc", "row": 0, "label": "yes"}]}
    status, body = call("POST", "/v1/feedback", bad)
    assert status == 422 and body["field"] == "feedback[0].request_id"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from([*FEATURES, "instances", "inputs", "x"]), children, max_size=6
        )
    ),
    max_leaves=30,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    document=json_values,
    path=st.sampled_from(["/v1/predict", "/v2/models/churn/infer", "/v1/feedback"]),
)
def test_no_json_value_causes_a_5xx(call: Call, document: Any, path: str) -> None:
    assert call("POST", path, raw=json.dumps(document))[0] < 500


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    row=st.fixed_dictionaries(
        {
            name: st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
            for name in FEATURES
        }
    )
)
def test_no_row_causes_a_5xx(call: Call, row: dict[str, Any]) -> None:
    assert call("POST", "/v1/predict", raw=json.dumps({"instances": [row]}))[0] < 500


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_no_body_causes_a_5xx(call: Call, raw: str) -> None:
    assert call("POST", "/v1/predict", raw=raw)[0] < 500


def test_predict_path_imports_no_training_libraries() -> None:
    code = (
        "import sys; import functions.predict.handler; "
        "heavy = {'pandas', 'sklearn', 'scipy', 'pyarrow', 'skl2onnx'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin", "POWERTOOLS_SERVICE_NAME": "predict"},
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_predict_init_path_imports_no_pydantic_nor_the_routes_off_the_hot_path() -> None:
    """The handler and the service init builds (config view, registry reads, each model's
    store) load no pydantic: the deployed config and the registry items are read without it
    (its import and models were a fifth of the cold start). The feedback and OpenAPI routes'
    modules load on their first request."""
    from functions.common.config.loading import load_config

    config = load_config(REPO / "mlops.toml").for_stage("dev").to_json()
    code = (
        "import sys; from functions.predict import handler, logic; "
        "svc = logic.service(); served = svc.models.served(); "
        "assert served.serving.capture_sample_rate == 1.0, served.serving; "
        "from functions.adapters.registry.serving_reads import ServingRegistry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_core', 'pydantic_settings', 'annotated_types') or m in "
        "('functions.predict.feedback', 'functions.predict.openapi')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": "/usr/bin",
            "POWERTOOLS_SERVICE_NAME": "predict",
            "MLOPS_CONFIG_JSON": config,
            "DATA_BUCKET": "bucket",
            "REGISTRY_TABLE": "table",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    assert result.stdout.strip() == "[]", result.stderr


def _document_accepts(document: dict[str, Any], schema: str, body: Any) -> bool:
    """Whether `body` is valid against `components/schemas/<schema>` of the OpenAPI document."""
    from openapi_schema_validator import OAS30Validator

    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return OAS30Validator(root).is_valid(body)


def test_the_openapi_document_accepts_exactly_what_validation_accepts(
    call: Call, trained: Trained
) -> None:
    status, document = call("GET", "/openapi.json")
    assert status == 200
    assert "get" in document["paths"]["/openapi.json"]
    instances = {
        "age at float32's bound": {"age": 3.4e38},
        "age beyond float32": {"age": 3.5e38},
        "age below float32": {"age": -3.5e38},
        "an integer category": {"region": 7},
        "a finite number as category": {"region": 7.5},
        "a boolean category": {"region": True},
        "a string category": {"region": "north"},
        "a null category": {"region": None},
    }
    for case, change in instances.items():
        body = {"instances": [{**trained.row, **change}]}
        accepted = call("POST", "/v1/predict", body)[0] == 200
        assert _document_accepts(document, "PredictRequest", body) == accepted, case
    for request_id in ("", "x" * 129, "../etc", "abc-1", "x" * 128):
        body = {"feedback": [{"request_id": request_id, "row": 0, "label": "yes"}]}
        accepted = call("POST", "/v1/feedback", body)[0] == 200
        assert _document_accepts(document, "FeedbackRequest", body) == accepted, request_id
    instance = document["components"]["schemas"]["Instance"]["properties"]
    assert "decimal string" in instance["region"]["description"]
