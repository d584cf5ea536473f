"""Aliases and their history in the registry table (keys:
`functions.common.layout`).

- alias: the version it points to and a `revision` that counts its moves.
- alias history: one item per move, in the order the moves happened (a revision number, not a
  clock, orders them). A dropped alias (`candidate` after its rollout) keeps counting: its next
  revision follows its last history item.

A move of an alias is one TransactWriteItems: the version must exist (and is marked promoted),
the alias must still be where the caller saw it, and the history item is new. Either all three
writes happen or none does; a caller that lost a race gets `StalePromotionError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from functions.adapters.registry.items import (
    ConditionFailed,
    ModelTable,
    attributes,
    item_key,
    now,
    translated,
)
from functions.adapters.registry.serving_reads import CANDIDATE as CANDIDATE
from functions.adapters.registry.serving_reads import PRODUCTION
from functions.common import formats
from functions.common.contracts import AliasChange, AliasState
from functions.common.errors import (
    ModelRegistryError,
    NothingToRollBackError,
    StalePromotionError,
    VersionNotFoundError,
)
from functions.common.layout import (
    alias_sort_key,
    history_prefix,
    history_sort_key,
    model_key,
    version_sort_key,
)

_MOVE_ATTEMPTS = 5


def _alias_state(fields: Mapping[str, Any]) -> AliasState:
    current = formats.read(formats.ALIAS_ITEM, fields)
    return AliasState.model_validate({k: current.get(k) for k in AliasState.model_fields})


def _alias_change(fields: Mapping[str, Any]) -> AliasChange:
    current = formats.read(formats.ALIAS_HISTORY_ITEM, fields)
    return AliasChange.model_validate(
        {**{k: current.get(k) for k in AliasChange.model_fields}, "kind": current["change"]}
    )


def change_at(changes: Sequence[AliasChange], when: datetime) -> AliasChange | None:
    """The move of an alias in force at `when` (time travel: which version held the alias
    then): the last of `changes` (a history, oldest first) made at or before `when`; None
    before the first. Its `to_version` is None when the alias had been dropped by then. A
    naive `when` is UTC."""
    moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    held = None
    for change in sorted(changes, key=lambda c: c.revision):
        if _moment(change.at) > moment:
            break
        held = change
    return held


def _moment(at: str) -> datetime:
    parsed = datetime.fromisoformat(at)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Aliases(ModelTable):
    """The aliases of the models of one registry table, and every move of each."""

    def get_alias(self, model: str, alias: str = PRODUCTION) -> AliasState | None:
        fields = self._get(model_key(model), alias_sort_key(alias))
        return _alias_state(fields) if fields else None

    def history(self, model: str, alias: str = PRODUCTION) -> list[AliasChange]:
        """Every move of the alias, oldest first."""
        items = self._query(model_key(model), history_prefix(alias))
        return [_alias_change(fields) for fields in items]

    def change_at(self, model: str, when: datetime, alias: str = PRODUCTION) -> AliasChange | None:
        """The move of the alias in force at `when` (`change_at` of its history)."""
        return change_at(self.history(model, alias), when)

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
                raise stale(model, alias, expected, actual)
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
                with translated("transact_write_items", self.table_name):
                    self._dynamodb.transact_write_items(
                        TransactItems=self._move_items(change, state)
                    )
            except ConditionFailed as failed:
                if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                    raise VersionNotFoundError(
                        f"{model} has no registered version {version}"
                    ) from None
                # The alias moved after it was read. If it is still where the caller expects
                # it (moved away and back), the expectation holds: try again.
                continue
            return change
        state = self.get_alias(model, alias)
        raise stale(model, alias, expected, state.version if state else None)

    def _next_revision(self, model: str, alias: str, state: AliasState | None) -> int:
        if state is not None:
            return state.revision + 1
        last = self._query(model_key(model), history_prefix(alias), newest_first=True, limit=1)
        return int(last[0]["revision"]) + 1 if last else 1

    def _move_items(self, change: AliasChange, state: AliasState | None) -> list[dict[str, Any]]:
        pk = model_key(change.model_name)
        assert change.to_version is not None
        alias_item = {
            **item_key(pk, alias_sort_key(change.alias)),
            "kind": {"S": "alias"},
            **attributes(
                formats.stamp(
                    formats.ALIAS_ITEM,
                    AliasState(
                        model_name=change.model_name,
                        alias=change.alias,
                        version=change.to_version,
                        previous_version=change.from_version,
                        updated_at=change.at,
                        execution=change.execution,
                        reason=change.reason,
                        revision=change.revision,
                    ).model_dump(mode="json"),
                )
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
        version_key = item_key(pk, version_sort_key(change.to_version))
        if change.alias == PRODUCTION:
            version_write: dict[str, Any] = {
                "Update": {
                    "TableName": self.table_name,
                    "Key": version_key,
                    "UpdateExpression": "SET promoted = :true, previous_version = :previous, "
                    "promoted_at = :at",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": attributes(
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
                    **item_key(
                        model_key(change.model_name),
                        history_sort_key(change.alias, change.revision),
                    ),
                    "kind": {"S": "alias_change"},
                    **attributes(
                        formats.stamp(
                            formats.ALIAS_HISTORY_ITEM, {**history, "change": change.kind}
                        )
                    ),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _drop_items(self, change: AliasChange, state: AliasState) -> list[dict[str, Any]]:
        return [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": item_key(model_key(change.model_name), alias_sort_key(change.alias)),
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
            raise stale(model, alias, expected, state.version if state else None)
        change = drop_change(state, reason, execution)
        try:
            with translated("transact_write_items", self.table_name):
                self._dynamodb.transact_write_items(TransactItems=self._drop_items(change, state))
        except ConditionFailed:
            state = self.get_alias(model, alias)
            raise stale(model, alias, expected, state.version if state else None) from None
        return change


def drop_change(
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


def stale(model: str, alias: str, expected: int | None, actual: int | None) -> StalePromotionError:
    def describe(version: int | None) -> str:
        return f"version {version}" if version is not None else "no version"

    return StalePromotionError(
        f"{alias} of {model} is {describe(actual)}, not {describe(expected)} as expected: "
        "another promotion or rollback changed it first; nothing was changed",
        expected=expected,
        actual=actual,
    )
