"""The ingest event: S3's EventBridge notification becomes the SourceObject ingestion keys on."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from functions.ingest.events import ObjectCreatedEvent

EVENT = Path(__file__).resolve().parents[3] / "events" / "s3_object_created.json"


@pytest.fixture
def event() -> dict[str, Any]:
    return json.loads(EVENT.read_text())


def test_the_sample_event_names_bucket_key_version_etag_and_size(event: dict[str, Any]) -> None:
    source = ObjectCreatedEvent.model_validate(event).source_object()

    assert source.bucket == "mlops-dev-data"
    assert source.key == "raw/churn/churn-0001.csv"
    assert source.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert source.etag == "b1946ac92492d2347c6235b4d2611184"
    assert source.size == 123456


def test_moto_spelling_of_etag_and_an_unversioned_bucket_still_identify_the_object(
    event: dict[str, Any],
) -> None:
    moto_style = copy.deepcopy(event)
    obj = moto_style["detail"]["object"]
    obj["eTag"] = obj.pop("etag")
    obj["version-id"] = "null"
    moto_style["time"] = 1730808000.0

    source = ObjectCreatedEvent.model_validate(moto_style).source_object()

    assert source.version_id is None
    assert source.etag == "b1946ac92492d2347c6235b4d2611184"
    assert source.identity == "s3://mlops-dev-data/raw/churn/churn-0001.csv#" + source.etag


def test_an_event_without_an_object_key_is_rejected(event: dict[str, Any]) -> None:
    del event["detail"]["object"]["key"]

    with pytest.raises(ValidationError, match="key"):
        ObjectCreatedEvent.model_validate(event)
