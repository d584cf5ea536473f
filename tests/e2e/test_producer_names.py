"""Column names as the data producer writes them, on the local cloud: a model trained on a drop
with spreadsheet headers (`Monthly Charges ($)`, which ingestion normalises to
`monthly_charges`) is served and batch-scored under either name. `GET /v1/model` and the OpenAPI
document show both; v1 predict, v2 infer and a batch job whose files carry the training file's
own header give the same predictions as with the normalised names."""

from __future__ import annotations

import io
import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from functions.ml import sample_data
from infra.cli.predict_client import signed_request
from tests.helpers.served import Served, serving_first_model

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
# The producer's header of each feature, as `display_headers` writes it.
PRODUCER = {
    name: sample_data.display_headers(pd.DataFrame(columns=[name])).columns[0] for name in FEATURES
}
ROWS = 300


class Producer(Served):
    """The module's local cloud, with a model trained on a drop with producer headers."""

    def call(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        body = None if document is None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = signed_request(self.cloud.api_url.rstrip("/") + path, method, body, headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def producer(synth_with_config: Callable[[str], Path]) -> Iterator[Producer]:
    text = (
        (REPO_ROOT / "mlops.toml")
        .read_text()
        .replace("capture_sample_rate = 1.0", "capture_sample_rate = 0.0")
    )
    cdk_out = synth_with_config(text)
    drop = sample_data.display_headers(sample_data.churn_frame(2_000, seed=31))
    assert "Monthly Charges ($)" in drop.columns
    with serving_first_model(cdk_out, Producer, sample_data.encode(drop)) as producer:
        yield producer


def _frame() -> pd.DataFrame:
    return sample_data.churn_frame(ROWS, seed=77, first_id=900_000, duplicate_share=0.0)[FEATURES]


def _records(frame: pd.DataFrame, names: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            names.get(key, key): None if isinstance(value, float) and math.isnan(value) else value
            for key, value in record.items()
        }
        for record in frame.astype(object).to_dict(orient="records")
    ]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def test_model_and_openapi_show_the_producer_names_beside_the_normalised_ones(
    producer: Producer,
) -> None:
    status, model = producer.call("GET", "/v1/model")
    assert status == 200
    inputs = {spec["name"]: spec for spec in model["signature"]["inputs"]}
    assert list(inputs) == FEATURES
    assert inputs["monthly_charges"]["aliases"] == ["Monthly Charges ($)"]
    assert inputs["tenure_months"]["aliases"] == ["Tenure Months"]

    status, document = producer.call("GET", "/openapi.json")
    assert status == 200
    properties = document["components"]["schemas"]["Instance"]["properties"]
    assert {"monthly_charges", "Monthly Charges ($)"} <= set(properties)
    assert "monthly_charges" in properties["Monthly Charges ($)"]["description"]


def test_v1_and_v2_accept_the_producer_names(producer: Producer) -> None:
    frame = _frame().head(20)
    normalised = _records(frame, {})
    original = _records(frame, PRODUCER)
    assert "Monthly Charges ($)" in original[0]

    status, by_normalised = producer.call("POST", "/v1/predict", {"instances": normalised})
    assert status == 200, by_normalised
    status, by_original = producer.call("POST", "/v1/predict", {"instances": original})
    assert status == 200, by_original
    assert by_original["predictions"] == by_normalised["predictions"]
    assert by_original["probabilities"] == by_normalised["probabilities"]

    inputs = [
        {
            "name": PRODUCER[name],
            "shape": [len(frame), 1],
            "datatype": "BYTES" if name in sample_data.CATEGORICAL_FEATURES else "FP32",
            "data": [_plain(row[name]) for row in normalised],
        }
        for name in FEATURES
    ]
    status, inferred = producer.call("POST", "/v2/models/churn/infer", {"inputs": inputs})
    assert status == 200, inferred
    assert inferred["outputs"][0]["data"] == by_normalised["predictions"]

    both = [{**original[0], "monthly_charges": 10.0}]
    status, refused = producer.call("POST", "/v1/predict", {"instances": both})
    assert status == 422 and refused["error"] == "duplicate_feature"
    assert "Monthly Charges ($)" in refused["message"]


def test_a_batch_job_with_the_training_files_header_scores_every_row(
    producer: Producer, tmp_path: Path
) -> None:
    frame = _frame()
    renamed = frame.rename(columns=PRODUCER)
    (tmp_path / "header.csv").write_bytes(sample_data.encode(renamed, "csv"))
    (tmp_path / "lines.jsonl").write_bytes(sample_data.encode(renamed, "jsonl"))
    (tmp_path / "table.parquet").write_bytes(sample_data.encode(renamed, "parquet"))

    producer.cli("batch", "run", str(tmp_path), "--job", "names", "--wait")

    manifest = json.loads(producer.get("batch/out/churn/names/manifest.json"))
    assert manifest["rows"] == 3 * ROWS
    assert manifest["scored"] == 3 * ROWS and manifest["rejected"] == 0
    keys = [key for key in producer.keys("batch/out/churn/names/") if key.endswith(".parquet")]
    scored = pd.concat([pd.read_parquet(io.BytesIO(producer.get(key))) for key in keys])
    status, online = producer.call("POST", "/v1/predict", {"instances": _records(frame, {})[:50]})
    assert status == 200
    from_csv = scored[scored["input_key"].str.endswith("header.csv")].sort_values("row")
    assert list(from_csv["prediction"][:50]) == online["predictions"]
