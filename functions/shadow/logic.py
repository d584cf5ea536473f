"""The shadow scorer: a capture object created under `capture/` (S3 "Object Created" through
EventBridge) is read, and for each model of its records whose `[serving] shadow` is on and
whose alias `shadow` is set, that version (checked against its registered sha256 by the
serving code's one loader, `functions.serving.model.load_version`) scores the records
(`functions.shadow.scoring`). Its records are written to
`shadow/<model>/dt=<day of the capture object>/<capture object name>.jsonl`: one object per
capture object and model, so a repeated delivery of the event writes the same key again.

The request path makes no call for this: the scorer reads what capture delivered.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.loading import MlopsConfig, deployed_config
from functions.common.layout import CAPTURE_PREFIX, DAY_PARTITION, shadow_key
from functions.common.observability import logger, metrics
from functions.ml.capture_lines import capture_records
from functions.serving.model import ServingModel, load_version, single_thread_session
from functions.shadow.scoring import SHADOW, ShadowModel, jsonl, shadow_records

_DAY = re.compile(re.escape(DAY_PARTITION) + r"(\d{4}-\d{2}-\d{2})/")


class NotACaptureObjectError(ValueError):
    """The event names an object outside `capture/`."""


def capture_day(key: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """The day partition of a capture object's key (`capture/dt=YYYY-MM-DD/...`), else today."""
    found = _DAY.search(key)
    return found.group(1) if found else now().strftime("%Y-%m-%d")


@dataclass
class ShadowScorer:
    """Scores capture objects with each model's shadow version; loaded versions are kept for
    the container's life and replaced when alias `shadow` moves."""

    config: MlopsConfig
    store: ObjectStore
    registry: ModelRegistry
    bucket: str
    _loaded: dict[str, ServingModel] = field(default_factory=dict)

    def score_object(self, key: str) -> dict[str, Any]:
        """Score the capture object at `key`; returns, per model, where its shadow records
        went and what became of the records (or why the model was not shadowed)."""
        if not key.startswith(CAPTURE_PREFIX):
            raise NotACaptureObjectError(
                f"{key!r} is not a capture object (under {CAPTURE_PREFIX}); nothing to shadow"
            )
        by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in capture_records(self.store.lines(self.bucket, key)):
            by_model[record["model_name"]].append(record)
        outcome: dict[str, Any] = {}
        for model, records in sorted(by_model.items()):
            outcome[model] = self._score_model(model, records, key)
        return {"capture_key": key, "models": outcome}

    def _score_model(self, model: str, records: list[dict[str, Any]], key: str) -> dict[str, Any]:
        if model not in self.config.models:
            return {"skipped": "not a configured model"}
        config = self.config.for_model(model)
        if not config.serving.shadow:
            return {"skipped": "[serving] shadow is off"}
        alias = self.registry.get_alias(model, SHADOW)
        if alias is None:
            return {"skipped": "alias shadow is not set"}
        loaded = self._load(model, alias.version, alias.revision)
        shadow = ShadowModel(
            version=loaded.version,
            signature=loaded.signature,
            specs=loaded.specs,
            session=loaded.session,
            sensitive=frozenset(config.dataset.sensitive),
        )
        written, counts = shadow_records(records, shadow)
        target = shadow_key(model, capture_day(key), key)
        if written:
            self.store.put_bytes(self.bucket, target, jsonl(written), content_type=JSONL)
        _count(model, counts.scored, counts.rows, counts.skipped)
        logger.info(
            "Capture object shadowed",
            extra={
                "model": model,
                "shadow_version": loaded.version,
                "capture_key": key,
                "shadow_key": target,
                "scored": counts.scored,
                "skipped": counts.skipped,
            },
        )
        return {
            "shadow_version": loaded.version,
            "shadow_key": target if written else None,
            "scored": counts.scored,
            "rows": counts.rows,
            "skipped": counts.skipped,
        }

    def _load(self, model: str, version: int, revision: int) -> ServingModel:
        current = self._loaded.get(model)
        if current is not None and current.version == version:
            return current
        loaded = load_version(
            model_name=model,
            version=version,
            registry=self.registry,
            fetch_bytes=lambda key: self.store.get_bytes(self.bucket, key),
            fetch_json=lambda key: self.store.get_json(self.bucket, key),
            session_factory=single_thread_session,
            alias=SHADOW,
            revision=revision,
        )
        self._loaded[model] = loaded
        return loaded


JSONL = "application/x-ndjson"


def _count(model: str, scored: int, rows: int, skipped: Mapping[str, int]) -> None:
    """One EMF line per figure with the `model` dimension: an object may hold several models."""
    for name, value in (
        ("ShadowScoredRequests", scored),
        ("ShadowScoredRows", rows),
        ("ShadowSkippedRequests", sum(skipped.values())),
    ):
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="model", value=model)


_scorer: ShadowScorer | None = None


def scorer() -> ShadowScorer:
    """The container's scorer (config, adapters and loaded versions kept warm)."""
    global _scorer
    if _scorer is None:
        from functions.common.settings import stage_settings

        settings = stage_settings()
        _scorer = ShadowScorer(
            config=deployed_config(),
            store=ObjectStore(),
            registry=ModelRegistry(settings.registry_table),
            bucket=settings.data_bucket,
        )
    return _scorer
