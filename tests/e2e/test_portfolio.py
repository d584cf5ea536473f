"""A team's portfolio on the local cloud, deployed from the synthesized app: two datasets and
three models. `churn` (logistic regression) and `churn-lgbm` (the user's own factory, with
LightGBM) share dataset churn; `prices` (ridge) trains on dataset prices.

Each drop trains the models of its dataset only; each model is served on its own route,
checked for drift, scored in batch and retrained on its own; the challenger's rejection on a
later drop leaves the champion family's promotion intact; `mlops models list` shows it all."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from functions.adapters.registry.model_registry import ModelRegistry
from functions.ml import sample_data
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud
from tests.helpers import REPO
from tests.helpers.served import Served

pytestmark = pytest.mark.slow

MODEL_CODE = REPO / "examples" / "model_code"
"""The user's model code (`[train] code`): the worked example, copied beside the config."""
FACTORY = "churn_model.pipeline:build"

CONFIG = f"""
[project]
name = "mlops"
default_model = "churn"

[stages.dev]
removal_policy = "destroy"

[datasets.churn]
target = "churned"
task = "classification"
mode = "append"
min_rows = 50

[datasets.churn.features]
age = "numeric"
tenure_months = "numeric"
monthly_charges = "numeric"
total_charges = "numeric"
support_calls = "numeric"
contract = "categorical"
payment_method = "categorical"
internet_service = "categorical"
region = "categorical"

[datasets.prices]
target = "price"
task = "regression"
mode = "append"
min_rows = 50

[model]
test_size = 0.2
seed = 42

[models.churn]
dataset = "churn"
estimator = "logistic_regression"
params = {{ C = 1.0, max_iter = 1000 }}

[models.churn.gate.metrics.roc_auc]
threshold = 0.75

[models.churn-lgbm]
dataset = "churn"
factory = "{FACTORY}"

[models.churn-lgbm.gate.metrics.roc_auc]
threshold = 0.75
min_absolute_change = 0.05       # a challenger must beat its champion clearly

[models.prices]
dataset = "prices"
estimator = "ridge"

[models.prices.gate.metrics.r2]
threshold = 0.5

[train]
code = "model_code"

[drift]
schedule = "rate(1 day)"
auto_retrain = false

[serving]
auth = "iam"
capture_sample_rate = 1.0
"""
MODELS = ("churn", "churn-lgbm", "prices")
CHURN_FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
ZONES = {"centre": 120.0, "suburb": 60.0, "rural": 0.0}


def _churn(rows: int, seed: int, first_id: int) -> bytes:
    return sample_data.encode(sample_data.churn_frame(rows, seed=seed, first_id=first_id))


