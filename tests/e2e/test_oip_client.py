"""The reference Open Inference Protocol client against the local API: tritonclient's HTTP
client (`tritonclient.http`, in `.venv-oip`, built by `make oip-venv`: its pins conflict with
the main venv's) reads the model's metadata and infers with it, on a churn model with numeric
and categorical inputs, its tensors as JSON and as binary tensor data (`binary_data=True`), for
inputs and for outputs. It sends `/v2/models/{name}/infer` without a Content-Type header, as
Triton and KServe accept; binary inputs need `Content-Type: application/octet-stream` (the
API's binary media type: any other body reaches the function as text, its binary bytes
replaced), and binary outputs `Accept: application/octet-stream`. The API uses API keys here:
tritonclient sends headers, not SigV4."""

from __future__ import annotations

import http.client
import json
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.local import LocalCloud

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TRITON_PYTHON = REPO_ROOT / ".venv-oip" / "bin" / "python"
MODEL = "churn"
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
CLIENT = """
import json, sys
import numpy as np
import tritonclient.http as httpclient

url, key, model, binary_in, binary_out, extra = sys.argv[1:7]
rows = json.load(sys.stdin)
client = httpclient.InferenceServerClient(url=url)
headers = {"x-api-key": key}
metadata = client.get_model_metadata(model, headers=headers)
inputs = []
for spec in metadata["inputs"]:
    kind = object if spec["datatype"] == "BYTES" else np.float32
    values = np.array([[row[spec["name"]]] for row in rows], dtype=kind)
    tensor = httpclient.InferInput(spec["name"], list(values.shape), spec["datatype"])
    tensor.set_data_from_numpy(values, binary_data=binary_in == "1")
    inputs.append(tensor)
wanted = [
    httpclient.InferRequestedOutput(o["name"], binary_data=binary_out == "1")
    for o in metadata["outputs"]
]
try:
    result = client.infer(model, inputs, outputs=wanted, headers={**headers, **json.loads(extra)})
except Exception as error:  # tritonclient's InferenceServerException: the server's message
    print(json.dumps({"metadata": metadata, "refused": str(error)}))
    sys.exit(0)
response = result.get_response()
binary = [o["name"] for o in response["outputs"] if "binary_data_size" in o.get("parameters", {})]
outputs = {}
for output in metadata["outputs"]:
    values = result.as_numpy(output["name"]).reshape(len(rows), -1).tolist()
    outputs[output["name"]] = [
        [v.decode() if isinstance(v, bytes) else v for v in row] for row in values
    ]
print(json.dumps({"metadata": metadata, "outputs": outputs, "binary": binary}))
"""


