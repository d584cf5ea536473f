"""The Open Inference Protocol routes of the predict handler against moto with real ONNX
models: server metadata, versioned readiness, the protocol's error object, the binary tensor
data extension (inputs and outputs, sizes checked exactly, the media types API Gateway passes
as binary), and the protocol's own request examples."""

from __future__ import annotations

import base64
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pytest

from functions.ml.onnx_input import predict_columns
from tests.helpers.models import FEATURES, MODEL, Trained
from tests.helpers.predict_api import CONTEXT, Api
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

CATEGORICAL = set(FEATURES[5:])
OCTET = "application/octet-stream"
INFER = f"/v2/models/{MODEL}/infer"


def _reference(trained: Trained, rows: list[dict[str, Any]]) -> Any:
    session = ort.InferenceSession(trained.onnx, providers=["CPUExecutionProvider"])
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return predict_columns(session, columns, trained.signature)


def _strings(values: list[Any]) -> bytes:
    encoded = [("" if value is None else str(value)).encode() for value in values]
    return b"".join(len(item).to_bytes(4, "little") + item for item in encoded)


def _numbers(values: list[Any], dtype: str = "<f4") -> bytes:
    return np.array([math.nan if v is None else v for v in values], dtype=dtype).tobytes()


def binary_request(rows: list[dict[str, Any]], **extra: Any) -> tuple[dict[str, Any], list[bytes]]:
    """Every feature as binary tensor data: FP32 numbers, length-prefixed BYTES strings."""
    inputs, chunks = [], []
    for name in FEATURES:
        values = [row[name] for row in rows]
        chunk = _strings(values) if name in CATEGORICAL else _numbers(values)
        chunks.append(chunk)
        inputs.append(
            {
                "name": name,
                "shape": [len(rows), 1],
                "datatype": "BYTES" if name in CATEGORICAL else "FP32",
                "parameters": {"binary_data_size": len(chunk)},
            }
        )
    return {"inputs": inputs, **extra}, chunks


def send(
    api: Api,
    document: dict[str, Any],
    chunks: list[bytes],
    *,
    path: str = INFER,
    content_type: str | None = OCTET,
    accept: str | None = None,
    base64_encoded: bool = True,
) -> dict[str, Any]:
    """The proxy event API Gateway makes of a binary request: the body base64-encoded, as
    it is when the Content-Type is a binary media type of the API."""
    header = json.dumps(document).encode()
    raw = header + b"".join(chunks)
    headers = {"Inference-Header-Content-Length": str(len(header))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    event = api.event("POST", path, headers=headers)
    if base64_encoded:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"] = raw.decode("utf-8", errors="replace")
    return api.handler.lambda_handler(event, CONTEXT)


def header_of(response: dict[str, Any], name: str) -> str | None:
    """A response header, from `headers` or `multiValueHeaders` (Powertools writes these)."""
    single = response.get("headers") or {}
    if name in single:
        return str(single[name])
    values = (response.get("multiValueHeaders") or {}).get(name)
    return str(values[-1]) if values else None


def answer(response: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A v2 answer's JSON and the binary data of each binary output."""
    body = response["body"]
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    length = int(header_of(response, "Inference-Header-Content-Length") or len(raw))
    header, tail = json.loads(raw[:length]), raw[length:]
    data, offset = {}, 0
    for output in header.get("outputs", []):
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            data[output["name"]] = tail[offset : offset + size]
            offset += size
    assert offset == len(tail)
    return header, data


def _labels(data: bytes) -> list[str]:
    values, position = [], 0
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "little")
        values.append(data[position + 4 : position + 4 + length].decode())
        position += 4 + length
    return values


@pytest.fixture
def published(api: Api, cloud: Cloud, models: dict[int, Trained]) -> Trained:
    publish(cloud, models[1])
    return models[1]


def test_binary_inputs_score_as_the_same_rows_in_json(api: Api, published: Trained) -> None:
    rows = published.rows[:7]
    document, chunks = binary_request(rows, id="bin-1")

    response = send(api, document, chunks)

    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is False
    header, binary = answer(response)
    assert binary == {} and header["id"] == "bin-1"
    label, probabilities = header["outputs"]
    reference = _reference(published, rows)
    assert label["data"] == reference.labels.tolist()
    np.testing.assert_allclose(
        np.reshape(probabilities["data"], (7, 2)), reference.probabilities, atol=1e-7
    )


def test_binary_outputs_come_back_after_the_json_when_the_client_accepts_them(
    api: Api, published: Trained
) -> None:
    rows = published.rows[:5]
    document, chunks = binary_request(rows, parameters={"binary_data_output": True})

    response = send(api, document, chunks, accept=f"{OCTET}, application/json")

    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is True
    assert header_of(response, "Content-Type") == OCTET
    header, binary = answer(response)
    label, probabilities = (output["name"] for output in header["outputs"])
    assert all("data" not in output for output in header["outputs"])
    reference = _reference(published, rows)
    assert _labels(binary[label]) == reference.labels.tolist()
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 5 * 2 * 4}
    np.testing.assert_allclose(
        np.frombuffer(binary[probabilities], "<f4").reshape(5, 2),
        reference.probabilities,
        atol=1e-6,
    )


