"""DynamoDB adapter for the registry table, model side (the dataset side is `registry.py`):

- training run: pk=`RUNS#<model>`, sk=`RUN#<run_id>`; run ids sort by time, so a reverse query
  lists the newest first. Every field of the run record is a top-level attribute.
- training set: pk=`RUNS#<model>`, sk=`TRAINSET#<training key>`; the run that trained on that
  set of data versions with that config and code (`functions.train.logic.training_key`).
- model version: pk=`MODEL#<model>`, sk=`VERSION#<version, 8 digits>`; written once
  (conditional put), never overwritten.
- version counter: pk=`MODEL#<model>`, sk=`COUNTER`; an atomic ADD hands out 1, 2, ... and a
  number is never handed out twice, even when a registration that took it failed.
- alias: pk=`MODEL#<model>`, sk=`ALIAS#<alias>`; the version it points to and a `revision`
  that counts its moves.
- alias history: pk=`MODEL#<model>`, sk=`HISTORY#<alias>#<revision, 8 digits>`; one item per
  move, in the order the moves happened (a revision number, not a clock, orders them). A
  dropped alias (`candidate` after its rollout) keeps counting: its next revision follows its
  last history item.
- serving stats of a rollout: pk=`MODEL#<model>`, sk=`STATS#<rollout, 8 digits>#<alias>#<version,
  8 digits>`; counters (requests, errors, latency sum and histogram) that the predict function
  ADDs to. The rollout is the revision of alias `candidate` that started it.
- rollout decision: pk=`MODEL#<model>`, sk=`ROLLOUT#<rollout, 8 digits>`; written once, in the
  transaction that promotes or drops the candidate, so a rollout is decided exactly once.

A move of an alias is one TransactWriteItems: the version must exist (and is marked promoted),
the alias must still be where the caller saw it, and the history item is new. Either all three
writes happen or none does; a caller that lost a race gets `StalePromotionError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from functions.adapters.table import RegistryTable
from functions.common.contracts import (
    LATENCY_BUCKETS_MS,
    AliasChange,
    AliasState,
    ModelVersion,
    RolloutDecision,
    ServingStats,
)
from functions.common.errors import (
    ModelRegistryError,
    NothingToRollBackError,
    RegistryError,
    RunNotFoundError,
    StalePromotionError,
    VersionExistsError,
    VersionNotFoundError,
)

PRODUCTION = "production"
CANDIDATE = "candidate"
RUN_PREFIX = "RUN#"
VERSION_PREFIX = "VERSION#"
COUNTER_SORT_KEY = "COUNTER"
ALIAS_PREFIX = "ALIAS#"
HISTORY_PREFIX = "HISTORY#"
STATS_PREFIX = "STATS#"
ROLLOUT_PREFIX = "ROLLOUT#"
TRAINSET_PREFIX = "TRAINSET#"
_KEY_ATTRIBUTES = frozenset({"pk", "sk", "kind"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"
_LOST_RACE = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
_MOVE_ATTEMPTS = 5
_LARGEST, _SMALLEST = 1e125, 1e-130
_EXACT_INTEGERS = 2**53

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def runs_key(model: str) -> str:
    return f"RUNS#{model}"


def model_key(model: str) -> str:
    return f"MODEL#{model}"


def version_sort_key(version: int) -> str:
    return f"{VERSION_PREFIX}{version:08d}"


def history_sort_key(alias: str, revision: int) -> str:
    return f"{HISTORY_PREFIX}{alias}#{revision:08d}"


def stats_sort_key(rollout: int, alias: str, version: int) -> str:
    return f"{STATS_PREFIX}{rollout:08d}#{alias}#{version:08d}"


def rollout_sort_key(rollout: int) -> str:
    return f"{ROLLOUT_PREFIX}{rollout:08d}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ConditionFailed(Exception):
    """A conditional write or a transaction was refused; `reasons` has one code per item of a
    transaction ("None" for the items that were fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


@contextmanager
def _translated(operation: str, table: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code == _CONDITION_FAILED:
            raise _ConditionFailed([code]) from exc
        if code == _TRANSACTION_CANCELED:
            reasons = [
                str(reason.get("Code", "None"))
                for reason in exc.response.get("CancellationReasons", [])
            ]
            if all(reason == "None" or reason in _LOST_RACE for reason in reasons):
                raise _ConditionFailed(reasons) from exc
        raise RegistryError(f"{operation} on table {table} failed: {code}: {exc}") from exc


def _storable(value: Any) -> Any:
    """JSON-like data as DynamoDB accepts it: floats become Decimals, except the ones DynamoDB
    cannot hold (NaN, infinities and beyond 1e125 become null; below 1e-130, zero); numpy
    scalars become numbers, tuples lists."""
    if isinstance(value, bool | str | Decimal) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number) or abs(number) >= _LARGEST:
            return None
        return Decimal(repr(number)) if abs(number) >= _SMALLEST else Decimal(0)
    if isinstance(value, Mapping):
        return {str(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return str(value)


def _plain(value: Any) -> Any:
    """The inverse of `_storable`: Decimals back to int (whole numbers that a float holds
    exactly) or float. DynamoDB keeps no difference between 1 and 1.0: 1.0 comes back as 1."""
    if isinstance(value, Decimal):
        whole = value == value.to_integral_value() and abs(value) < _EXACT_INTEGERS
        return int(value) if whole else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_storable(value)) for name, value in fields.items()}


def _fields(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _plain(_deserializer.deserialize(value))
        for name, value in item.items()
        if name not in _KEY_ATTRIBUTES
    }


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _alias_state(fields: Mapping[str, Any]) -> AliasState:
    return AliasState.model_validate({k: fields.get(k) for k in AliasState.model_fields})


def _alias_change(fields: Mapping[str, Any]) -> AliasChange:
    return AliasChange.model_validate(
        {**{k: fields.get(k) for k in AliasChange.model_fields}, "kind": fields["change"]}
    )


class ModelRegistry(RegistryTable):
    """Training runs, model versions and aliases of one registry table."""

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with _translated("get_item", self.table_name):
            response = self.dynamodb.get_item(
                TableName=self.table_name, Key=_key(pk, sk), ConsistentRead=True
            )
        item = response.get("Item")
        return _fields(item) if item else None

    def _query(
        self, pk: str, prefix: str, *, newest_first: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        found: list[dict[str, Any]] = []
        while limit is None or len(found) < limit:
            if limit is not None:
                query["Limit"] = limit - len(found)
            with _translated("query", self.table_name):
                page = self.dynamodb.query(**query)
            found.extend(_fields(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    # Training runs

    def put_run(self, run: Mapping[str, Any]) -> None:
        """Record a training run (`run_id` and `model_name` are required; any other JSON-like
        fields are kept as given). Writing the same run id again replaces the record."""
        run_id, model = run.get("run_id"), run.get("model_name")
        if not run_id or not model:
            raise ValueError("a run record needs `run_id` and `model_name`")
        fields = {name: value for name, value in run.items() if name not in _KEY_ATTRIBUTES}
        item = {
            **_key(runs_key(model), RUN_PREFIX + run_id),
            "kind": {"S": "training_run"},
            **_attributes(fields),
        }
        with _translated("put_item", self.table_name):
            self.dynamodb.put_item(TableName=self.table_name, Item=item)

    def update_run(self, model: str, run_id: str, **fields: Any) -> None:
        """Set `fields` on a recorded run (others are kept); `updated_at` is set too.

        Raises:
            RunNotFoundError: no run `run_id` is recorded for `model`.
        """
        reserved = (_KEY_ATTRIBUTES | {"run_id", "model_name"}) & fields.keys()
        if reserved:
            raise ValueError(f"cannot update key fields of a run: {sorted(reserved)}")
        fields.setdefault("updated_at", now())
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = _attributes({f":v{i}": value for i, value in enumerate(fields.values())})
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(names)))
        try:
            with _translated("update_item", self.table_name):
                self.dynamodb.update_item(
                    TableName=self.table_name,
                    Key=_key(runs_key(model), RUN_PREFIX + run_id),
                    UpdateExpression=f"SET {assignments}",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except _ConditionFailed:
            raise RunNotFoundError(f"no training run {run_id} is recorded for {model}") from None

    def get_run(self, model: str, run_id: str) -> dict[str, Any] | None:
        return self._get(runs_key(model), RUN_PREFIX + run_id)

    def list_runs(self, model: str, limit: int = 50) -> list[dict[str, Any]]:
        """The `limit` newest runs of `model`, newest first."""
        return self._query(runs_key(model), RUN_PREFIX, newest_first=True, limit=limit)

    def record_training_set(self, model: str, training_key: str, run_id: str) -> None:
        """Remember that run `run_id` trained on the training set `training_key`."""
        item = {
            **_key(runs_key(model), TRAINSET_PREFIX + training_key),
            "kind": {"S": "training_set"},
            **_attributes({"run_id": run_id, "recorded_at": now()}),
        }
        with _translated("put_item", self.table_name):
            self.dynamodb.put_item(TableName=self.table_name, Item=item)

    def judged_run_for(self, model: str, training_key: str) -> dict[str, Any] | None:
        """The run that trained on `training_key` and reached its outcome (registered, or
        rejected by the gate), or None: a run still in flight, or one whose evaluation or
        registration failed, does not count. Read with Query only: the train stage may not
        read single items."""
        found = self._query(runs_key(model), TRAINSET_PREFIX + training_key)
        if not found:
            return None
        run_id = str(found[0]["run_id"])
        runs = self._query(runs_key(model), RUN_PREFIX + run_id)
        judged = [
            r
            for r in runs
            if r.get("run_id") == run_id
            and (
                r.get("status") == "registered"
                or (r.get("status") == "evaluated" and r.get("gate_passed") is False)
            )
        ]
        return judged[0] if judged else None

    # Versions

    def allocate_version(self, model: str) -> int:
        """The next version number of `model` (1, 2, ...); atomic, never handed out twice."""
        with _translated("update_item", self.table_name):
            response = self.dynamodb.update_item(
                TableName=self.table_name,
                Key=_key(model_key(model), COUNTER_SORT_KEY),
                UpdateExpression="SET #kind = :kind ADD last_version :one",
                ExpressionAttributeNames={"#kind": "kind"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":kind": {"S": "version_counter"}},
                ReturnValues="UPDATED_NEW",
            )
        return int(response["Attributes"]["last_version"]["N"])

    def put_version(self, version: ModelVersion) -> None:
        """Register `version` once.

        Raises:
            VersionExistsError: that version number is already registered (nothing written).
        """
        item = {
            **_key(model_key(version.model_name), version_sort_key(version.version)),
            "kind": {"S": "model_version"},
            **_attributes(version.model_dump(mode="json")),
        }
        if not self.put_new(item):
            raise VersionExistsError(
                f"version {version.version} of {version.model_name} is already registered"
            )

    def get_version(self, model: str, version: int) -> ModelVersion | None:
        fields = self._get(model_key(model), version_sort_key(version))
        return _model_version(fields) if fields else None

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every registered version of `model`, oldest (1) first."""
        return [_model_version(f) for f in self._query(model_key(model), VERSION_PREFIX)]

    # Aliases

    def get_alias(self, model: str, alias: str = PRODUCTION) -> AliasState | None:
        fields = self._get(model_key(model), ALIAS_PREFIX + alias)
        return _alias_state(fields) if fields else None

    def history(self, model: str, alias: str = PRODUCTION) -> list[AliasChange]:
        """Every move of the alias, oldest first."""
        items = self._query(model_key(model), f"{HISTORY_PREFIX}{alias}#")
        return [_alias_change(fields) for fields in items]

    def promote(
        self,
        model: str,
        version: int,
        *,
        expected_current: int | None,
        reason: str,
        execution: str | None = None,
        alias: str = PRODUCTION,
    ) -> AliasChange:
        """Point `alias` at `version`, if it still points at `expected_current` (None: the
        alias does not exist yet); the move is recorded in the alias's history.

        Raises:
            StalePromotionError: the alias points elsewhere (`.actual`); nothing changed.
            VersionNotFoundError: `version` is not registered; nothing changed.
            ModelRegistryError: `version` is what the alias points to already.
        """
        return self._move(model, alias, version, expected_current, reason, execution, "promote")

    def rollback(
        self,
        model: str,
        *,
        reason: str,
        execution: str | None = None,
        alias: str = PRODUCTION,
    ) -> AliasChange:
        """Point `alias` back at the version it pointed to before the current one. History is a
        stack: promotions push, rollbacks pop, so rolling back twice after promoting 1, 2, 3
        lands on 1.

        Raises:
            NothingToRollBackError: the alias does not exist or has no earlier version.
            StalePromotionError: the alias moved while rolling back; nothing changed.
        """
        state = self.get_alias(model, alias)
        if state is None:
            raise NothingToRollBackError(f"{model} has no {alias} version to roll back from")
        lineage = _lineage(self.history(model, alias))
        if len(lineage) < 2 or lineage[-1] != state.version:
            raise NothingToRollBackError(
                f"{alias} of {model} is version {state.version} and has no earlier version "
                "in its history to roll back to"
            )
        return self._move(model, alias, lineage[-2], state.version, reason, execution, "rollback")

    def _move(
        self,
        model: str,
        alias: str,
        version: int,
        expected: int | None,
        reason: str,
        execution: str | None,
        kind: Literal["promote", "rollback"],
    ) -> AliasChange:
        for _ in range(_MOVE_ATTEMPTS):
            state = self.get_alias(model, alias)
            actual = state.version if state else None
            if actual != expected:
                raise _stale(model, alias, expected, actual)
            if actual == version:
                raise ModelRegistryError(f"version {version} of {model} is already {alias}")
            change = AliasChange(
                model_name=model,
                alias=alias,
                kind=kind,
                from_version=actual,
                to_version=version,
                at=now(),
                reason=reason,
                execution=execution,
                revision=self._next_revision(model, alias, state),
            )
            try:
                with _translated("transact_write_items", self.table_name):
                    self.dynamodb.transact_write_items(
                        TransactItems=self._move_items(change, state)
                    )
            except _ConditionFailed as failed:
                if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                    raise VersionNotFoundError(
                        f"{model} has no registered version {version}"
                    ) from None
                # The alias moved after it was read. If it is still where the caller expects
                # it (moved away and back), the expectation holds: try again.
                continue
            return change
        state = self.get_alias(model, alias)
        raise _stale(model, alias, expected, state.version if state else None)

    def _next_revision(self, model: str, alias: str, state: AliasState | None) -> int:
        if state is not None:
            return state.revision + 1
        last = self._query(
            model_key(model), f"{HISTORY_PREFIX}{alias}#", newest_first=True, limit=1
        )
        return int(last[0]["revision"]) + 1 if last else 1

    def _move_items(self, change: AliasChange, state: AliasState | None) -> list[dict[str, Any]]:
        pk = model_key(change.model_name)
        assert change.to_version is not None
        alias_item = {
            **_key(pk, ALIAS_PREFIX + change.alias),
            "kind": {"S": "alias"},
            **_attributes(
                AliasState(
                    model_name=change.model_name,
                    alias=change.alias,
                    version=change.to_version,
                    previous_version=change.from_version,
                    updated_at=change.at,
                    execution=change.execution,
                    reason=change.reason,
                    revision=change.revision,
                ).model_dump(mode="json")
            ),
            "change": {"S": change.kind},
        }
        if state is None:
            alias_write: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            alias_write = {
                "ConditionExpression": "#version = :expected AND #revision = :revision",
                "ExpressionAttributeNames": {"#version": "version", "#revision": "revision"},
                "ExpressionAttributeValues": {
                    ":expected": {"N": str(state.version)},
                    ":revision": {"N": str(state.revision)},
                },
            }
        version_key = _key(pk, version_sort_key(change.to_version))
        if change.alias == PRODUCTION:
            version_write: dict[str, Any] = {
                "Update": {
                    "TableName": self.table_name,
                    "Key": version_key,
                    "UpdateExpression": "SET promoted = :true, previous_version = :previous, "
                    "promoted_at = :at",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": _attributes(
                        {":true": True, ":previous": change.from_version, ":at": change.at}
                    ),
                }
            }
        else:
            # Another alias (a candidate) is not a promotion: the version must exist, that is all.
            version_write = {
                "ConditionCheck": {
                    "TableName": self.table_name,
                    "Key": version_key,
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        return [
            version_write,
            {"Put": {"TableName": self.table_name, "Item": alias_item, **alias_write}},
            self._history_item(change),
        ]

    def _history_item(self, change: AliasChange) -> dict[str, Any]:
        history = change.model_dump(mode="json", exclude={"kind"})
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    **_key(
                        model_key(change.model_name),
                        history_sort_key(change.alias, change.revision),
                    ),
                    "kind": {"S": "alias_change"},
                    **_attributes({**history, "change": change.kind}),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _drop_items(self, change: AliasChange, state: AliasState) -> list[dict[str, Any]]:
        return [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": _key(model_key(change.model_name), ALIAS_PREFIX + change.alias),
                    "ConditionExpression": "#version = :expected AND #revision = :revision",
                    "ExpressionAttributeNames": {"#version": "version", "#revision": "revision"},
                    "ExpressionAttributeValues": {
                        ":expected": {"N": str(state.version)},
                        ":revision": {"N": str(state.revision)},
                    },
                }
            },
            self._history_item(change),
        ]

    def drop_alias(
        self,
        model: str,
        alias: str,
        *,
        expected: int,
        reason: str,
        execution: str | None = None,
    ) -> AliasChange:
        """Remove `alias` if it still points at `expected`; recorded in its history as a
        `drop`. Production is never dropped (roll it back instead).

        Raises:
            StalePromotionError: the alias points elsewhere or is gone; nothing changed.
        """
        if alias == PRODUCTION:
            raise ModelRegistryError(f"{PRODUCTION} cannot be dropped; roll it back instead")
        state = self.get_alias(model, alias)
        if state is None or state.version != expected:
            raise _stale(model, alias, expected, state.version if state else None)
        change = _drop_change(state, reason, execution)
        try:
            with _translated("transact_write_items", self.table_name):
                self.dynamodb.transact_write_items(TransactItems=self._drop_items(change, state))
        except _ConditionFailed:
            state = self.get_alias(model, alias)
            raise _stale(model, alias, expected, state.version if state else None) from None
        return change

    # Rollouts

    def add_serving_stats(self, model: str, rollout: int, stats: ServingStats) -> None:
        """Add `stats` (what this container served since its last flush) to the rollout's
        counters of that alias and version; one atomic ADD, so containers never overwrite."""
        counters: dict[str, Any] = {
            "requests": stats.requests,
            "errors": stats.errors,
            "latency_ms_sum": round(stats.latency_ms_sum, 3),
        }
        counters.update(
            {f"latency_bucket_{i}": n for i, n in enumerate(stats.latency_histogram) if n}
        )
        fixed = {"kind": "serving_stats", "alias": stats.alias, "version": stats.version}
        names = {f"#s{i}": name for i, name in enumerate(fixed)}
        names.update({f"#a{i}": name for i, name in enumerate(counters)})
        values = _attributes(
            {
                **{f":s{i}": value for i, value in enumerate(fixed.values())},
                **{f":a{i}": value for i, value in enumerate(counters.values())},
            }
        )
        sets = ", ".join(f"#s{i} = :s{i}" for i in range(len(fixed)))
        adds = ", ".join(f"#a{i} :a{i}" for i in range(len(counters)))
        with _translated("update_item", self.table_name):
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key=_key(model_key(model), stats_sort_key(rollout, stats.alias, stats.version)),
                UpdateExpression=f"SET {sets} ADD {adds}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def serving_stats(self, model: str, rollout: int) -> list[ServingStats]:
        """The counters of every alias and version that served during `rollout`."""
        items = self._query(model_key(model), f"{STATS_PREFIX}{rollout:08d}#")
        return [_serving_stats(fields) for fields in items]

    def get_rollout_decision(self, model: str, rollout: int) -> RolloutDecision | None:
        fields = self._get(model_key(model), rollout_sort_key(rollout))
        return RolloutDecision.model_validate(fields) if fields else None

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
            raise _stale(model, CANDIDATE, decision.candidate_version, actual)
        changes: list[AliasChange] = []
        items: list[dict[str, Any]] = []
        if decision.outcome == "promote":
            production = self.get_alias(model, PRODUCTION)
            actual = production.version if production else None
            if actual != decision.production_version or actual == decision.candidate_version:
                raise _stale(model, PRODUCTION, decision.production_version, actual)
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
        drop = _drop_change(candidate, decision.reason, execution, at=decision.decided_at)
        changes.append(drop)
        items.extend(self._drop_items(drop, candidate))
        items.append(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        **_key(model_key(model), rollout_sort_key(decision.rollout)),
                        "kind": {"S": "rollout_decision"},
                        **_attributes(decision.model_dump(mode="json")),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        try:
            with _translated("transact_write_items", self.table_name):
                self.dynamodb.transact_write_items(TransactItems=items)
        except _ConditionFailed:
            raise StalePromotionError(
                f"rollout {decision.rollout} of {model} was concluded by another caller, or an "
                "alias moved meanwhile; nothing was changed",
                expected=decision.candidate_version,
            ) from None
        return changes


def _model_version(fields: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion.model_validate(
        {name: fields[name] for name in ModelVersion.model_fields if name in fields}
    )


def _drop_change(
    state: AliasState, reason: str, execution: str | None, at: str | None = None
) -> AliasChange:
    return AliasChange(
        model_name=state.model_name,
        alias=state.alias,
        kind="drop",
        from_version=state.version,
        to_version=None,
        at=at or now(),
        reason=reason,
        execution=execution,
        revision=state.revision + 1,
    )


def _serving_stats(fields: Mapping[str, Any]) -> ServingStats:
    buckets = len(LATENCY_BUCKETS_MS) + 1
    return ServingStats(
        alias=fields["alias"],
        version=int(fields["version"]),
        requests=int(fields.get("requests", 0)),
        errors=int(fields.get("errors", 0)),
        latency_ms_sum=float(fields.get("latency_ms_sum", 0)),
        latency_histogram=[int(fields.get(f"latency_bucket_{i}", 0)) for i in range(buckets)],
    )


def _lineage(changes: list[AliasChange]) -> list[int]:
    """The alias's versions as a stack: a promotion pushes, a rollback pops, a drop empties."""
    stack: list[int] = []
    for change in changes:
        if change.to_version is None:
            stack.clear()
        elif change.kind == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != change.to_version:
                stack.append(change.to_version)
        else:
            stack.append(change.to_version)
    return stack


def _stale(model: str, alias: str, expected: int | None, actual: int | None) -> StalePromotionError:
    def describe(version: int | None) -> str:
        return f"version {version}" if version is not None else "no version"

    return StalePromotionError(
        f"{alias} of {model} is {describe(actual)}, not {describe(expected)} as expected: "
        "another promotion or rollback changed it first; nothing was changed",
        expected=expected,
        actual=actual,
    )
