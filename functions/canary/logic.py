"""The canary function's work for one capture object, or one feedback record of a model that
tests accuracy (`[serving] canary_accuracy`): count it into the rollouts' counters (once), then
judge every configured model's running rollout with the sequential test
(`functions.ml.sequential`) and conclude the decided ones through the registry's transaction.

Order and repeats: the counters and the object's marker are one transaction per model, so a
redelivered object adds nothing; judging reads the counters as they are and is safe to repeat
(a rollout is concluded once: `conclude_rollout` refuses a second decision). Every object
judges every model with a candidate, not only those in the object: that is what checks
`candidate_max_minutes` (a rollout whose model serves no captured request at all waits for
the next capture object of any model).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.adapters.events import publish_model_promoted
from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.items import now
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.canary.counting import count_feedback, count_lines, counts_of
from functions.common.config.dataset import Task
from functions.common.config.loading import MlopsConfig
from functions.common.config.serving import ServingConfig
from functions.common.contracts import (
    AliasChange,
    RolloutDecision,
    SequentialTestRecord,
    ServingStats,
)
from functions.common.errors import (
    AdapterError,
    EventPublishError,
    ModelRegistryError,
    StalePromotionError,
)
from functions.common.events import model_promoted_detail
from functions.common.layout import CAPTURE_PREFIX, FEEDBACK_PREFIX
from functions.common.observability import logger
from functions.ml.sequential import Canary, Decision, decide

DECIDED_BY = "canary:sequential-test"
COUNTED_MARKER_DAYS = 30
"""How long a counted object's marker is kept: far past any redelivery of its event."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def canary_of(serving: ServingConfig, *, classification: bool = True) -> Canary:
    return Canary(
        alpha=serving.canary_alpha,
        power=serving.canary_power,
        min_effect_error_rate=serving.canary_min_effect_error_rate,
        min_effect_latency=serving.canary_min_effect_latency,
        accuracy=serving.canary_accuracy,
        classification=classification,
        min_effect_accuracy=serving.canary_min_effect_accuracy,
        min_effect_abs_error=serving.canary_min_effect_abs_error,
    )


@dataclass
class CanaryService:
    config: MlopsConfig
    bucket: str
    registry: ModelRegistry
    lines: Callable[[str], Iterable[bytes]]
    """A capture object's lines, by key."""
    document: Callable[[str], Any] = field(default=lambda key: None)
    """A JSON object (a feedback record), by key."""
    clock: Callable[[], datetime] = field(default_factory=lambda: utcnow)

    @classmethod
    def create(cls, config: MlopsConfig, bucket: str, table_name: str) -> CanaryService:
        objects = ObjectStore()
        return cls(
            config=config,
            bucket=bucket,
            registry=ModelRegistry(table_name),
            lines=lambda key: objects.lines(bucket, key),
            document=lambda key: _json_or_none(objects.get_bytes(bucket, key)),
        )


