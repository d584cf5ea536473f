"""The drift monitor's state in the registry table: pk=`MONITOR#<model>`, sk=`STATE`, with
`last_check_end` (where the next check's window starts), `last_check_id`, and
`last_retrain_at` / `last_retrain_check` (the cooldown). Claiming a retraining is one
conditional update, so two checks racing cannot both start one inside the cooldown."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.adapters.registry.items import fields_of
from functions.adapters.table import RegistryTable
from functions.common import formats
from functions.common.errors import RegistryError
from functions.common.layout import STATE_SORT_KEY, monitor_key

_STAMP = {":format_version": {"N": str(formats.current(formats.MONITOR_STATE_ITEM))}}
"""What an update of the state sets `format_version` to: the state is read (`load`, which
refuses a newer release's item) before every check writes it."""


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class MonitorState:
    last_check_end: datetime | None = None
    last_check_id: str | None = None
    last_retrain_at: datetime | None = None
    last_retrain_check: str | None = None


class MonitorStore:
    def __init__(self, table: RegistryTable, model: str) -> None:
        self.table = table
        self.key = {"pk": {"S": monitor_key(model)}, "sk": {"S": STATE_SORT_KEY}}

    def load(self) -> MonitorState:
        stored = self.table.get(self.key)
        item = formats.read(formats.MONITOR_STATE_ITEM, fields_of(stored)) if stored else {}

        def text(name: str) -> str | None:
            value = item.get(name)
            return str(value) if value is not None else None

        def moment(name: str) -> datetime | None:
            value = text(name)
            return parse_iso(value) if value else None

        return MonitorState(
            last_check_end=moment("last_check_end"),
            last_check_id=text("last_check_id"),
            last_retrain_at=moment("last_retrain_at"),
            last_retrain_check=text("last_retrain_check"),
        )

    def record_check(self, check_id: str, end: datetime) -> None:
        """The next check's window starts at `end` (never moved backwards)."""
        # False: a later check recorded already.
        self.table.update(
            self.key,
            "SET last_check_end = :end, last_check_id = :id, kind = :kind, "
            "format_version = :format_version",
            ConditionExpression="attribute_not_exists(last_check_end) OR last_check_end < :end",
            ExpressionAttributeValues={
                ":end": {"S": iso(end)},
                ":id": {"S": check_id},
                ":kind": {"S": "monitor"},
                **_STAMP,
            },
        )

    def claim_retrain(self, check_id: str, now: datetime, cooldown: timedelta) -> bool:
        """Record a retraining at `now` unless one was recorded within `cooldown`; False when
        the cooldown holds (nothing written)."""
        return self.table.update(
            self.key,
            "SET last_retrain_at = :now, last_retrain_check = :id, kind = :kind, "
            "format_version = :format_version",
            ConditionExpression="attribute_not_exists(last_retrain_at) OR "
            "last_retrain_at <= :cutoff",
            ExpressionAttributeValues={
                ":now": {"S": iso(now)},
                ":cutoff": {"S": iso(now - cooldown)},
                ":id": {"S": check_id},
                ":kind": {"S": "monitor"},
                **_STAMP,
            },
        )

    def release_retrain(self, check_id: str, previous: MonitorState) -> None:
        """Undo `claim_retrain` of `check_id` (its event could not be published)."""
        values = {":id": {"S": check_id}}
        if previous.last_retrain_at is None:
            update = "REMOVE last_retrain_at, last_retrain_check"
        else:
            update = "SET last_retrain_at = :at, last_retrain_check = :previous"
            values[":at"] = {"S": iso(previous.last_retrain_at)}
            values[":previous"] = {"S": previous.last_retrain_check or ""}
        # False: a later claim won; the cooldown it set stands. A failed write is let go too.
        with contextlib.suppress(RegistryError):
            self.table.update(
                self.key,
                update,
                ConditionExpression="last_retrain_check = :id",
                ExpressionAttributeValues=values,
            )
