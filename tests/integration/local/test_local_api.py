"""The local REST API (`infra.local.api_adapter`) on a throwaway CDK app (api_app/app.py):
routes from the template's resources and methods, proxy events and responses, API keys,
request models, Lambda errors; and Firehose's `!{timestamp:...}` prefix expansion."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local import LocalCloud
from infra.local.firehose import expand_prefix
from tests.helpers.synth import synth_in_child

APP = Path(__file__).parent / "api_app"
KEY = "probe-key-value-0123456789"


@pytest.fixture(scope="module")
def api_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api") / "cdk.out"
    result = synth_in_child([str(APP / "app.py")], out, {"API_AUTH": "api_key"})
    if result.returncode != 0:
        pytest.fail(f"the API probe app did not synthesize:\n{result.stderr[-3000:]}")
    return out


@pytest.fixture
def cloud(api_cdk_out: Path, tmp_path: Path) -> Iterator[LocalCloud]:
    with LocalCloud.start(api_cdk_out, api_port=0, state_dir=tmp_path / "state") as started:
        yield started


def _call(
    cloud: LocalCloud,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = KEY,
) -> tuple[int, dict[str, Any], Any]:
    all_headers = {**(headers or {}), **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(
        cloud.api_url.rstrip("/") + path, data=body, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.mark.slow
def test_api_url_output_is_the_adapter_and_outputs_json_says_so(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    assert cloud.outputs["ApiUrl"] == cloud.api_url
    assert cloud.api_url.startswith("http://127.0.0.1:")
    written = json.loads((tmp_path / "state" / "outputs.json").read_text())
    assert written["ApiUrl"] == cloud.api_url


@pytest.mark.slow
def test_a_route_with_a_path_parameter_gets_a_rest_proxy_event(cloud: LocalCloud) -> None:
    status, headers, echoed = _call(
        cloud, "GET", "/items/42?x=1&x=2&y=3", headers={"X-Probe": "hello"}
    )
    assert status == 200
    assert echoed["resource"] == "/items/{id}"
    assert echoed["path"] == "/items/42"
    assert echoed["pathParameters"] == {"id": "42"}
    assert echoed["queryStringParameters"] == {"x": "2", "y": "3"}
    assert echoed["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert echoed["header"] == "hello"
    assert echoed["stage"] == "test"
    assert echoed["requestId"]
    assert headers["X-Echo"] == "yes"


@pytest.mark.slow
def test_a_literal_route_wins_over_a_parameter(cloud: LocalCloud) -> None:
    status, _, echoed = _call(cloud, "GET", "/items/special")
    assert status == 200
    assert echoed["resource"] == "/items/special"
    assert echoed["pathParameters"] is None


@pytest.mark.slow
def test_requests_to_the_api_reach_it_when_a_path_looks_like_an_aws_endpoint(
    cloud: LocalCloud,
) -> None:
    # This process runs moto's mock, which also patches `requests`; a path segment such as
    # `lambda.amazonaws.com` must still reach the API, as it would on API Gateway.
    base = cloud.api_url.rstrip("/")
    response = requests.get(
        base + "/items/lambda.amazonaws.com", headers={"x-api-key": KEY}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["pathParameters"] == {"id": "lambda.amazonaws.com"}
    response = requests.get(
        base + "/items/lambda.amazonaws.com/ready", headers={"x-api-key": KEY}, timeout=30
    )
    assert response.status_code == 404, response.text
    assert response.json() == {"message": "Not Found"}


@pytest.mark.slow
def test_body_and_status_round_trip(cloud: LocalCloud) -> None:
    payload = {"name": "widget", "sizes": [1, 2]}
    status, headers, echoed = _call(
        cloud,
        "POST",
        "/items",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 201
    assert json.loads(echoed["body"]) == payload
    assert echoed["isBase64Encoded"] is False
    assert headers["Content-Type"] == "application/json"


@pytest.mark.slow
@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png; q=1"])
def test_a_body_of_a_binary_media_type_arrives_base64_encoded(
    cloud: LocalCloud, content_type: str
) -> None:
    status, _, echoed = _call(
        cloud, "POST", "/echo", body=b"\xff\x00\xfe", headers={"Content-Type": content_type}
    )
    assert status == 201
    assert echoed["isBase64Encoded"] is True
    assert echoed["body"] == "ff00fe"


@pytest.mark.slow
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_any_other_body_arrives_as_text_with_bytes_beyond_utf8_replaced(
    cloud: LocalCloud, content_type: str | None
) -> None:
    # As API Gateway passes it: not base64, each invalid UTF-8 sequence becomes U+FFFD.
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, echoed = _call(
        cloud, "POST", "/echo", body=b"ok\xff\x00\xfe\xc3\xa9", headers=headers
    )
    assert status == 201
    assert echoed["isBase64Encoded"] is False
    assert echoed["body"] == "ok\ufffd\x00\ufffd\u00e9"


@pytest.mark.slow
def test_a_base64_answer_is_bytes_only_for_a_client_accepting_a_binary_media_type_first(
    cloud: LocalCloud,
) -> None:
    def get(accept: str | None) -> bytes:
        headers = {"x-api-key": KEY, **({"Accept": accept} if accept else {})}
        response = requests.get(cloud.api_url.rstrip("/") + "/binary", headers=headers, timeout=30)
        assert response.status_code == 200
        return response.content

    raw = b"\x00\xff\x80binary"
    assert get("application/octet-stream") == raw
    assert get("image/png, application/json") == raw
    encoded = base64.b64encode(raw)
    assert get(None) == encoded
    assert get("application/json, application/octet-stream") == encoded


@pytest.mark.slow
def test_a_body_failing_the_request_model_is_refused_before_the_function(
    cloud: LocalCloud,
) -> None:
    status, _, body = _call(cloud, "POST", "/items", body=b'{"colour": "red"}')
    assert (status, body) == (400, {"message": "Invalid request body"})


@pytest.mark.slow
def test_unknown_paths_are_404_and_unknown_methods_405(cloud: LocalCloud) -> None:
    status, _, body = _call(cloud, "GET", "/nowhere")
    assert (status, body) == (404, {"message": "Not Found"})
    status, headers, body = _call(cloud, "DELETE", "/items")
    assert (status, body) == (405, {"message": "Method Not Allowed"})
    assert headers["Allow"] == "GET, POST"


@pytest.mark.slow
def test_api_key_must_be_one_of_the_usage_plan(cloud: LocalCloud) -> None:
    assert _call(cloud, "GET", "/items", key=None)[:3:2] == (403, {"message": "Forbidden"})
    stray = "stray-key-value-0123456789"
    assert _call(cloud, "GET", "/items", key=stray)[0] == 403
    assert _call(cloud, "GET", "/items", key="made-up")[0] == 403
    assert _call(cloud, "GET", "/items")[0] == 200


@pytest.mark.slow
def test_a_function_error_or_malformed_response_is_502(cloud: LocalCloud) -> None:
    assert _call(cloud, "GET", "/boom")[::2] == (502, {"message": "Internal server error"})
    assert _call(cloud, "GET", "/malformed")[0] == 502


@pytest.mark.slow
def test_firehose_records_land_under_the_expanded_timestamp_prefix(cloud: LocalCloud) -> None:
    stream = cloud.outputs["CaptureStreamName"]
    cloud.client("firehose").put_record_batch(
        DeliveryStreamName=stream,
        Records=[{"Data": b'{"a": 1}\n'}, {"Data": b'{"a": 2}\n'}],
    )
    bucket = cloud.outputs["DataBucketName"]
    keys = [
        item["Key"]
        for item in cloud.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    ]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert len(keys) == 1 and keys[0].startswith(f"capture/dt={today}/"), keys
    body = cloud.client("s3").get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert body == b'{"a": 1}\n{"a": 2}\n'


def test_expand_prefix_follows_firehose_expressions() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert expand_prefix("capture/dt=!{timestamp:yyyy-MM-dd}/", moment) == "capture/dt=2026-03-04/"
    assert expand_prefix("x/!{timestamp:yyyy/MM/dd/HH}/", moment) == "x/2026/03/04/05/"
    assert expand_prefix("e/!{firehose:error-output-type}/", moment) == "e/processing-failed/"
    assert len(expand_prefix("!{firehose:random-string}", moment)) == 11
    assert expand_prefix("plain/", moment) == "plain/"