def test_binary_data_on_one_output_overrides_the_request_default(
    api: Api, published: Trained
) -> None:
    rows = published.rows[:3]
    meta = api.call("GET", f"/v2/models/{MODEL}")[1]
    label, probabilities = (output["name"] for output in meta["outputs"])
    document, chunks = binary_request(
        rows,
        parameters={"binary_data_output": True},
        outputs=[{"name": probabilities}, {"name": label, "parameters": {"binary_data": False}}],
    )

    header, binary = answer(send(api, document, chunks, accept=OCTET))

    assert [output["name"] for output in header["outputs"]] == [probabilities, label]
    assert list(binary) == [probabilities]
    assert header["outputs"][1]["data"] == _reference(published, rows).labels.tolist()


def test_binary_outputs_are_json_for_a_client_api_gateway_would_send_text(
    api: Api, published: Trained
) -> None:
    # API Gateway decodes a base64 answer only for a client whose first Accept media type is
    # a binary media type of the API; any other would receive base64 text.
    rows = published.rows[:2]
    document, chunks = binary_request(rows, parameters={"binary_data_output": True})

    for accept in (None, "application/json", f"application/json, {OCTET}", "*/*"):
        response = send(api, document, chunks, accept=accept)
        assert response["statusCode"] == 200 and response["isBase64Encoded"] is False, accept
        header, binary = answer(response)
        assert binary == {} and all("data" in output for output in header["outputs"])


def test_integer_and_double_tensors_and_nan_as_missing(api: Api, published: Trained) -> None:
    rows = [dict(row) for row in published.rows[:4]]
    rows[0]["age"] = None
    document, chunks = binary_request(rows)
    index = FEATURES.index("support_calls")
    chunks[index] = np.array([row["support_calls"] for row in rows], "<i8").tobytes()
    document["inputs"][index].update(datatype="INT64", parameters={"binary_data_size": 32})
    index = FEATURES.index("total_charges")
    chunks[index] = _numbers([row["total_charges"] for row in rows], "<f8")
    document["inputs"][index].update(datatype="FP64", parameters={"binary_data_size": 32})

    header, _ = answer(send(api, document, chunks))

    assert header["outputs"][0]["data"] == _reference(published, rows).labels.tolist()


