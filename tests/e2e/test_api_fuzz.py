"""The local API fuzzed over HTTP: at least 1,000 generated requests per operation of its own
`/openapi.json`, and 1,000 raw bodies per POST route.

A local cloud deployed from the synthesized app (small batch and body limits, so that limits
are reached) serves the API; one drop through the state machine promotes version 1.
schemathesis generates valid and invalid requests from the document (plus query strings the
API does not declare); Hypothesis sends raw bodies: random bytes, random JSON, deep nesting,
huge numbers, NaN tokens, wrong content types, oversized bodies, and valid bodies with one
value replaced. No request gets a 5xx; each response conforms where the document declares it;
every 4xx is a JSON body with an error code and a message that names the problem (and the
field, when there is one)."""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.local import LocalCloud, lambda_config
from tests.helpers.config import repo_config
from tests.helpers.models import MODEL

pytestmark = pytest.mark.slow

MAX_ROWS = 4
MAX_BYTES = 32_768
REQUESTS_PER_OPERATION = 1_000
OPERATIONS = [
    ("POST", "/v1/predict"),
    ("GET", "/v1/model"),
    ("GET", "/v1/health"),
    ("POST", "/v1/feedback"),
    ("GET", "/openapi.json"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("POST", "/v1/models/{name}/predict"),
    ("POST", "/v1/models/{name}/feedback"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
]
# The document cannot say what a valid body of these is (request ids from earlier answers; one
# tensor per model input, by name), so generated cases all get 4xx; the raw bodies below
# include valid ones.
NO_SCHEMA_VALID_BODY = {
    "/v1/feedback",
    "/v2/models/{name}/infer",
    # One object per instance of the named model: its inputs are not in the document.
    "/v1/models/{name}/predict",
    "/v1/models/{name}/feedback",
    "/v2/models/{name}/versions/{version}/infer",
}
POST_ROUTES = ["/v1/predict", "/v1/feedback", f"/v2/models/{MODEL}/infer"]
# On a kept-alive connection each local API response waits for a delayed ACK
# (headers and body leave in two writes); a fresh connection per request does not.
ONE_REQUEST_PER_CONNECTION = {"Connection": "close"}
FUZZ_SETTINGS = settings(
    max_examples=REQUESTS_PER_OPERATION,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


class Fuzzed:
    """The module's local cloud and API, with a count of the requests sent per route."""

    def __init__(self, cloud: LocalCloud, auth: requests.auth.AuthBase) -> None:
        self.cloud = cloud
        self.auth = auth
        """Signs each request (the API's methods use IAM authorization)."""
        self.url = cloud.api_url.rstrip("/")
        self.sent: Counter[str] = Counter()

    def drop(self, key: str, body: bytes) -> dict[str, Any]:
        described = self.cloud.drop(key, body)
        assert described["status"] == "SUCCEEDED", described
        return model_outcome(json.loads(described["output"]))

    def post(self, path: str, body: bytes, content_type: str | None) -> requests.Response:
        headers = {**ONE_REQUEST_PER_CONNECTION}
        if content_type is not None:
            headers["Content-Type"] = content_type
        self.sent[f"POST {path}"] += 1
        return requests.post(
            self.url + path, data=body, headers=headers, timeout=30, auth=self.auth
        )


@pytest.fixture(scope="module")
def fuzzed(
    synth_with_config: Callable[[str], Path], operator_auth: requests.auth.AuthBase
) -> Iterator[Fuzzed]:
    cdk_out = synth_with_config(
        repo_config(serving={"max_batch_rows": MAX_ROWS, "max_body_bytes": MAX_BYTES})
    )
    echo = lambda_config.SETTINGS.echo_function_output
    lambda_config.SETTINGS.echo_function_output = False  # 10,000s of request logs
    try:
        with LocalCloud.start(
            cdk_out, mode="server", port=0, api_port=0, state_dir=cdk_out.parent / "state"
        ) as cloud:
            run = Fuzzed(cloud, operator_auth)
            first = run.drop(
                "raw/churn/first.csv", sample_data.encode(sample_data.churn_frame(2_000, seed=31))
            )
            assert first["status"] == "promoted" and first["registered"]["version"] == 1
            yield run
            print(f"\nrequests sent per route: {dict(sorted(run.sent.items()))}")
    finally:
        lambda_config.SETTINGS.echo_function_output = echo


def _leaf(field: str) -> str:
    """`instances[3].age` -> `age`; `inputs[0]` -> `inputs`."""
    return re.split(r"[.\[]", field.rsplit(".", 1)[-1])[0]


def problem_not_named(
    status: int, content_type: str, text: str, path_parameters: dict[str, Any]
) -> str | None:
    """Why a 4xx response does not name its problem, or None when it does: a JSON object with
    an `error` code, a non-empty `message`, and a `field` the message mentions (by path or by
    name; for a path parameter, its value). On v2 routes the object is the protocol's: the
    message as `error`, the code as `code`."""
    if not 400 <= status < 500:
        return None
    if not content_type.startswith("application/json"):
        return f"{status} with Content-Type {content_type!r}: {text[:200]}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"{status} with a body that is not JSON: {text[:200]}"
    if not isinstance(body, dict):
        return f"{status} with a body that is not an object: {text[:200]}"
    code, message, field = body.get("error"), body.get("message"), body.get("field")
    if "code" in body:  # the Open Inference Protocol's error object: the sentence as `error`
        code, message = body["code"], body["error"]
    if not isinstance(code, str) or not code:
        return f"{status} with no error code: {body}"
    if not isinstance(message, str) or len(message.split()) < 3:
        return f"{status} with no message that says what is wrong: {body}"
    if field is None:
        return None
    names = {field, field.split("].", 1)[-1], _leaf(field)}
    if field in path_parameters:
        names.add(str(path_parameters[field]))
    # An empty name is named by its quotes.
    if not any(_quoted(name).search(message) if name else "''" in message for name in names):
        return f"{status}: the message does not name the field {field!r}: {body}"
    return None


def _quoted(name: str) -> re.Pattern[str]:
    """`name` as a message may quote it: messages use repr(), which escapes the characters
    the function's Python deems unprintable (which depends on its Unicode version, not this
    interpreter's), so each character may stand as itself or as any of its escapes."""
    parts = []
    for character in name:
        point = ord(character)
        escapes = [re.escape(character), re.escape(repr(character)[1:-1])]
        if point < 0x100:
            escapes.append(re.escape(f"\\x{point:02x}"))
        if point < 0x10000:
            escapes.append(re.escape(f"\\u{point:04x}"))
        escapes.append(re.escape(f"\\U{point:08x}"))
        parts.append("(?:" + "|".join(dict.fromkeys(escapes)) + ")")
    return re.compile("".join(parts))


def _client_error_names_the_problem(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis check: a 4xx names its problem (see `problem_not_named`)."""
    problem = problem_not_named(
        response.status_code,
        ", ".join(response.headers.get("content-type", [])),
        response.text,
        case.path_parameters or {},
    )
    assert problem is None, problem
    return None


_QUERY_NAME = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
_UNDECLARED_QUERY = st.dictionaries(_QUERY_NAME, st.text(max_size=24), max_size=3)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schemathesis_requests_get_no_server_error_and_conform(
    fuzzed: Fuzzed, method: str, path: str
) -> None:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    document = requests.get(fuzzed.url + "/openapi.json", timeout=30, auth=fuzzed.auth).json()
    schema = schemathesis.openapi.from_dict(document)
    operation = schema[path][method]
    modes = [schemathesis.GenerationMode.POSITIVE]
    if operation.body or operation.path_parameters:
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    # Random names mostly miss the one model served (and random numbers its one version):
    # half the cases name them.
    served = (
        {
            name: {"name": MODEL, "version": 1}[name]
            for name in ("name", "version")
            if f"{{{name}}}" in path
        }
        if operation.path_parameters
        else None
    )
    cases = st.one_of(
        [
            operation.as_strategy(generation_mode=mode, path_parameters=parameters)
            for mode in modes
            for parameters in {None: None, "served": served}.values()
        ]
    )
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        _client_error_names_the_problem,
    ]
    statuses: Counter[int] = Counter()

    @FUZZ_SETTINGS
    @given(case=cases, query=_UNDECLARED_QUERY)
    def conforms(case: schemathesis.Case, query: dict[str, str]) -> None:
        case.query = {**(case.query or {}), **query}
        fuzzed.sent[f"{method} {path}"] += 1
        response = case.call_and_validate(
            base_url=fuzzed.url,
            headers=ONE_REQUEST_PER_CONNECTION,
            checks=checks,
            timeout=30,
            auth=fuzzed.auth,
        )
        statuses[response.status_code] += 1

    conforms()
    print(f"\n{method} {path}: {sum(statuses.values())} requests, statuses {dict(statuses)}")
    assert sum(statuses.values()) >= REQUESTS_PER_OPERATION
    assert all(status < 500 for status in statuses)
    if path not in NO_SCHEMA_VALID_BODY:
        assert statuses[200] > 0, statuses


def test_every_operation_of_the_document_is_fuzzed(fuzzed: Fuzzed) -> None:
    document = requests.get(fuzzed.url + "/openapi.json", timeout=30, auth=fuzzed.auth).json()
    listed = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert listed == set(OPERATIONS)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _valid_documents() -> dict[str, Any]:
    """A valid body of each POST route."""
    frame = sample_data.churn_frame(5, seed=43, first_id=7_000_000, duplicate_share=0.0)
    features = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
    rows = [
        {name: _plain(value) for name, value in record.items()}
        for record in frame[features].head(2).to_dict(orient="records")
    ]
    tensors = [
        {
            "name": name,
            "shape": [len(rows), 1],
            "datatype": "BYTES" if name in sample_data.CATEGORICAL_FEATURES else "FP32",
            "data": [row[name] for row in rows],
        }
        for name in features
    ]
    return {
        "/v1/predict": {"instances": rows},
        "/v1/feedback": {
            "feedback": [
                {"request_id": "req-1", "row": index, "label": label, "features": row}
                for index, (label, row) in enumerate(zip(["yes", "no"], rows, strict=True))
            ]
        },
        f"/v2/models/{MODEL}/infer": {"id": "fuzz", "inputs": tensors},
    }


VALID = _valid_documents()
HOLE = "@@fuzzed value@@"
RAW_TOKENS = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e-999",
    "-0",
    "3.5e38",
    "1" + "0" * 400,
    "9" * 5_000,
    "18446744073709551616",
    "0.1e1",
    "true",
    '"\\ud800"',
    '"\\u0000"',
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/vnd.api+json",
]
WRONG_CONTENT_TYPES = [
    None,
    "",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/jsonx",
    "json",
    ";",
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(list(sample_data.NUMERIC_FEATURES + sample_data.CATEGORICAL_FEATURES))
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=24,
)


def _locations(document: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON document (the document itself too)."""
    yield at
    if isinstance(document, dict | list):
        children = document.items() if isinstance(document, dict) else enumerate(document)
        for key, child in children:
            yield from _locations(child, (*at, key))


def _replaced(document: Any, at: tuple[Any, ...], value: Any) -> Any:
    if not at:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[at[0]] = _replaced(document[at[0]], at[1:], value)
    return copy


@st.composite
def _one_value_replaced(draw: st.DrawFn, route: str) -> bytes:
    """A valid body with one value (or key) replaced by random JSON or a raw token."""
    document = VALID[route]
    at = draw(st.sampled_from(list(_locations(document))))
    if draw(st.booleans()):
        return json.dumps(_replaced(document, at, draw(_json_values))).encode()
    text = json.dumps(_replaced(document, at, HOLE))
    return text.replace(json.dumps(HOLE), draw(st.sampled_from(RAW_TOKENS))).encode()


def _deeply_nested(depth: int, route: str) -> bytes:
    key = {"/v1/predict": "instances", "/v1/feedback": "feedback"}.get(route, "inputs")
    return f'{{"{key}": {"[" * depth}{"]" * depth}}}'.encode()


def _bodies(route: str) -> st.SearchStrategy[tuple[bytes, str | None]]:
    """(body, Content-Type) pairs for one POST route."""
    json_types = st.sampled_from(CONTENT_TYPES)
    valid = json.dumps(VALID[route]).encode()
    return st.one_of(
        st.tuples(st.just(valid), json_types),
        st.tuples(st.binary(max_size=512), json_types),
        st.tuples(_json_values.map(lambda value: json.dumps(value).encode()), json_types),
        st.tuples(
            st.integers(1, MAX_BYTES // 2 - 32).map(lambda d: _deeply_nested(d, route)), json_types
        ),
        st.tuples(_one_value_replaced(route), json_types),
        st.tuples(_one_value_replaced(route), json_types),
        st.tuples(st.just(valid), st.sampled_from(WRONG_CONTENT_TYPES)),
        st.tuples(
            st.integers(1, 2 * MAX_BYTES).map(
                lambda extra: valid + b" " * (MAX_BYTES - len(valid) + extra)
            ),
            json_types,
        ),
    )


@pytest.mark.parametrize("route", POST_ROUTES)
def test_raw_bodies_get_no_server_error_and_4xx_name_the_problem(
    fuzzed: Fuzzed, route: str
) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ_SETTINGS
    @given(sent=_bodies(route))
    def answered(sent: tuple[bytes, str | None]) -> None:
        body, content_type = sent
        note(f"Content-Type {content_type!r}, {len(body)} bytes: {body[:600]!r}")
        response = fuzzed.post(route, body, content_type)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, response.text[:300])
        problem = problem_not_named(
            response.status_code, response.headers.get("Content-Type", ""), response.text, {}
        )
        assert problem is None, problem

    answered()
    print(f"\nPOST {route}: {sum(statuses.values())} raw bodies, statuses {dict(statuses)}")
    assert sum(statuses.values()) >= REQUESTS_PER_OPERATION
    assert statuses[200] > 0 and {400, 413, 415, 422} <= set(statuses), statuses