def _json_or_none(body: bytes) -> Any:
    """A JSON document, None when the body is not JSON (it is then skipped as not countable)."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def handle_object(svc: CanaryService, key: str) -> dict[str, Any]:
    """Count capture object or feedback record `key` and judge the running rollouts; returns
    a summary (counted models, skipped lines, decisions)."""
    if key.startswith(CAPTURE_PREFIX):
        counts = count_lines(svc.lines(key))
    elif key.startswith(FEEDBACK_PREFIX):
        counts = count_feedback(svc.document(key), lambda model: _classifier(svc, model))
    else:
        raise ValueError(
            f"{key!r} is neither a capture object (under {CAPTURE_PREFIX}) nor a feedback "
            f"record (under {FEEDBACK_PREFIX})"
        )
    if counts.skipped:
        logger.warning(
            "Records skipped (not countable)", extra={"key": key, "skipped": counts.skipped}
        )
    expires_at = int(time.time()) + COUNTED_MARKER_DAYS * 86_400
    counted: dict[str, bool] = {}
    for model, per_rollout in counts.by_model().items():
        if model not in svc.config.models:
            logger.warning("Records of a model not configured; not counted", extra={"model": model})
            continue
        counted[model] = svc.registry.count_capture_object(
            model, key, per_rollout, expires_at=expires_at
        )
        if not counted[model]:
            logger.info("Object counted already", extra={"key": key, "model": model})
    decisions = [
        decision.model_dump(mode="json")
        for model in svc.config.model_names
        if (decision := judge(svc, model)) is not None
    ]
    return {"key": key, "counted": counted, "skipped": counts.skipped, "decisions": decisions}


def _classifier(svc: CanaryService, model: str) -> bool | None:
    """Whether `model` is a classifier; None when its labels are not counted (not configured,
    or its rollouts do not test accuracy)."""
    if model not in svc.config.models:
        return None
    config = svc.config.for_model(model)
    if not config.serving.canary_accuracy:
        return None
    return config.dataset.task == Task.CLASSIFICATION


def judge(svc: CanaryService, model: str) -> RolloutDecision | None:
    """Run `model`'s rollout test now; conclude the rollout when it decided (or its time is
    up). Returns the recorded decision, None when nothing was concluded (no rollout, still
    undecided, or another caller concluded it first)."""
    config = svc.config.for_model(model)
    serving = config.serving
    if serving.candidate_share <= 0:
        return None  # the predict function routes nothing to a candidate: nothing to judge
    candidate = svc.registry.get_alias(model, CANDIDATE)
    if candidate is None:
        return None
    production = svc.registry.get_alias(model, PRODUCTION)
    if production is not None and production.version == candidate.version:
        return None  # predict serves it as production: no rollout runs
    stats = {(s.alias, s.version): s for s in svc.registry.serving_stats(model, candidate.revision)}
    served = stats.get((CANDIDATE, candidate.version))
    baseline = stats.get((PRODUCTION, production.version)) if production else None
    at = svc.clock()
    started = datetime.fromisoformat(candidate.updated_at)
    expired = at - started >= timedelta(minutes=serving.candidate_max_minutes)
    decision = decide(
        canary_of(serving, classification=config.dataset.task == Task.CLASSIFICATION),
        counts_of(served),
        counts_of(baseline),
        expired=expired,
        min_requests=serving.candidate_min_requests,
    )
    if decision.outcome == "continue":
        return None
    record = RolloutDecision(
        model_name=model,
        rollout=candidate.revision,
        outcome="promote" if decision.outcome == "promote" else "drop",
        candidate_version=candidate.version,
        production_version=production.version if production else None,
        reason=_reason(candidate.version, decision),
        candidate=served or ServingStats(alias=CANDIDATE, version=candidate.version),
        production=baseline,
        decided_at=now(),
        tests=[SequentialTestRecord.model_validate(t.as_record()) for t in decision.tests],
        expired=decision.expired,
    )
    try:
        changes = svc.registry.conclude_rollout(record, execution=DECIDED_BY)
    except StalePromotionError:
        logger.info("Rollout concluded by another caller", extra={"model": model})
        return None
    logger.info(
        "Rollout concluded",
        extra={"model": model, "rollout": record.rollout, "outcome": record.outcome},
    )
    _announce(svc.registry, model, changes)
    return record


def _reason(version: int, decision: Decision) -> str:
    """The alias history's reason: the outcome, then each test's statistic, boundaries and
    sample sizes (`mlops models history` shows it)."""
    verb = "promoted" if decision.outcome == "promote" else "dropped"
    return f"rollout: candidate version {version} {verb}: {decision.reason}"


def _announce(registry: ModelRegistry, model: str, changes: list[AliasChange]) -> None:
    """`ModelPromoted` for a candidate that became production, as the pipeline and the CLI
    publish it; the alias has moved already, so a failed publish is logged, not raised."""
    for change in changes:
        if change.alias != PRODUCTION or change.kind != "promote" or change.to_version is None:
            continue
        try:
            version = registry.get_version(model, change.to_version)
            publish_model_promoted(
                model_promoted_detail(
                    change,
                    metrics=version.metrics if version else {},
                    run_id=version.run_id if version else None,
                )
            )
        except (EventPublishError, ModelRegistryError, AdapterError) as exc:
            logger.error("ModelPromoted not published after the rollout", extra={"error": str(exc)})
