"""The reference Open Inference Protocol client against the local API: tritonclient's HTTP
client (`tritonclient.http`, in `.venv-oip`, built by `make oip-venv`: its pins conflict with
the main venv's) reads the model's metadata and infers with it, on a churn model with numeric
and categorical inputs. It sends `/v2/models/{name}/infer` without a Content-Type header, as
Triton and KServe accept. The API uses API keys here: tritonclient sends headers, not SigV4."""

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

url, key, model = sys.argv[1:4]
rows = json.load(sys.stdin)
client = httpclient.InferenceServerClient(url=url)
headers = {"x-api-key": key}
metadata = client.get_model_metadata(model, headers=headers)
inputs = []
for spec in metadata["inputs"]:
    kind = object if spec["datatype"] == "BYTES" else np.float32
    values = np.array([[row[spec["name"]]] for row in rows], dtype=kind)
    tensor = httpclient.InferInput(spec["name"], list(values.shape), spec["datatype"])
    tensor.set_data_from_numpy(values, binary_data=False)
    inputs.append(tensor)
wanted = [
    httpclient.InferRequestedOutput(o["name"], binary_data=False) for o in metadata["outputs"]
]
result = client.infer(model, inputs, outputs=wanted, headers=headers)
outputs = {}
for output in metadata["outputs"]:
    values = result.as_numpy(output["name"]).reshape(len(rows), -1).tolist()
    outputs[output["name"]] = [
        [v.decode() if isinstance(v, bytes) else v for v in row] for row in values
    ]
print(json.dumps({"metadata": metadata, "outputs": outputs}))
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


def test_tritonclient_reads_metadata_and_infers_through_the_local_api(keyed: Keyed) -> None:
    rows = _rows(12)
    address = keyed.url.removeprefix("http://")

    ran = subprocess.run(
        [str(TRITON_PYTHON), "-c", CLIENT, address, keyed.key, MODEL],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout)
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
    assert [row[0] for row in answer["outputs"][label]] == online["predictions"]
    np.testing.assert_allclose(answer["outputs"][probabilities], online["probabilities"], atol=1e-6)


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
    assert binary[0] == 415 and binary[1]["field"] == "Inference-Header-Content-Length"
    assert "binary" in binary[1]["message"]
    assert predict[0] == 415 and predict[1]["error"] == "unsupported_media_type"
