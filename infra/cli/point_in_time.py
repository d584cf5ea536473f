"""The registry table restored from point-in-time recovery into a new table, with AWS APIs only
(the same on AWS and on the local cloud); `mlops restore` is the command.

A restore never touches the table it restores from. The new table is named
`<table>-restored-<UTC stamp>` and gets what a DynamoDB restore does not carry over: point-in-time
recovery, time to live, deletion protection and the table's own tags. It is encrypted like the
source: with the same customer-managed KMS key, else the AWS managed key, else an AWS owned
key. The stack switches to it through `[stages.<stage>] registry_table` (docs/deploy.md,
"Restore the registry").

Moto restores the table's items as they are now, whatever the time asked for, and reports a
restorable window that ends when recovery was enabled: on the local cloud the drill is
exercised up to the switch, not the choice of the point in time.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RESTORED_SUFFIX = re.compile(r"-restored-\d{8}T\d{6}Z$")
WAIT_SECONDS = 15
TABLE_NAME_MAX = 255


class RestoreError(Exception):
    """The restore cannot be done as asked; one sentence for the user."""


LATEST = "latest"


def parse_time(value: str) -> datetime.datetime | None:
    """An ISO 8601 time with a UTC offset (`2026-12-02T06:00:00Z`), as UTC; None for
    `latest`, the latest restorable time."""
    if value == LATEST:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise RestoreError(
            f"--to {value!r} is not an ISO 8601 time (e.g. 2026-12-02T06:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise RestoreError(f"--to {value!r} has no UTC offset: write it as {value}Z for UTC")
    return when.astimezone(datetime.UTC)


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """The times a table can be restored to (`DescribeContinuousBackups`)."""

    table: str
    earliest: datetime.datetime
    latest: datetime.datetime

    def check(self, when: datetime.datetime) -> None:
        if not self.earliest <= when <= self.latest:
            raise RestoreError(
                f"{_iso(when)} is outside the restorable window of table {self.table}: "
                f"{_iso(self.earliest)} to {_iso(self.latest)}"
            )

    def describe(self) -> str:
        return f"{_iso(self.earliest)} to {_iso(self.latest)}"


def restorable_window(dynamodb: Any, table: str) -> Window:
    description = dynamodb.describe_continuous_backups(TableName=table)
    recovery = description["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    if recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise RestoreError(
            f"point-in-time recovery is not enabled on table {table}: there is nothing to "
            "restore from"
        )
    return Window(
        table=table,
        earliest=_utc(recovery["EarliestRestorableDateTime"]),
        latest=_utc(recovery["LatestRestorableDateTime"]),
    )


def _utc(value: Any) -> datetime.datetime:
    if isinstance(value, int | float):
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    when: datetime.datetime = value
    return when.astimezone(datetime.UTC)


def restored_name(table: str, now: datetime.datetime) -> str:
    """`<table>-restored-<stamp>`; a table restored before is named after its origin."""
    base = RESTORED_SUFFIX.sub("", table)
    suffix = f"-restored-{now.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}"
    return base[: TABLE_NAME_MAX - len(suffix)] + suffix


def encryption(dynamodb: Any, kms: Any, table: str) -> dict[str, Any]:
    """The `SSESpecificationOverride` that encrypts the restored table like `table`."""
    described = dynamodb.describe_table(TableName=table)["Table"].get("SSEDescription") or {}
    if described.get("Status") not in ("ENABLED", "ENABLING") or not described.get(
        "KMSMasterKeyArn"
    ):
        return {"Enabled": False}
    key = described["KMSMasterKeyArn"]
    manager = kms.describe_key(KeyId=key)["KeyMetadata"].get("KeyManager")
    if manager == "CUSTOMER":
        return {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
    return {"Enabled": True, "SSEType": "KMS"}


@dataclass(frozen=True)
class Plan:
    source: str
    target: str
    to: datetime.datetime
    window: Window
    sse: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "to": _iso(self.to),
            "window": {"earliest": _iso(self.window.earliest), "latest": _iso(self.window.latest)},
            "encryption": self.sse,
        }


@dataclass(frozen=True)
class Restored:
    plan: Plan
    source_items: int
    restored_items: int
    settings: tuple[str, ...]
    """What was set on the new table besides its items (recovery, TTL, ...)."""

    def as_json(self) -> dict[str, Any]:
        return {
            **self.plan.as_json(),
            "source_items": self.source_items,
            "restored_items": self.restored_items,
            "settings": list(self.settings),
        }


def plan(
    dynamodb: Any, kms: Any, table: str, to: datetime.datetime | None, now: datetime.datetime
) -> Plan:
    """Check `to` (None: the latest restorable time) against the window and name the new
    table; nothing is changed."""
    window = restorable_window(dynamodb, table)
    if to is None:
        to = window.latest
    window.check(to)
    target = restored_name(table, now)
    if _exists(dynamodb, target):
        raise RestoreError(f"table {target} exists already: run the restore again in a second")
    return Plan(table, target, to, window, encryption(dynamodb, kms, table))


def restore(
    dynamodb: Any,
    planned: Plan,
    *,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Restored:
    """Restore, wait until the new table is active, give it the source's settings and count
    the items of both tables."""
    dynamodb.restore_table_to_point_in_time(
        SourceTableName=planned.source,
        TargetTableName=planned.target,
        RestoreDateTime=planned.to,
        SSESpecificationOverride=planned.sse,
    )
    _wait_active(dynamodb, planned.target, timeout_seconds, sleep)
    settings = _copy_settings(dynamodb, planned.source, planned.target)
    return Restored(
        plan=planned,
        source_items=count_items(dynamodb, planned.source),
        restored_items=count_items(dynamodb, planned.target),
        settings=settings,
    )


def _exists(dynamodb: Any, table: str) -> bool:
    try:
        dynamodb.describe_table(TableName=table)
    except dynamodb.exceptions.ResourceNotFoundException:
        return False
    return True


def _wait_active(
    dynamodb: Any, table: str, timeout_seconds: float, sleep: Callable[[float], None]
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() >= deadline:
            raise RestoreError(
                f"table {table} is still {status} after {timeout_seconds:.0f} s; the restore "
                "goes on: rerun with a longer --wait-minutes once it is ACTIVE, or finish by hand "
                "(docs/deploy.md, Restore the registry)"
            )
        sleep(WAIT_SECONDS)


def _copy_settings(dynamodb: Any, source: str, target: str) -> tuple[str, ...]:
    """What a restore leaves out: point-in-time recovery, time to live, deletion protection,
    tags (not CloudFormation's own, `aws:*`)."""
    done = []
    dynamodb.update_continuous_backups(
        TableName=target,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    done.append("point-in-time recovery")
    ttl = dynamodb.describe_time_to_live(TableName=source)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=target,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
        done.append(f"time to live ({ttl['AttributeName']})")
    described = dynamodb.describe_table(TableName=source)["Table"]
    if described.get("DeletionProtectionEnabled"):
        dynamodb.update_table(TableName=target, DeletionProtectionEnabled=True)
        done.append("deletion protection")
    tags = [
        tag
        for tag in dynamodb.list_tags_of_resource(ResourceArn=described["TableArn"]).get("Tags", [])
        if not tag["Key"].startswith("aws:")
    ]
    if tags:
        target_arn = dynamodb.describe_table(TableName=target)["Table"]["TableArn"]
        dynamodb.tag_resource(ResourceArn=target_arn, Tags=tags)
        done.append(f"{len(tags)} tag(s)")
    return tuple(done)


def count_items(dynamodb: Any, table: str) -> int:
    """Items in the table now, counted by a scan (`ItemCount` is refreshed only every few
    hours)."""
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += page["Count"]
    return total
