"""Batch jobs in moto: planning (`functions/batch/plan.py`: which files are read, and which are
reported unreadable with a reason the user can act on), and a job of one model of several,
planned, scored and finalized under that model's folders with that model's version."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from functions.batch import item as batch_item
from functions.batch.contracts import BatchItem, BatchRequest
from functions.batch.finalize import finalize
from functions.batch.item import score_item
from functions.batch.plan import NoModelError, plan
from functions.batch.stage import stage_adapters
from functions.common.config.loading import deployed_config
from functions.common.layout import job_inputs
from functions.ml.sample_data import churn_frame
from tests.helpers.cloud import Cloud
from tests.helpers.config import CHALLENGER, with_challenger
from tests.helpers.models import trained_churn
from tests.helpers.registry import publish


def _clear() -> None:
    deployed_config.cache_clear()
    stage_adapters.cache_clear()
    batch_item._model.cache_clear()


@pytest.fixture
def portfolio(cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """The repo's config with a second model on its dataset, each model with a production
    version (the challenger's fitted with much stronger regularization)."""
    config = tmp_path / "mlops.toml"
    config.write_text(with_challenger())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    _clear()
    publish(cloud, trained_churn(200, seed=1))
    publish(cloud, trained_churn(200, seed=1), model=CHALLENGER)  # version 1 of each ...
    publish(cloud, trained_churn(200, seed=1, c=0.001), model=CHALLENGER)  # ... 2: production
    yield cloud
    _clear()


def test_a_csv_separated_by_another_delimiter_is_unreadable_naming_it(cloud: Cloud) -> None:
    """Read with the configured comma, `age;tenure;...` is one column: every row would be
    rejected as missing every feature; the plan names the separator instead."""
    publish(cloud, trained_churn(200, seed=1))
    rows = churn_frame(30, seed=2, duplicate_share=0.0).drop(columns=["churned"])
    prefix = job_inputs("churn", "june")
    for name, separator in (("comma.csv", ","), ("semicolon.csv", ";")):
        body = rows.to_csv(index=False, sep=separator).encode()
        cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + name, Body=body)

    planned = plan(BatchRequest(job="june"))

    assert planned.files == 2 and planned.rows == 30
    assert [file.key for file in planned.unreadable] == [prefix + "semicolon.csv"]
    assert "';'" in planned.unreadable[0].reason and "','" in planned.unreadable[0].reason


def _score_job(cloud: Cloud, model: str | None) -> tuple[list[float], dict[str, object]]:
    """Plan, score and finalize job `june` of `model`; the first probability column and the
    manifest."""
    planned = plan(BatchRequest(job="june", model=model))
    items = json.loads(cloud.body(planned.items_key))
    results = [score_item(BatchItem.model_validate(item)) for item in items]
    manifest = finalize(planned, None, "execution-1").model_dump(mode="json")
    probabilities: list[float] = []
    for result in results:
        table = pq.read_table(io.BytesIO(cloud.body(result.output_key)))
        probabilities.extend(table.column(table.column_names[-1]).to_pylist())
    return probabilities, manifest


def test_a_job_under_a_models_folder_is_scored_by_that_models_production_version(
    portfolio: Cloud,
) -> None:
    rows = churn_frame(40, seed=3, duplicate_share=0.0).drop(columns=["churned"])
    body = rows.to_csv(index=False).encode()
    for model in ("churn", CHALLENGER):
        portfolio.s3.put_object(
            Bucket=portfolio.bucket, Key=job_inputs(model, "june") + "customers.csv", Body=body
        )

    challenger, manifest = _score_job(portfolio, CHALLENGER)
    champion, default_manifest = _score_job(portfolio, None)

    assert manifest["model_name"] == CHALLENGER and manifest["model_version"] == 2
    assert manifest["status"] == "succeeded" and manifest["scored"] == 40
    [file] = manifest["per_file"]
    assert file["key"] == f"batch/in/{CHALLENGER}/june/customers.csv"
    assert all(key.startswith(f"batch/out/{CHALLENGER}/june/") for key in file["outputs"])
    stored = json.loads(portfolio.body(f"batch/out/{CHALLENGER}/june/manifest.json"))
    assert stored["model_name"] == CHALLENGER and stored["format_version"] == 2
    # The default model scored its own folder's job with its own version: other predictions.
    assert default_manifest["model_name"] == "churn" and default_manifest["model_version"] == 1
    assert len(champion) == len(challenger) == 40
    assert champion != challenger


def test_a_start_marker_names_the_model_and_an_unknown_model_is_refused(
    portfolio: Cloud,
) -> None:
    def event(key: str) -> dict[str, object]:
        return {"detail": {"bucket": {"name": portfolio.bucket}, "object": {"key": key}}}

    request = BatchRequest.from_event(event(f"batch/in/{CHALLENGER}/june/_START"))
    assert (request.model, request.job) == (CHALLENGER, "june")
    with pytest.raises(ValueError, match=r"batch/in/<model>/<job>/"):
        BatchRequest.from_event(event("batch/in/june/_START"))
    with pytest.raises(NoModelError, match=r"model 'nope' is not configured"):
        plan(BatchRequest(job="june", model="nope"))
