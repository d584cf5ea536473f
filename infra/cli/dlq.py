"""`mlops dlq ...`: the stack's dead-letter queues, on the local cloud or on AWS (the same target
options as `mlops drops`): how many messages each holds, what each message is and why it
failed, and a redrive to the target it failed to reach (`infra.cli.dead_letters`).

Queues: `drops`, `batch-starts`, `monitoring-events` (EventBridge rules' dead letters) and
`failed-drift-checks` (the drift function's on-failure records).

Exit codes: 0 done, 1 the target refused or a message could not be redriven (each named),
2 an unknown queue or an invalid config.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from infra.cli import dead_letters
from infra.cli.common import (
    LocalOption,
    StageOption,
    StateDirOption,
    console,
    errors,
    fail,
    listing,
    open_target,
    record,
    reported,
    text,
)
from infra.cli.dead_letters import DeadLetter, DeadLetterQueue, Outcome
from infra.cli.drops import JsonOption
from infra.cli.target import Target

dlq_app = typer.Typer(
    help="The dead-letter queues: what failed to be delivered, why, and a redrive.",
    no_args_is_help=True,
)
QueueArgument = Annotated[
    str,
    typer.Argument(help=f"The queue: {', '.join(dead_letters.QUEUE_NAMES)}.", show_default=False),
]


def _open(
    name: str | None, local: bool | None, stage: str, state_dir: Any, quiet: bool
) -> tuple[Target, DeadLetterQueue | None]:
    queue = None
    if name is not None:
        try:
            queue = dead_letters.queue_named(name)
        except KeyError as exc:
            raise fail(str(exc.args[0]), 2) from None
    outputs = [queue.output] if queue else [q.output for q in dead_letters.QUEUES]
    _, target, _ = open_target(local, stage, state_dir, *outputs)
    if not quiet:
        console.print(f"target: {target.description}", style="dim")
    return target, queue


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{int(seconds)}s"


@dlq_app.command("list")
def dlq_list(
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every dead-letter queue: messages waiting and in flight, and the oldest one's age."""
    target, _ = _open(None, local, stage, state_dir, quiet=as_json)
    with reported():
        found = [dead_letters.summary(target, queue) for queue in dead_letters.QUEUES]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = listing(
        "dead-letter queues",
        ("queue", "waiting", "in flight", "oldest", "holds"),
        no_wrap=("queue",),
    )
    for queue in found:
        oldest = _age(queue["oldest_age_seconds"])
        if queue["oldest_of"] and queue["oldest_of"] < queue["visible"]:
            oldest += f" (of {queue['oldest_of']} read)"
        table.add_row(
            text(queue["queue"]),
            text(queue["visible"]),
            text(queue["in_flight"]),
            oldest,
            text(queue["holds"]),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option(min=1, help="Show the oldest N messages.")] = 20,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """The queue's messages, oldest first: the event, what it failed to reach, when and why.
    Messages stay in the queue."""
    target, chosen = _open(queue, local, stage, state_dir, quiet=as_json)
    assert chosen is not None
    with reported():
        letters = dead_letters.peek(target, chosen, limit)
    if as_json:
        typer.echo(json.dumps([letter.as_json() for letter in letters], indent=2, default=str))
        return
    if not letters:
        console.print(f"{chosen.name}: no messages")
        return
    for letter in letters:
        console.print(_letter_table(letter))


def _letter_table(letter: DeadLetter) -> Any:
    table = record(f"message {text(letter.message_id)}")
    rows: list[tuple[str, Any]] = [
        ("event", letter.what),
        ("sent", letter.sent_at),
        ("received", letter.receive_count),
        ("rule", letter.rule_arn),
        ("target" if letter.rule_arn else "function", letter.target_arn),
        ("condition", letter.condition),
        ("attempts", letter.invoke_count),
        ("error", letter.error_code),
        ("message", letter.error_message),
        ("retries", letter.retry_attempts),
        ("retries ended by", letter.exhausted_retry_condition),
        ("unreadable", letter.unreadable),
    ]
    for name, value in rows:
        if value is not None:
            table.add_row(name, text(value))
    return table


@dlq_app.command("redrive")
def dlq_redrive(
    queue: QueueArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be redelivered; change nothing.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Redrive the oldest N messages (default: all).")
    ] = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Redeliver each message to the target it failed to reach, as its rule would have (a
    state machine execution, an asynchronous function invocation); a message is deleted once
    its re-delivery succeeded. Exit 1 naming each message that could not be redriven."""
    target, chosen = _open(queue, local, stage, state_dir, quiet=False)
    assert chosen is not None

    def report(outcome: Outcome) -> None:
        mark = "[green]ok[/green]" if outcome.ok else "[red]failed[/red]"
        action = outcome.redelivery.describe() if outcome.redelivery else "-"
        console.print(
            f"{mark} {text(outcome.letter.message_id)} ({text(outcome.letter.what)}): "
            f"{text(action)}: {text(outcome.result)}",
            soft_wrap=True,
        )

    with reported():
        outcomes = dead_letters.redrive(target, chosen, limit=limit, dry_run=dry_run, report=report)
    failed = [o for o in outcomes if not o.ok]
    done = len(outcomes) - len(failed)
    verb = "would redrive" if dry_run else "redrove"
    console.print(f"{chosen.name}: {verb} {done} of {len(outcomes)} message(s)")
    if failed:
        for outcome in failed:
            errors.print(
                f"[red]error:[/red] message {text(outcome.letter.message_id)} "
                f"({text(outcome.letter.what)}) stays in {chosen.name}: {text(outcome.result)}",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(1)