def _refused(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert header_of(response, "Content-Type") == "application/json"
    return response["statusCode"], json.loads(response["body"])


def test_a_binary_size_that_is_not_shape_times_datatype_is_400_naming_the_input(
    api: Api, published: Trained
) -> None:
    rows = published.rows[:4]
    document, chunks = binary_request(rows)
    chunks[0] = chunks[0][:-1]
    document["inputs"][0]["parameters"]["binary_data_size"] = 15

    status, body = _refused(send(api, document, chunks))

    assert status == 400 and body["code"] == "binary_size_mismatch"
    assert body["field"] == "inputs[0].parameters.binary_data_size"
    assert "'age'" in body["error"] and "16 (4 x 4)" in body["error"]


def test_bytes_elements_must_fill_their_binary_size_exactly(api: Api, published: Trained) -> None:
    rows = published.rows[:2]
    document, chunks = binary_request(rows)
    index = FEATURES.index("contract")
    chunks[index] += b"\x00"
    document["inputs"][index]["parameters"]["binary_data_size"] += 1

    status, body = _refused(send(api, document, chunks))

    assert status == 400 and body["code"] == "binary_size_mismatch"
    assert body["field"] == f"inputs[{index}].parameters.binary_data_size"
    assert "'contract'" in body["error"]


def test_binary_data_beyond_the_declared_sizes_is_400(api: Api, published: Trained) -> None:
    document, chunks = binary_request(published.rows[:2])
    declared = sum(map(len, chunks))

    status, body = _refused(send(api, document, [*chunks, b"\x00\x00"]))

    assert status == 400 and body["field"] == "inputs"
    assert f"has {declared + 2} bytes" in body["error"]
    assert f"add up to {declared}" in body["error"]


def test_an_infinity_is_422_naming_the_value(api: Api, published: Trained) -> None:
    document, chunks = binary_request(published.rows[:3])
    chunks[1] = np.array([1.0, math.inf, 2.0], "<f4").tobytes()

    status, body = _refused(send(api, document, chunks))

    assert (status, body["code"], body["field"]) == (422, "invalid_number", "inputs[1].data[1]")


def test_binary_data_in_a_text_body_is_refused_not_read_mangled(
    api: Api, published: Trained
) -> None:
    # Sent without the binary media type, API Gateway passes the body as text with its
    # non-UTF-8 bytes replaced: the data cannot be trusted.
    document, chunks = binary_request(published.rows[:2])

    status, body = _refused(send(api, document, chunks, content_type=None, base64_encoded=False))

    assert status == 415 and body["field"] == "Content-Type"
    assert OCTET in body["error"]
    status, body = _refused(send(api, document, chunks, content_type="text/plain"))
    assert status == 415 and body["code"] == "unsupported_media_type"


def test_v2_errors_are_the_protocols_error_object_with_a_stable_code(
    api: Api, published: Trained
) -> None:
    status, body = api.call("GET", "/v2/models/nope")
    assert status == 404
    assert body["error"].startswith("model 'nope' is not served here")
    assert body["code"] == "model_not_found" and body["models"] == [MODEL]
    status, body = api.call("GET", f"/v2/models/{MODEL}/versions/9/ready")
    assert (status, body["code"], body["field"]) == (404, "version_not_found", "version")
    assert "9" in body["error"]
    # v1 keeps its shape.
    status, body = api.call("GET", "/v1/models/nope")
    assert (status, body["error"]) == (404, "model_not_found")


def test_server_metadata_and_versioned_readiness(api: Api, published: Trained) -> None:
    status, body = api.call("GET", "/v2")
    assert status == 200
    assert body["extensions"] == ["binary_tensor_data"]
    assert body["name"] and isinstance(body["version"], str)
    assert api.call("GET", f"/v2/models/{MODEL}/versions/1/ready") == (
        200,
        {"name": MODEL, "ready": True},
    )
    assert api.call("GET", f"/v2/models/{MODEL}/ready") == (200, {"name": MODEL, "ready": True})


def test_the_protocols_json_example_is_answered_with_its_error_object(
    api: Api, published: Trained
) -> None:
    # The Open Inference Protocol's inference request example (inference_rest.md), verbatim:
    # its model takes input0 and input1, which this model does not.
    example = {
        "id": "42",
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
            {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
        ],
        "outputs": [{"name": "output0"}],
    }
    status, body = api.call("POST", INFER, example, headers={"Content-Type": "application/json"})
    assert status == 422 and isinstance(body["error"], str)
    assert "'input0'" in body["error"] and body["field"] == "inputs[0].name"


def test_the_protocols_examples_with_this_models_tensors(api: Api, published: Trained) -> None:
    # The JSON example asks for one output by name: only it is answered.
    rows = published.rows[:3]
    meta = api.call("GET", f"/v2/models/{MODEL}")[1]
    probabilities = meta["outputs"][1]["name"]
    inputs = [
        {
            "name": name,
            "shape": [3, 1],
            "datatype": "BYTES" if name in CATEGORICAL else "FP32",
            "data": [row[name] for row in rows],
        }
        for name in FEATURES
    ]
    status, body = api.call(
        "POST",
        INFER,
        {"id": "42", "inputs": inputs, "outputs": [{"name": probabilities}]},
        headers={"Content-Type": "application/json"},
    )
    assert status == 200 and body["id"] == "42"
    assert [(o["name"], o["shape"], o["datatype"]) for o in body["outputs"]] == [
        (probabilities, [3, 2], "FP32")
    ]
    # The binary extension's example (Triton's extension_binary_data.md): `model_name` in the
    # JSON, every input binary, one output asked for as binary; the answer is its JSON, then
    # the output's bytes, with Inference-Header-Content-Length giving the JSON's size.
    document, chunks = binary_request(
        rows,
        model_name=MODEL,
        outputs=[{"name": probabilities, "parameters": {"binary_data": True}}],
    )
    response = send(api, document, chunks, accept=OCTET)
    raw = base64.b64decode(response["body"])
    length = int(header_of(response, "Inference-Header-Content-Length") or 0)
    header = json.loads(raw[:length])
    assert header["outputs"] == [
        {
            "name": probabilities,
            "shape": [3, 2],
            "datatype": "FP32",
            "parameters": {"binary_data_size": 24},
        }
    ]
    assert len(raw) == length + 24


def test_unknown_outputs_and_bad_parameters_are_422_naming_them(
    api: Api, published: Trained
) -> None:
    document, chunks = binary_request(published.rows[:2], outputs=[{"name": "output0"}])
    status, body = _refused(send(api, document, chunks))
    assert (status, body["code"], body["field"]) == (422, "unknown_output", "outputs[0].name")
    document, chunks = binary_request(published.rows[:2], parameters={"binary_data_output": 1})
    status, body = _refused(send(api, document, chunks))
    assert (status, body["field"]) == (422, "parameters.binary_data_output")
    document, chunks = binary_request(published.rows[:2])
    document["inputs"][0]["data"] = [1, 2]
    status, body = _refused(send(api, document, chunks))
    assert (status, body["field"]) == (422, "inputs[0].data")
