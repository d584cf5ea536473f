"""Sensitive columns (`[dataset] sensitive`) in prediction capture: the record the function
logs (what the subscription hands Firehose) holds a `hash` column only as its hash and no
`drop` column at all, while the prediction is the one the real values give."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.config.loading import load_config
from functions.common.sensitive import hash_value
from tests.helpers import REPO
from tests.helpers.models import Trained
from tests.helpers.predict_api import Api
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

SALT = "churn-capture"


def _use_sensitive_config(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    config = load_config(REPO / "mlops.toml")
    dataset = config.dataset.model_copy(
        update={"sensitive": {"region": "hash", "contract": "drop"}, "hash_salt": SALT}
    )
    monkeypatch.setenv(
        "MLOPS_CONFIG_JSON",
        config.model_copy(
            update={"dataset": dataset, "datasets": {dataset.name: dataset}}
        ).to_json(),
    )
    api.reset()


@pytest.mark.parametrize("route", ["v1", "v2"])
def test_capture_holds_hashes_not_values_and_no_dropped_column(
    capture_log: Callable[[], list[dict[str, Any]]],
    api: Api,
    cloud: Cloud,
    models: dict[int, Trained],
    monkeypatch: pytest.MonkeyPatch,
    route: str,
) -> None:
    publish(cloud, models[1])
    rows = [row for row in models[1].rows if row["region"] and row["contract"]][:4]

    def predict() -> tuple[str, Any]:
        if route == "v1":
            status, body = api.call("POST", "/v1/predict", {"instances": rows})
            assert status == 200, body
            return body["request_id"], (body["predictions"], body["probabilities"])
        inputs = [
            {
                "name": name,
                "shape": [len(rows), 1],
                "datatype": "BYTES" if isinstance(rows[0][name], str) else "FP32",
                "data": [row[name] for row in rows],
            }
            for name in rows[0]
        ]
        status, body = api.call("POST", "/v2/models/churn/infer", {"inputs": inputs})
        assert status == 200, body
        return body["id"], body["outputs"]

    _, plain = predict()
    _use_sensitive_config(monkeypatch, api)
    request_id, sensitive = predict()

    assert sensitive == plain, "the prediction uses the real values"
    [record] = [r for r in capture_log() if r["request_id"] == request_id]
    columns = record["columns"]
    assert "contract" not in columns
    assert columns["region"] == [hash_value(row["region"], SALT) for row in rows]
    assert columns["region"] != [hash_value(row["region"]) for row in rows]  # keyed with the salt
    for name in rows[0]:
        if name not in ("region", "contract"):
            assert columns[name] == [row[name] for row in rows]
    delivered = json.dumps(record).encode()
    for row in rows:
        assert f'"{row["region"]}"'.encode() not in delivered
        assert f'"{row["contract"]}"'.encode() not in delivered
