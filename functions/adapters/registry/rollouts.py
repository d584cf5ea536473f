"""Rollouts in the registry table (keys: `functions.common.layout`).

- serving stats of a rollout: counters (requests, errors, latency sum and histogram, the sums of
  log-latency) that the canary function ADDs to from capture objects, each object once (its
  marker is written in the same transaction). The rollout is the revision of alias
  `candidate` that started it.
- rollout decision: written once, in the transaction that promotes or drops the candidate, so a
  rollout is decided exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from functions.adapters.registry.aliases import (
    CANDIDATE,
    PRODUCTION,
    Aliases,
    drop_change,
    stale,
)
from functions.adapters.registry.items import (
    ConditionFailed,
    InPlaceStamp,
    attributes,
    item_key,
    translated,
)
from functions.common import formats
from functions.common.contracts import (
    LATENCY_BUCKETS_MS,
    AliasChange,
    RolloutDecision,
    ServingStats,
)
from functions.common.errors import RegistryError, StalePromotionError
from functions.common.layout import (
    TTL_ATTRIBUTE,
    counted_sort_key,
    model_key,
    rollout_sort_key,
    stats_prefix,
    stats_sort_key,
)

COUNT_ATTEMPTS = 4
"""Tries of one capture object's counting transaction while other objects' hold its counters."""


class Rollouts(Aliases):
    """The rollouts of a candidate: what each alias and version served, and the decision."""

    def count_capture_object(
        self,
        model: str,
        object_key: str,
        counts: Mapping[int, list[ServingStats]],
        *,
        expires_at: int,
    ) -> bool:
        """Add what capture object `object_key` holds of `model` (`counts`: per rollout, each
        alias and version's stats) to the rollouts' counters, and record the object as counted
        (its marker expires at `expires_at`, epoch seconds): one transaction, so a redelivered
        object adds nothing. Returns False when it was counted already.

        Raises:
            FormatVersionError: a counter was written by a newer release (nothing changed).
        """
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        **item_key(model_key(model), counted_sort_key(object_key)),
                        "kind": {"S": "capture_counted"},
                        TTL_ATTRIBUTE: {"N": str(expires_at)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        for rollout, served in sorted(counts.items()):
            items.extend(self._counter_update(model, rollout, stats) for stats in served)
        for attempt in range(COUNT_ATTEMPTS):
            try:
                with translated("transact_write_items", self.table_name):
                    self._dynamodb.transact_write_items(TransactItems=items)
                return True
            except ConditionFailed as failed:
                if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                    return False
                if "ConditionalCheckFailed" in failed.reasons:
                    raise InPlaceStamp(formats.SERVING_STATS_ITEM).refused() from None
                # Another object's transaction held a counter: nothing was written, try again.
                if attempt == COUNT_ATTEMPTS - 1:
                    raise RegistryError(
                        f"counting {object_key} for {model}: the counters stayed in conflict "
                        f"with other writers after {COUNT_ATTEMPTS} attempts"
                    ) from None
                time.sleep(0.05 * 2**attempt)
        return True

    def _counter_update(self, model: str, rollout: int, stats: ServingStats) -> dict[str, Any]:
        """The transaction item that ADDs `stats` to the counters of its alias and version."""
        counters: dict[str, Any] = {
            "requests": stats.requests,
            "errors": stats.errors,
            "latency_ms_sum": round(stats.latency_ms_sum, 3),
            "latency_count": stats.latency_count,
            "log_latency_sum": round(stats.log_latency_sum, 9),
            "log_latency_sq_sum": round(stats.log_latency_sq_sum, 9),
            "labeled": stats.labeled,
            "misses": stats.misses,
            "log_abs_error_sum": round(stats.log_abs_error_sum, 9),
            "log_abs_error_sq_sum": round(stats.log_abs_error_sq_sum, 9),
        }
        counters.update(
            {f"latency_bucket_{i}": n for i, n in enumerate(stats.latency_histogram) if n}
        )
        fixed = {"kind": "serving_stats", "alias": stats.alias, "version": stats.version}
        stamp = InPlaceStamp(formats.SERVING_STATS_ITEM)
        names = {f"#s{i}": name for i, name in enumerate(fixed)} | stamp.names
        names.update({f"#a{i}": name for i, name in enumerate(counters)})
        values = (
            attributes(
                {
                    **{f":s{i}": value for i, value in enumerate(fixed.values())},
                    **{f":a{i}": value for i, value in enumerate(counters.values())},
                }
            )
            | stamp.values
        )
        sets = ", ".join([*(f"#s{i} = :s{i}" for i in range(len(fixed))), stamp.assignment])
        adds = ", ".join(f"#a{i} :a{i}" for i in range(len(counters)))
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": item_key(
                    model_key(model), stats_sort_key(rollout, stats.alias, stats.version)
                ),
                "UpdateExpression": f"SET {sets} ADD {adds}",
                "ConditionExpression": stamp.condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def serving_stats(self, model: str, rollout: int) -> list[ServingStats]:
        """The counters of every alias and version that served during `rollout`."""
        items = self._query(model_key(model), stats_prefix(rollout))
        return [_serving_stats(fields) for fields in items]

    def get_rollout_decision(self, model: str, rollout: int) -> RolloutDecision | None:
        fields = self._get(model_key(model), rollout_sort_key(rollout))
        if not fields:
            return None
        current = formats.read(formats.ROLLOUT_DECISION_ITEM, fields)
        return RolloutDecision.model_validate(
            {name: current[name] for name in RolloutDecision.model_fields if name in current}
        )

    def conclude_rollout(
        self, decision: RolloutDecision, *, execution: str | None = None
    ) -> list[AliasChange]:
        """Promote the candidate to production or drop it, as `decision` says, and record the
        decision: one transaction, so exactly one caller concludes a rollout. Either way alias
        `candidate` is removed (a `drop` in its history); a promotion is a `promote` in the
        production history. Returns the changes made (production's first).

        Raises:
            StalePromotionError: the rollout was concluded already, or an alias moved since
                `decision` was made (`candidate` is another version or revision, production is
                not `decision.production_version`); nothing changed.
        """
        model = decision.model_name
        candidate = self.get_alias(model, CANDIDATE)
        if (
            candidate is None
            or candidate.revision != decision.rollout
            or candidate.version != decision.candidate_version
        ):
            actual = candidate.version if candidate else None
            raise stale(model, CANDIDATE, decision.candidate_version, actual)
        changes: list[AliasChange] = []
        items: list[dict[str, Any]] = []
        if decision.outcome == "promote":
            production = self.get_alias(model, PRODUCTION)
            actual = production.version if production else None
            if actual != decision.production_version or actual == decision.candidate_version:
                raise stale(model, PRODUCTION, decision.production_version, actual)
            promotion = AliasChange(
                model_name=model,
                alias=PRODUCTION,
                kind="promote",
                from_version=actual,
                to_version=decision.candidate_version,
                at=decision.decided_at,
                reason=decision.reason,
                execution=execution,
                revision=self._next_revision(model, PRODUCTION, production),
            )
            changes.append(promotion)
            items.extend(self._move_items(promotion, production))
        drop = drop_change(candidate, decision.reason, execution, at=decision.decided_at)
        changes.append(drop)
        items.extend(self._drop_items(drop, candidate))
        items.append(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        **item_key(model_key(model), rollout_sort_key(decision.rollout)),
                        "kind": {"S": "rollout_decision"},
                        **attributes(
                            formats.stamp(
                                formats.ROLLOUT_DECISION_ITEM, decision.model_dump(mode="json")
                            )
                        ),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        try:
            with translated("transact_write_items", self.table_name):
                self._dynamodb.transact_write_items(TransactItems=items)
        except ConditionFailed:
            raise StalePromotionError(
                f"rollout {decision.rollout} of {model} was concluded by another caller, or an "
                "alias moved meanwhile; nothing was changed",
                expected=decision.candidate_version,
            ) from None
        return changes


def _serving_stats(stored: Mapping[str, Any]) -> ServingStats:
    fields = formats.read(formats.SERVING_STATS_ITEM, stored)
    buckets = len(LATENCY_BUCKETS_MS) + 1
    return ServingStats(
        alias=fields["alias"],
        version=int(fields["version"]),
        requests=int(fields.get("requests", 0)),
        errors=int(fields.get("errors", 0)),
        latency_ms_sum=float(fields.get("latency_ms_sum", 0)),
        latency_histogram=[int(fields.get(f"latency_bucket_{i}", 0)) for i in range(buckets)],
        latency_count=int(fields.get("latency_count", 0)),
        log_latency_sum=float(fields.get("log_latency_sum", 0)),
        log_latency_sq_sum=float(fields.get("log_latency_sq_sum", 0)),
        labeled=int(fields.get("labeled", 0)),
        misses=int(fields.get("misses", 0)),
        log_abs_error_sum=float(fields.get("log_abs_error_sum", 0)),
        log_abs_error_sq_sum=float(fields.get("log_abs_error_sq_sum", 0)),
    )
