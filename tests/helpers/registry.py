"""A trained model registered in moto the way the register stage leaves it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.contracts import ModelVersion
from functions.common.layout import version_prefix
from tests.helpers.cloud import Cloud
from tests.helpers.models import MODEL, Trained


def model_version(
    number: int, trained: Trained, *, model: str = MODEL, **fields: Any
) -> ModelVersion:
    """Version `number` of `model` (default: the churn model) `trained`, its artifacts under
    models/<model>/<n>/, as the register stage records it; `fields` set other values."""
    prefix = version_prefix(model, number)
    version = ModelVersion(
        model_name=model,
        version=number,
        prefix=prefix,
        onnx_key=prefix + "model.onnx",
        onnx_sha256=hashlib.sha256(trained.onnx).hexdigest(),
        run_id=f"run-{number}",
        data_version="d1",
        data_versions=["d1"],
        metrics={"roc_auc": 0.8 + number / 100},
        created_at="2026-01-01T00:00:00.000Z",
        model_card_key=f"reports/{model}/{number}/x.html",
        promoted=False,
    )
    return version.model_copy(update=fields)


def publish(
    cloud: Cloud,
    trained: Trained,
    *,
    promote: bool = True,
    tamper: bool = False,
    model: str = MODEL,
) -> ModelVersion:
    """Register `trained` as the next version of `model` (default: the churn model; artifacts
    under models/<model>/<n>/, version item, alias), as the register stage does; `tamper`
    uploads bytes that do not match the hash."""
    registry = ModelRegistry(cloud.table)
    number = registry.allocate_version(model)
    prefix = version_prefix(model, number)
    body = trained.onnx + b"tampered" if tamper else trained.onnx
    cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + "model.onnx", Body=body)
    for name, document in {
        "signature.json": trained.signature,
        "metadata.json": {"model_name": model, "version": number},
    }.items():
        cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + name, Body=json.dumps(document))
    version = model_version(number, trained, model=model)
    registry.put_version(version)
    if promote:
        current = registry.get_alias(model)
        registry.promote(
            model, number, expected_current=current.version if current else None, reason="test"
        )
    return version
