"""`mlops models shadow ...`: alias `shadow` of one model (`--model`, else the default model).

- `start VERSION`: point alias shadow at VERSION; with `[serving] shadow = true` the shadow
  scorer scores every captured production request with it (off the request path).
- `stop`: drop alias shadow (its records stay under `shadow/<model>/` until they expire).
- `report`: the shadow's records joined to production's captures of the same requests
  (`functions.ml.shadow_report`): agreement and confusion, or the error distribution, latency,
  drift of the outputs.
- `promote`: the shadow's version through the gate (`[gate]`, as the pipeline's evaluate
  stage applies it: both it and the champion scored on the shadow run's held-out rows by the
  evaluate stage's own scoring); when it passes, production moves to it (recorded in the
  alias history, ModelPromoted published) and alias shadow is dropped.

Every alias move is recorded in the alias history (`mlops models history --alias shadow`).
Exit codes as the other `models` commands: 1 refused or failed, 2 bad options.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any

import pandas as pd
import typer

from functions.adapters.registry.aliases import PRODUCTION
from functions.common.config.dataset import Task
from functions.common.contracts import ModelVersion
from functions.common.errors import ArtifactIntegrityError
from functions.common.layout import (
    HOLDOUT_FILE,
    SIGNATURE_FILE,
    capture_day_prefix,
    run_prefix,
    shadow_prefix,
)
from functions.evaluate.logic import Scorer, score
from functions.ml.capture_lines import capture_records
from functions.ml.gate import apply_gate
from functions.ml.shadow_report import report_lines, shadow_report
from infra.cli.common import (
    LocalOption,
    ModelOption,
    Session,
    StageOption,
    StateDirOption,
    console,
    fail,
    reported,
    who,
)
from infra.cli.models import _moved, _point_alias
from infra.cli.portfolio import SHADOW
from infra.cli.registry import JsonOption, ReasonOption, open_registry, print_json

shadow_app = typer.Typer(
    help="Alias shadow: a version that scores the captured requests beside production.",
    no_args_is_help=True,
)

SinceOption = Annotated[
    str,
    typer.Option(
        help="Requests captured since: a day (2026-12-01) or a span back from now (24h, 7d)."
    ),
]


@shadow_app.command("start")
def shadow_start(
    version: Annotated[int, typer.Argument(help="The version to run in shadow.")],
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Point alias shadow at VERSION: it scores the captured production requests (with
    `\\[serving] shadow = true`), and `mlops models shadow report` compares it."""
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        production = session.registry.get_alias(session.model)
    if production is not None and production.version == version:
        raise fail(f"version {version} of {session.model} is {PRODUCTION} already", stdout=True)
    change = _point_alias(session, SHADOW, version, reason or "shadow from the mlops CLI")
    if change is None:
        return
    before = "none" if change.from_version is None else f"version {change.from_version}"
    console.print(f"{SHADOW} of {session.model} set: {before} -> version {version}")
    if not session.config.serving.shadow:
        console.print(
            "[yellow]warning:[/yellow] \\[serving] shadow is off for this model: nothing scores "
            "the captured requests with it until it is on (and deployed)."
        )


