"""Safe rollout of alias `candidate`: a share of requests is served by it while counters of both
versions are kept in the registry; once it has served enough requests (or ran long enough) it is
promoted to production if it did no worse than production over the same window, else dropped.

The rules (`judge`), with production's numbers over the same rollout:

- error rate: candidate <= production + `ERROR_RATE_TOLERANCE` (1 percentage point, so a
  single unlucky failure in a few hundred requests does not sink an otherwise equal model);
- mean latency: candidate <= production x `LATENCY_RATIO` (1.2: within 20 %);
- a candidate that served no request in `candidate_max_minutes` is dropped (nothing shows it
  is safe); when production served none, only the candidate's error rate is judged (against
  the tolerance alone).

Errors are model failures (the 5xx a version causes), never a client's 4xx: requests refused
before scoring are not counted at all. Latency is the scoring time, the part a version decides.

`StatsBuffer` counts in memory (microseconds per request); `conclude` is the adapter call that
reads the counters and records the decision, once, through the registry's transaction.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from functions.adapters.events import publish_model_promoted
from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.items import now
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.serving import ServingConfig
from functions.common.contracts import (
    LATENCY_BUCKETS_MS,
    AliasChange,
    RolloutDecision,
    ServingStats,
)
from functions.common.errors import (
    AdapterError,
    EventPublishError,
    ModelRegistryError,
    StalePromotionError,
)
from functions.common.events import model_promoted_detail
from functions.common.observability import logger

ERROR_RATE_TOLERANCE = 0.01
LATENCY_RATIO = 1.2
DECIDED_BY = "predict:rollout"


@dataclass(frozen=True)
class RolloutPolicy:
    """How much traffic a candidate gets and when it is judged (`[serving]` of the config)."""

    share: float = 0.0
    min_requests: int = 1_000
    max_minutes: int = 60

    @classmethod
    def from_serving(cls, serving: ServingConfig) -> RolloutPolicy:
        return cls(
            share=serving.candidate_share,
            min_requests=serving.candidate_min_requests,
            max_minutes=serving.candidate_max_minutes,
        )

    @property
    def active(self) -> bool:
        return self.share > 0


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["promote", "drop"]
    reason: str


def due(
    candidate: ServingStats | None, *, started_at: datetime, at: datetime, policy: RolloutPolicy
) -> bool:
    """Whether the rollout is to be judged now: enough requests, or time is up."""
    served = candidate.requests if candidate else 0
    return served >= policy.min_requests or at - started_at >= timedelta(minutes=policy.max_minutes)


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def judge(candidate: ServingStats | None, production: ServingStats | None) -> Verdict:
    """Promote or drop, by the rules above; the reason says which numbers decided."""
    if candidate is None or not candidate.requests:
        return Verdict("drop", "rollout: the candidate served no request in time; dropped")
    rate = candidate.error_rate or 0.0
    latency = candidate.mean_latency_ms or 0.0
    base_rate = production.error_rate if production else None
    base_latency = production.mean_latency_ms if production else None
    served = f"over {candidate.requests} candidate requests"
    if production and production.requests:
        served += f" and {production.requests} production requests"
    problems: list[str] = []
    allowed = (base_rate or 0.0) + ERROR_RATE_TOLERANCE
    rates = f"error rate {_percent(rate)} vs {_percent(base_rate or 0.0)}"
    if rate > allowed:
        problems.append(f"{rates} (allowed {_percent(allowed)})")
    latencies = f"mean latency {latency:.2f} ms vs {(base_latency or 0.0):.2f} ms"
    if base_latency is not None and latency > base_latency * LATENCY_RATIO:
        problems.append(f"{latencies} (allowed x{LATENCY_RATIO})")
    version = f"candidate version {candidate.version}"
    if problems:
        return Verdict("drop", f"rollout: {version} dropped: {'; '.join(problems)}, {served}")
    return Verdict(
        "promote", f"rollout: {version} promoted: {rates}, {latencies}, {served}; no worse"
    )


def conclude(
    registry: ModelRegistry,
    model: str,
    *,
    rollout: int,
    candidate_version: int,
    production_version: int | None,
    started_at: datetime,
    at: datetime,
    policy: RolloutPolicy,
) -> list[AliasChange] | None:
    """Judge the rollout if due and record the outcome; returns the alias changes made, None
    when not due, or [] when another container decided first (or an alias moved)."""
    stats = {(s.alias, s.version): s for s in registry.serving_stats(model, rollout)}
    candidate = stats.get((CANDIDATE, candidate_version))
    if not due(candidate, started_at=started_at, at=at, policy=policy):
        return None
    production = (
        stats.get((PRODUCTION, production_version)) if production_version is not None else None
    )
    verdict = judge(candidate, production)
    decision = RolloutDecision(
        model_name=model,
        rollout=rollout,
        outcome=verdict.outcome,
        candidate_version=candidate_version,
        production_version=production_version,
        reason=verdict.reason,
        candidate=candidate or ServingStats(alias=CANDIDATE, version=candidate_version),
        production=production,
        decided_at=now(),
    )
    try:
        changes = registry.conclude_rollout(decision, execution=DECIDED_BY)
    except StalePromotionError:
        return []
    _announce(registry, model, changes)
    return changes


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


class StatsBuffer:
    """Requests counted in memory until the next flush, per (rollout, alias, version)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, int], list[float]] = {}
        self.pending = 0

    def add(self, rollout: int, alias: str, version: int, latency_ms: float, failed: bool) -> None:
        key = (rollout, alias, version)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0.0] * (3 + len(LATENCY_BUCKETS_MS) + 1)
        counts[0] += 1
        counts[1] += failed
        counts[2] += latency_ms
        counts[3 + bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        self.pending += 1

    def drain(self) -> list[tuple[int, ServingStats]]:
        """Everything counted since the last drain, emptied."""
        counts, self._counts, self.pending = self._counts, {}, 0
        return [
            (
                rollout,
                ServingStats(
                    alias=alias,
                    version=version,
                    requests=int(values[0]),
                    errors=int(values[1]),
                    latency_ms_sum=values[2],
                    latency_histogram=[int(n) for n in values[3:]],
                ),
            )
            for (rollout, alias, version), values in counts.items()
        ]
