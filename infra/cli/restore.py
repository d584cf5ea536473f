"""`mlops restore --registry --to <time>`: the registry table restored from point-in-time
recovery into a new table (`infra.cli.point_in_time`), and the config line that switches the
stage's stack to it.

Exit codes: 0 done (or, with --dry-run, possible), 1 the target refused or the time is outside
the restorable window (one sentence names the window), 2 bad arguments or an invalid config.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated

import typer

from infra.cli import point_in_time
from infra.cli.common import (
    REGISTRY_TABLE_OUTPUT,
    LocalOption,
    StageOption,
    StateDirOption,
    console,
    fail,
    open_target,
    record,
    reported,
    text,
)
from infra.cli.drops import JsonOption
from infra.cli.point_in_time import Plan, Restored, RestoreError


def restore(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The point in time, ISO 8601 with a UTC offset (2026-12-02T06:00:00Z), or "
            "`latest` (the latest restorable time).",
            show_default=False,
        ),
    ],
    registry: Annotated[
        bool, typer.Option("--registry", help="Restore the registry table (required).")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check the time and name the new table; change nothing."),
    ] = False,
    wait_minutes: Annotated[
        int, typer.Option(min=1, help="How long to wait for the new table to become ACTIVE.")
    ] = 120,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Restore the registry table as it was at --to into a new table
    `<table>-restored-<UTC stamp>` (same encryption, point-in-time recovery on), wait until it
    is ACTIVE, compare item counts, and print the config line and deploy that switch the stack
    to it. The table in use is left as it is."""
    if not registry:
        raise fail("say what to restore: --registry (the only restorable store)", 2)
    try:
        when = point_in_time.parse_time(to)
    except RestoreError as exc:
        raise fail(str(exc), 2) from None
    _, target, (table,) = open_target(local, stage, state_dir, REGISTRY_TABLE_OUTPUT)
    if not as_json:
        console.print(f"target: {target.description}, table {text(table)}", style="dim")
    dynamodb = target.client("dynamodb")
    with reported():
        try:
            planned = point_in_time.plan(
                dynamodb,
                target.client("kms"),
                table,
                when,
                datetime.datetime.now(datetime.UTC),
            )
            if dry_run:
                _report_plan(planned, as_json)
                return
            done = point_in_time.restore(dynamodb, planned, timeout_seconds=wait_minutes * 60)
        except RestoreError as exc:
            raise fail(str(exc)) from None
    _report(done, target.kind, stage, as_json)


def _report_plan(planned: Plan, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"dry_run": True, **planned.as_json()}, indent=2))
        return
    table = record("restore (dry run: nothing changed)")
    for name, value in _plan_rows(planned):
        table.add_row(name, text(value))
    console.print(table)


def _plan_rows(planned: Plan) -> list[tuple[str, str]]:
    key = planned.sse.get("KMSMasterKeyId") or (
        "AWS managed key" if planned.sse.get("Enabled") else "AWS owned key"
    )
    return [
        ("from", planned.source),
        ("as of", planned.as_json()["to"]),
        ("restorable", planned.window.describe()),
        ("into", planned.target),
        ("encryption", key),
    ]


def _report(done: Restored, kind: str, stage: str, as_json: bool) -> None:
    line = f'registry_table = "{done.plan.target}"'
    if as_json:
        typer.echo(json.dumps({"dry_run": False, **done.as_json(), "config_line": line}, indent=2))
        return
    table = record("registry restored")
    for name, value in [
        *_plan_rows(done.plan),
        ("items now in the source", f"{done.source_items:,}"),
        ("items restored", f"{done.restored_items:,}"),
        ("also set", ", ".join(done.settings)),
    ]:
        table.add_row(name, text(value))
    console.print(table)
    difference = done.source_items - done.restored_items
    if difference:
        console.print(
            f"The source holds {difference:+,} item(s) more than the restored table: written "
            "(or, if negative, deleted) since the restore point, or expired by time to live."
        )
    console.print(
        f"The stack still uses the source table. To switch it, set under "
        f"{text(f'[stages.{stage}]')} in mlops.toml:\n\n  {text(line)}\n"
    )
    if kind == "aws":
        console.print(
            f"then deploy: make deploy STAGE={stage}. Every function and the CLI then use the "
            "restored table; the source table stays in the stack, unchanged."
        )
    else:
        console.print(
            "The local cloud cannot switch a running stack (it has no stack update): the line "
            "takes effect when the stack is deployed again, and `mlops local up` starts an "
            "empty cloud."
        )