def _prices_frame(rows: int, seed: int) -> pd.DataFrame:
    """Listings whose price is learnable from area, rooms and zone (r2 well over 0.5)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "area": rng.uniform(30, 200, rows).round(1),
            "rooms": rng.integers(1, 7, rows).astype(float),
            "zone": rng.choice(list(ZONES), rows),
        }
    )
    noise = rng.normal(0, 15, rows)
    frame["price"] = (
        2.5 * frame["area"] + 10 * frame["rooms"] + frame["zone"].map(ZONES) + noise
    ).round(2)
    return frame


class Portfolio(Served):
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        super().__init__(cloud, state_dir)
        self.registry = ModelRegistry(cloud.outputs["RegistryTableName"], cloud.client("dynamodb"))
        self.scored: dict[str, int] = dict.fromkeys(MODELS, 0)
        """Rows each model has answered (and captured) so far."""

    def drop(self, key: str, body: bytes) -> dict[str, Any]:
        """Drop a file under raw/ and wait for the execution it starts (none: a failure)."""
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        name = self.cloud.execution_name_for_object(
            self.bucket, key, put.get("VersionId"), put["ETag"]
        )
        self.cloud.wait_idle(60)
        started = {execution["name"] for execution in self.cloud.executions()}
        assert name in started, f"the drop {key} started no pipeline execution"
        return self.cloud.wait_for_execution(name, timeout=600)

    def production(self, model: str) -> int | None:
        alias = self.registry.get_alias(model)
        return alias.version if alias else None

    def runs(self, model: str) -> list[dict[str, Any]]:
        """The model's runs, newest first."""
        return self.registry.list_runs(model)

    def run_counts(self) -> dict[str, int]:
        return {model: len(self.runs(model)) for model in MODELS}

    def predict(self, route: str, instances: list[dict[str, Any]]) -> tuple[int, Any]:
        body = json.dumps({"instances": instances}).encode()
        request = signed_request(
            self.cloud.api_url.rstrip("/") + route,
            "POST",
            body,
            {"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
                self.scored[answer.get("model_name", "churn")] += len(instances)
                return response.status, answer
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def listed(self) -> dict[str, dict[str, Any]]:
        """`mlops models list --json`, by model."""
        return {row["model"]: row for row in json.loads(self.cli("models", "list", "--json"))}


def _churn_rows(count: int, seed: int) -> list[dict[str, Any]]:
    frame = sample_data.churn_frame(count, seed=seed, first_id=9_000_000, duplicate_share=0.0)
    records = frame[CHURN_FEATURES].astype(object).where(frame[CHURN_FEATURES].notna(), None)
    return [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
        for row in records.to_dict(orient="records")
    ]


def _price_rows(count: int, seed: int) -> list[dict[str, Any]]:
    frame = _prices_frame(count, seed).drop(columns="price")
    return [
        {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@pytest.fixture(scope="module")
def portfolio(synth_with_config: Callable[..., Path]) -> Iterator[Portfolio]:
    """The portfolio deployed, and `mlops` reading its config (as a user's shell would, with
    `MLOPS_CONFIG`)."""
    cdk_out = synth_with_config(CONFIG, beside={"model_code": MODEL_CODE})
    state_dir = cdk_out.parent / "state"
    with (
        pytest.MonkeyPatch.context() as env,
        LocalCloud.start(cdk_out, mode="server", port=0, api_port=0, state_dir=state_dir) as cloud,
    ):
        env.setenv("MLOPS_CONFIG", str(cdk_out.parent / "mlops.toml"))
        yield Portfolio(cloud, state_dir)


@pytest.fixture(scope="module")
def first_churn_drop(portfolio: Portfolio) -> dict[str, Any]:
    """The first drop of dataset churn: its execution, and the models' run counts after it
    (`counts`: the tests run in any order)."""
    execution = portfolio.drop("raw/churn/first.csv", _churn(2_000, seed=31, first_id=0))
    return {**execution, "counts": portfolio.run_counts()}


def test_a_churn_drop_promotes_the_default_model(
    portfolio: Portfolio, first_churn_drop: dict[str, Any]
) -> None:
    assert first_churn_drop["status"] == "SUCCEEDED"
    assert portfolio.production("churn") >= 1
    first = portfolio.runs("churn")[-1]  # newest first
    assert first["estimator"] == "logistic_regression"
    assert first_churn_drop["counts"]["prices"] == 0


def test_a_churn_drop_trains_both_models_of_the_dataset_and_nothing_else(
    portfolio: Portfolio, first_churn_drop: dict[str, Any]
) -> None:
    assert first_churn_drop["counts"] == {"churn": 1, "churn-lgbm": 1, "prices": 0}
    assert portfolio.production("churn-lgbm") == 1
    challenger = portfolio.runs("churn-lgbm")[-1]
    assert challenger["data_version"] == portfolio.runs("churn")[-1]["data_version"]
    onnx = portfolio.get("models/churn-lgbm/1/model.onnx")
    assert b"TreeEnsemble" in onnx  # LightGBM's trees, converted into the ONNX graph


@pytest.fixture(scope="module")
def first_prices_drop(
    portfolio: Portfolio, first_churn_drop: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, int], dict[str, int]]:
    """The first drop of dataset prices (after churn's), its execution, and the models' run
    counts before and after it."""
    before = portfolio.run_counts()
    execution = portfolio.drop(
        "raw/prices/first.csv", sample_data.encode(_prices_frame(1_500, seed=5))
    )
    return execution, before, portfolio.run_counts()


def test_a_prices_drop_trains_only_the_prices_model(
    portfolio: Portfolio, first_prices_drop: tuple[dict[str, Any], dict[str, int], dict[str, int]]
) -> None:
    execution, before, after = first_prices_drop

    assert execution["status"] == "SUCCEEDED"
    assert after == {**before, "prices": 1}
    assert portfolio.production("prices") == 1
    assert portfolio.runs("prices")[0]["estimator"] == "ridge"


def test_the_default_route_serves_the_default_model(
    portfolio: Portfolio, first_churn_drop: dict[str, Any]
) -> None:
    status, body = portfolio.predict("/v1/predict", _churn_rows(20, seed=7))

    assert status == 200, body
    assert (body["model_name"], body["model_version"]) == ("churn", 1)
    assert len(body["predictions"]) == 20
    printed = portfolio.cli("predict", "--file", str(_rows_file(portfolio, seed=8)))
    assert "model version 1 (churn)" in printed


def _rows_file(portfolio: Portfolio, seed: int, model: str = "churn") -> Path:
    path = portfolio.state_dir / f"rows-{model}-{seed}.json"
    rows = _price_rows(5, seed) if model == "prices" else _churn_rows(5, seed)
    path.write_text(json.dumps(rows))
    portfolio.scored[model] += len(rows)  # `mlops predict --file` sends them
    return path


def test_each_model_is_served_on_its_own_route(
    portfolio: Portfolio, first_prices_drop: object
) -> None:
    for model, rows in (
        ("churn", _churn_rows(10, seed=11)),
        ("churn-lgbm", _churn_rows(10, seed=11)),
        ("prices", _price_rows(10, seed=11)),
    ):
        status, body = portfolio.predict(f"/v1/models/{model}/predict", rows)
        assert status == 200, (model, body)
        assert (body["model_name"], body["model_version"]) == (model, 1)
        assert len(body["predictions"]) == 10
    prices = portfolio.predict("/v1/models/prices/predict", _price_rows(3, seed=12))[1]
    assert all(isinstance(value, float) for value in prices["predictions"])
    status, body = portfolio.predict("/v1/models/nope/predict", _churn_rows(1, seed=1))
    assert status == 404 and "model_not_found" in str(body)
    printed = portfolio.cli(
        "predict", "--model", "prices", "--file", str(_rows_file(portfolio, 13, "prices"))
    )
    assert "model version 1 (prices)" in printed


def test_a_drift_check_of_the_default_model_shows_in_models_list(
    portfolio: Portfolio, first_churn_drop: dict[str, Any]
) -> None:
    portfolio.predict("/v1/predict", _churn_rows(200, seed=21))

    time.sleep(1.1)  # a check's window ends a whole second before it starts
    ran = portfolio.cli("drift", "run", "--window-hours", "1")
    [check_id] = [
        line.split()[1].rstrip(":") for line in ran.splitlines() if line.startswith("check ")
    ]

    listed = portfolio.listed()
    assert list(listed) == list(MODELS)
    churn = listed["churn"]
    assert churn["last_drift"]["check_id"] == check_id
    assert churn["last_drift"]["verdict"] in ran
    assert churn["status"] == "serving" and churn["production_version"] == 1


def test_each_model_is_checked_for_drift_on_its_own(
    portfolio: Portfolio, first_prices_drop: object
) -> None:
    status, body = portfolio.predict("/v1/models/prices/predict", _price_rows(200, seed=31))
    assert status == 200, body
    churn_checks = portfolio.keys("reports/drift/churn/")

    time.sleep(1.1)  # a check's window ends a whole second before it starts
    ran = portfolio.cli("drift", "run", "--model", "prices", "--window-hours", "1")

    [result_key] = [
        key for key in portfolio.keys("reports/drift/prices/") if key.endswith("/result.json")
    ]
    result = json.loads(portfolio.get(result_key))
    assert result["model_name"] == "prices" and result["check_id"] in ran
    assert result["window"]["rows"] == portfolio.scored["prices"]  # its own capture only
    assert portfolio.scored["prices"] >= 200
    assert portfolio.keys("reports/drift/churn/") == churn_checks
    listed = portfolio.listed()
    assert listed["prices"]["last_drift"]["check_id"] == result["check_id"]
    assert listed["churn-lgbm"]["last_drift"] is None


def test_a_retrain_request_retrains_the_model_it_names_only(
    portfolio: Portfolio, first_prices_drop: object
) -> None:
    before = portfolio.run_counts()

    portfolio.cli("runs", "start", "--model", "churn-lgbm", "--reason", "e2e retrain")

    after = portfolio.run_counts()
    assert after == {**before, "churn-lgbm": before["churn-lgbm"] + 1}
    [execution] = [e for e in portfolio.cloud.executions() if "retrain" in (e.get("name") or "")]
    request = json.loads(portfolio.cloud.wait_for_execution(execution["executionArn"])["input"])[
        "retrain"
    ]
    assert request == {"model": "churn-lgbm", "reason": "e2e retrain"}


def test_a_batch_job_is_scored_by_the_model_it_names(
    portfolio: Portfolio, first_prices_drop: object, tmp_path: Path
) -> None:
    (tmp_path / "listings.csv").write_bytes(
        sample_data.encode(_prices_frame(50, seed=61).drop(columns="price"))
    )

    portfolio.cli("batch", "run", str(tmp_path), "--job", "listings", "--model", "prices", "--wait")

    assert portfolio.keys("batch/in/prices/listings/")
    manifest = json.loads(portfolio.get("batch/out/prices/listings/manifest.json"))
    assert (manifest["model_name"], manifest["model_version"]) == ("prices", 1)
    assert manifest["scored"] == 50 and manifest["rejected"] == 0
    assert portfolio.keys("batch/out/churn/") == []


def test_a_challengers_rejection_leaves_the_champion_familys_promotion_intact(
    portfolio: Portfolio, first_prices_drop: object
) -> None:
    before = portfolio.run_counts()

    execution = portfolio.drop("raw/churn/second.csv", _churn(2_000, seed=32, first_id=50_000))

    assert execution["status"] == "SUCCEEDED"
    assert portfolio.production("churn") == 2
    assert portfolio.production("churn-lgbm") == 1
    rejected = portfolio.runs("churn-lgbm")[0]
    assert rejected["gate_passed"] is False
    assert portfolio.run_counts() == {
        **before,
        "churn": before["churn"] + 1,
        "churn-lgbm": before["churn-lgbm"] + 1,
    }
    listed = portfolio.listed()
    assert (listed["churn"]["status"], listed["churn"]["production_version"]) == ("serving", 2)
    challenger = listed["churn-lgbm"]
    assert (challenger["status"], challenger["production_version"]) == ("serving", 1)
    assert challenger["last_run"]["status"] == "rejected"
    status, body = portfolio.predict("/v1/models/churn-lgbm/predict", _churn_rows(3, seed=41))
    assert status == 200 and body["model_version"] == 1