@shadow_app.command("stop")
def shadow_stop(
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Drop alias shadow: nothing more is scored (its records stay until they expire)."""
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        current = session.registry.get_alias(session.model, SHADOW)
        if current is None:
            console.print(f"{SHADOW} of {session.model} is not set; nothing to stop.")
            return
        session.registry.drop_alias(
            session.model,
            SHADOW,
            expected=current.version,
            reason=reason or "stopped from the mlops CLI",
            execution=who(),
        )
    console.print(f"{SHADOW} of {session.model} stopped (was version {current.version}).")


def since_time(since: str, now: datetime | None = None) -> datetime:
    """`--since`: a day (its midnight, UTC) or `<n>h` / `<n>d` back from now."""
    now = now or datetime.now(UTC)
    span = re.fullmatch(r"(\d+)([hd])", since.strip())
    if span:
        amount = int(span.group(1))
        return now - (timedelta(hours=amount) if span.group(2) == "h" else timedelta(days=amount))
    try:
        day = date.fromisoformat(since.strip())
    except ValueError:
        raise fail(
            f"--since {since!r} is neither a day (2026-12-01) nor a span (24h, 7d)", 2, stdout=True
        ) from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _days(start: datetime, end: datetime) -> list[str]:
    count = (end.date() - start.date()).days
    return [(start.date() + timedelta(days=n)).isoformat() for n in range(count + 1)]


def _records(session: Session, prefix: str, since: str) -> Iterator[dict[str, Any]]:
    store = session.store()
    for found in store.list_objects(session.bucket, prefix):
        for record in capture_records(store.lines(session.bucket, found["key"])):
            if record["model_name"] == session.model and str(record.get("timestamp")) >= since:
                yield record


@shadow_app.command("report")
def shadow_report_command(
    since: SinceOption = "1d",
    as_json: JsonOption = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """The shadow against production on the same captured requests: agreement and confusion
    (classes) or the distribution of shadow - production (regression), latency p50/p99 of
    both, and PSI of the shadow's outputs against production's."""
    start = since_time(since)
    session = open_registry(local, stage, state_dir, model=model, quiet=as_json)
    cutoff = start.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    days = _days(start, datetime.now(UTC))
    with reported(stdout=True):
        alias = session.registry.get_alias(session.model, SHADOW)
        capture = [r for day in days for r in _records(session, capture_day_prefix(day), cutoff)]
        shadow = [
            r
            for day in days
            for r in _records(session, f"{shadow_prefix(session.model)}dt={day}/", cutoff)
        ]
    report = {
        "model": session.model,
        "since": cutoff,
        "shadow_alias": alias.version if alias else None,
        **shadow_report(capture, shadow, psi_limits=session.config.drift.psi),
    }
    if as_json:
        print_json(report)
        return
    now = "not set" if alias is None else f"version {alias.version}"
    console.print(f"{SHADOW} of {session.model} ({now}), requests since {cutoff}", highlight=False)
    for line in report_lines(report):
        console.print(line, highlight=False, markup=False)


@shadow_app.command("promote")
def shadow_promote(
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Promote the shadow's version if it passes the gate against the champion (both scored on
    the shadow run's held-out rows); production moves, ModelPromoted is published, alias
    shadow is dropped. Exit 1 when it does not pass (nothing changes)."""
    session = open_registry(local, stage, state_dir, model=model)
    model_name = session.model
    with reported(stdout=True):
        shadow = session.registry.get_alias(model_name, SHADOW)
        if shadow is None:
            raise fail(f"{SHADOW} of {model_name} is not set: nothing to promote", stdout=True)
        candidate = session.registry.get_version(model_name, shadow.version)
        production = session.registry.get_alias(model_name)
        champion = (
            session.registry.get_version(model_name, production.version) if production else None
        )
        if candidate is None:
            raise fail(f"{model_name} has no registered version {shadow.version}", stdout=True)
        try:
            passed, criteria = _gate(session, candidate, champion)
        except ArtifactIntegrityError as exc:
            raise fail(str(exc), stdout=True) from None
    against = f"champion version {champion.version}" if champion else "no champion"
    for criterion in criteria:
        mark = "[green]pass[/green]" if criterion.passed else "[red]fail[/red]"
        console.print(f"  {mark} {criterion.message}", highlight=False)
    if not passed:
        raise fail(
            f"version {candidate.version} of {model_name} did not pass the gate against "
            f"{against}; production is unchanged and {SHADOW} stays",
            stdout=True,
        )
    text = reason or (
        f"shadow version {candidate.version} passed the gate ({len(criteria)} criteria) "
        f"against {against}"
    )
    with reported(stdout=True):
        change = session.registry.promote(
            model_name,
            candidate.version,
            expected_current=production.version if production else None,
            reason=text,
            execution=who(),
        )
    _moved(session, change)
    with reported(stdout=True):
        session.registry.drop_alias(
            model_name,
            SHADOW,
            expected=shadow.version,
            reason=f"promoted to {PRODUCTION}",
            execution=who(),
        )
    console.print(f"{SHADOW} of {model_name} dropped: its version is {PRODUCTION} now.")


def _gate(
    session: Session, candidate: ModelVersion, champion: ModelVersion | None
) -> tuple[bool, list[Any]]:
    """The gate on the candidate's held-out rows, both versions scored by the evaluate
    stage's scoring, each file checked against its registered sha256."""
    scorer = Scorer(session.store(), session.bucket)
    holdout_key = run_prefix(candidate.model_name, candidate.run_id) + HOLDOUT_FILE
    with TemporaryDirectory(prefix="mlops-gate-") as tmp:
        local = session.store().download(session.bucket, holdout_key, Path(tmp) / HOLDOUT_FILE)
        holdout = pd.read_parquet(local)
    model = scorer.model(
        candidate.onnx_key, candidate.prefix + SIGNATURE_FILE, candidate.onnx_sha256
    )
    evaluated = score(model, holdout)
    baseline = None
    if champion is not None:
        champion_model = scorer.model(
            champion.onnx_key, champion.prefix + SIGNATURE_FILE, champion.onnx_sha256
        )
        baseline = score(champion_model, holdout).metrics
    classes = model.signature.classes or []
    return apply_gate(
        candidate=evaluated.metrics,
        champion=baseline,
        gate=session.config.gate,
        task=Task(model.signature.task),
        n_classes=len(classes),
    )