class Keyed:
    """The module's local cloud, its API key and its API's host:port/path."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        keys = cloud.client("apigateway").get_api_keys(includeValues=True)["items"]
        self.key = next(item["value"] for item in keys if item.get("enabled", True))
        self.url = cloud.api_url.rstrip("/")

    def call(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        """One request with exactly these headers (and the key): no Content-Type is added."""
        url = urllib.parse.urlsplit(self.url + path)
        connection = http.client.HTTPConnection(url.netloc, timeout=30)
        try:
            connection.request(method, url.path, body, {"x-api-key": self.key, **headers})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


@pytest.fixture(scope="module")
def keyed(synth_with_config: Callable[[str], Path]) -> Iterator[Keyed]:
    if not TRITON_PYTHON.exists():
        pytest.fail("tritonclient's venv is missing: run `make oip-venv`", pytrace=False)
    text = (REPO_ROOT / "mlops.toml").read_text().replace('auth = "iam"', 'auth = "api_key"')
    cdk_out = synth_with_config(text)
    with LocalCloud.start(
        cdk_out, mode="server", port=0, api_port=0, state_dir=cdk_out.parent / "state"
    ) as cloud:
        first = cloud.drop(
            "raw/churn/first.csv",
            sample_data.encode(sample_data.churn_frame(2_000, seed=31)),
            timeout=180,
        )
        assert model_outcome(json.loads(first["output"]))["status"] == "promoted"
        yield Keyed(cloud)


def _rows(count: int) -> list[dict[str, Any]]:
    frame = sample_data.churn_frame(count * 3, seed=88, first_id=800_000, duplicate_share=0.0)
    records = frame[FEATURES].dropna().head(count).to_dict(orient="records")
    return [
        {
            name: value.item() if isinstance(value, np.generic) else value
            for name, value in row.items()
        }
        for row in records
    ]


OCTET = "application/octet-stream"


def _triton(
    keyed: Keyed,
    rows: list[dict[str, Any]],
    *,
    binary_in: bool,
    binary_out: bool,
    headers: dict[str, str],
) -> dict[str, Any]:
    ran = subprocess.run(
        [
            str(TRITON_PYTHON),
            "-c",
            CLIENT,
            keyed.url.removeprefix("http://"),
            keyed.key,
            MODEL,
            "1" if binary_in else "0",
            "1" if binary_out else "0",
            json.dumps(headers),
        ],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return dict(json.loads(ran.stdout))


@pytest.mark.parametrize(
    ("binary_in", "binary_out"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["json", "binary-inputs", "binary-outputs", "binary"],
)
def test_tritonclient_reads_metadata_and_infers_through_the_local_api(
    keyed: Keyed, binary_in: bool, binary_out: bool
) -> None:
    rows = _rows(12)
    headers = {
        **({"Content-Type": OCTET} if binary_in else {}),
        **({"Accept": OCTET} if binary_out else {}),
    }

    answer = _triton(keyed, rows, binary_in=binary_in, binary_out=binary_out, headers=headers)

    assert "refused" not in answer, answer.get("refused")
    inputs = {spec["name"]: spec["datatype"] for spec in answer["metadata"]["inputs"]}
    assert inputs["age"] == "FP32" and inputs["contract"] == "BYTES"
    status, online = keyed.call(
        "POST",
        "/v1/predict",
        json.dumps({"instances": rows}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, online
    label, probabilities = (output["name"] for output in answer["metadata"]["outputs"])
    assert answer["binary"] == ([label, probabilities] if binary_out else [])
    assert [row[0] for row in answer["outputs"][label]] == online["predictions"]
    np.testing.assert_allclose(answer["outputs"][probabilities], online["probabilities"], atol=1e-6)


def test_tritonclient_binary_requests_need_the_apis_binary_media_types(keyed: Keyed) -> None:
    rows = _rows(3)
    # Binary inputs without Content-Type reach the function as text, mangled: refused, saying
    # which Content-Type to send.
    answer = _triton(keyed, rows, binary_in=True, binary_out=False, headers={})
    assert OCTET in answer["refused"] and "Content-Type" in answer["refused"]
    # Binary outputs for a client that does not Accept them: JSON, which tritonclient reads.
    answer = _triton(keyed, rows, binary_in=True, binary_out=True, headers={"Content-Type": OCTET})
    assert answer["binary"] == [] and len(answer["outputs"]) == 2


def test_v2_infer_takes_json_with_its_inference_header_length(keyed: Keyed) -> None:
    rows = _rows(2)
    inputs = [
        {
            "name": name,
            "shape": [2, 1],
            "datatype": "BYTES" if name in sample_data.CATEGORICAL_FEATURES else "FP32",
            "data": [row[name] for row in rows],
        }
        for name in FEATURES
    ]
    body = json.dumps({"inputs": inputs}).encode()
    path = f"/v2/models/{MODEL}/infer"

    plain = keyed.call("POST", path, body, {"Inference-Header-Content-Length": str(len(body))})
    binary = keyed.call(
        "POST", path, body + b"\x00\x01", {"Inference-Header-Content-Length": str(len(body))}
    )
    predict = keyed.call("POST", "/v1/predict", json.dumps({"instances": rows}).encode(), {})

    assert plain[0] == 200, plain
    # Binary tensor data in a body that is not application/octet-stream: API Gateway passed
    # it as text.
    assert binary[0] == 415 and binary[1]["field"] == "Content-Type"
    assert binary[1]["code"] == "unsupported_media_type" and "binary" in binary[1]["error"]
    assert predict[0] == 415 and predict[1]["error"] == "unsupported_media_type"
