"""The domain events on the default event bus: their sources, detail-types and details
(`functions.adapters.events` publishes them).

`ModelPromoted` (source `mlops.registry`) is published whenever the serving alias of a model
moves, by a promotion or a rollback: consumers (the predict function's cache, notifications,
a deployment hook) match on source and detail-type. Delivery is at least once: a retried
registration may publish the same move twice, so consumers key on (model, alias, revision).

`DriftDetected` (source `mlops.monitor`) is published by the drift check when the data drifted
or live performance dropped; with `retrain.via == "pipeline"` a rule starts the pipeline with
`detail.pipeline_input` (a retrain request naming the model, `retrain_input`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.common.contracts import AliasChange

REGISTRY_SOURCE = "mlops.registry"
MODEL_PROMOTED = "ModelPromoted"
MONITOR_SOURCE = "mlops.monitor"
DRIFT_DETECTED = "DriftDetected"


def model_promoted_detail(
    change: AliasChange, *, metrics: Mapping[str, float], run_id: str | None = None
) -> dict[str, Any]:
    """The detail of a `ModelPromoted` event for one move of an alias."""
    return {
        "model": change.model_name,
        "alias": change.alias,
        "version": change.to_version,
        "previous_version": change.from_version,
        "kind": change.kind,
        "revision": change.revision,
        "metrics": dict(metrics),
        "run_id": run_id,
        "execution": change.execution,
        "reason": change.reason,
        "at": change.at,
    }


def retrain_input(model: str, reason: str) -> dict[str, Any]:
    """The pipeline input that retrains `model` alone, without a new drop (what a
    `DriftDetected` rule and a model's retraining schedule start the pipeline with):
    `{"retrain": {"reason": ..., "model": ...}}`."""
    return {"retrain": {"reason": reason, "model": model}}
