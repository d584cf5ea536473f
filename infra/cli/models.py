"""`mlops models ...`: every configured model at a glance (`list`), and the registered versions
of one model (`--model`, else the default model) and its aliases: list and show versions, move
production (promote, roll back) and candidate (canary), the alias history (and which version
held an alias at a given time, `--at`), and a version exported in MLflow's model format (see
`infra.cli.registry` for the options and exit codes)."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError
from rich.markup import escape
from rich.table import Table

from functions.adapters.events import publish_model_promoted
from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION, change_at
from functions.common import formats
from functions.common.contracts import AliasChange, ModelVersion
from functions.common.errors import AdapterError, ModelRegistryError
from functions.common.events import model_promoted_detail
from functions.common.layout import (
    MODEL_FILE,
    REFERENCE_PROFILE_FILE,
    SIGNATURE_FILE,
    mlflow_prefix,
)
from functions.ml.mlflow_format import mlflow_files, version_uuid
from infra.cli.common import (
    LocalOption,
    ModelOption,
    Session,
    StageOption,
    StateDirOption,
    console,
    fail,
    listing,
    record,
    reported,
    who,
)
from infra.cli.portfolio import model_summary
from infra.cli.registry import (
    NARROW_METRICS,
    JsonOption,
    ReasonOption,
    WideOption,
    cell,
    metric_cell,
    metric_names,
    open_registry,
    print_json,
    print_legend,
    production_marker,
)

models_app = typer.Typer(
    help="The configured models (list), and one model's versions and aliases (--model).",
    no_args_is_help=True,
)


@models_app.command("list")
def models_list(
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every configured model: its dataset, status, production version, last training run and
    last drift verdict (`mlops models versions --model NAME` lists one model's versions)."""
    session = open_registry(local, stage, state_dir, quiet=True)
    if not as_json:
        console.print(
            f"target: {session.target.description}, {len(session.portfolio.models)} models",
            style="dim",
        )
    with reported(stdout=True):
        rows = [model_summary(session, name) for name in session.portfolio.model_names]
    if as_json:
        print_json(rows)
        return
    table = listing(
        f"Models (default: {session.portfolio.default_model})",
        ("model", "status", "production", "last run", "last drift"),
        no_wrap=("last run",),
    )
    for row in rows:
        production = cell(row["production_version"])
        if row["candidate_version"] is not None:
            production += f"\n{CANDIDATE} {row['candidate_version']}"
        if row["shadow_version"] is not None:
            production += f"\nshadow {row['shadow_version']}"
        run, drift = row["last_run"], row["last_drift"]
        table.add_row(
            f"{cell(row['model'])}\non {cell(row['dataset'])}",
            cell(row["status"]),
            production,
            "-" if run is None else f"{cell(run['run_id'])}\n{cell(run['status'])}",
            "-" if drift is None else f"{cell(drift['verdict'])}\n{cell(drift['checked_at'])[:10]}",
        )
    console.print(table)


@models_app.command("versions")
def models_versions(
    wide: WideOption = False,
    as_json: JsonOption = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every registered version, and which one is production (with --wide also when it was
    created and its data version)."""
    session = open_registry(local, stage, state_dir, model=model, quiet=as_json)
    with reported(stdout=True):
        versions = session.registry.list_versions(session.model)
        alias = session.registry.get_alias(session.model)
        runs = {v.run_id: session.registry.get_run(session.model, v.run_id) or {} for v in versions}
    if as_json:
        print_json([version.model_dump(mode="json") for version in versions])
        return
    if not versions:
        console.print(f"No versions of {session.model} are registered yet.")
        return
    names = metric_names(session.config, [v.model_dump() for v in versions])
    names = names if wide else names[:NARROW_METRICS]
    details = ("created", "data version") if wide else ()
    table = listing(
        f"Versions of {session.model}",
        ("version", "alias", "run id", *details, *names),
        no_wrap=("run id", "created"),
    )
    for version in versions:
        detail_cells = (version.created_at, cell(version.data_version))
        table.add_row(
            str(version.version),
            production_marker(version.version, alias),
            cell(version.run_id),
            *(detail_cells if wide else ()),
            *(metric_cell(version.metrics, runs[version.run_id], name) for name in names),
        )
    console.print(table)
    print_legend(list(runs.values()))
    if alias is None:
        console.print(f"No version of {session.model} is {PRODUCTION} yet.")


@models_app.command("show")
def models_show(
    version: Annotated[int, typer.Argument(help="The version number.")],
    card: Annotated[
        Path | None, typer.Option(help="Also save the model card (HTML) to this file.")
    ] = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """One version: where its files are, what it was trained on, its metrics and inputs."""
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        found = session.registry.get_version(session.model, version)
        alias = session.registry.get_alias(session.model)
    if found is None:
        raise fail(f"{session.model} has no registered version {version}", stdout=True)
    summary = record(f"{session.model} version {version}")
    where = f"s3://{session.bucket}/"
    summary.add_row(PRODUCTION, "yes" if production_marker(version, alias) else "no")
    for name in ("created_at", "run_id", "data_version", "data_versions", "onnx_sha256"):
        summary.add_row(name, cell(getattr(found, name)))
    summary.add_row("previous_version", cell(found.previous_version))
    summary.add_row("files", where + found.prefix)
    summary.add_row("model card", where + found.model_card_key)
    metadata = _metadata(session, found)
    # Lineage: the code that trained and registered it, the data, the run and its parameters.
    for name, label in (
        ("training_code_version", "code commit (training)"),
        ("code_version", "code commit (registration)"),
        ("estimator", "estimator"),
        ("params", "params"),
        ("rows_train", "rows_train"),
        ("classes", "classes"),
    ):
        if name in metadata:
            summary.add_row(label, cell(metadata[name]))
    console.print(summary)
    metrics = Table(title="Metrics", show_header=False)
    for name, value in found.metrics.items():
        metrics.add_row(escape(name), cell(value))
    console.print(metrics)
    inputs = (metadata.get("signature") or {}).get("inputs") or []
    if inputs:
        table = Table(title="Inputs")
        for column in ("name", "type", "categories"):
            table.add_column(column, overflow="fold")
        for spec in inputs:
            table.add_row(
                cell(spec.get("name")), cell(spec.get("type")), cell(spec.get("categories"))
            )
        console.print(table)
    if card is not None:
        with reported(stdout=True):
            session.store().download(session.bucket, found.model_card_key, card)
        console.print(f"Model card saved to {card}")


def _metadata(session: Session, version: ModelVersion) -> dict[str, Any]:
    try:
        document = session.store().get_json(session.bucket, version.prefix + "metadata.json")
    except AdapterError as exc:
        console.print(f"[yellow]warning:[/yellow] metadata.json not readable: {escape(str(exc))}")
        return {}
    return formats.read(formats.VERSION_METADATA, document) if isinstance(document, Mapping) else {}


@models_app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="The version to make production.")],
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Make VERSION the production model and publish ModelPromoted."""
    session = open_registry(local, stage, state_dir, model=model)
    change = _point_alias(session, PRODUCTION, version, reason or "promoted from the mlops CLI")
    if change is not None:
        _moved(session, change)


def _point_alias(session: Session, alias: str, version: int, reason: str) -> AliasChange | None:
    """Move `alias` to `version`, expecting it where it points now (a move racing another
    is refused); None, after saying so, when it points there already."""
    with reported(stdout=True):
        current = session.registry.get_alias(session.model, alias)
        expected = current.version if current else None
        if expected == version:
            console.print(f"Version {version} of {session.model} is already {alias}; no change.")
            return None
        return session.registry.promote(
            session.model,
            version,
            expected_current=expected,
            reason=reason,
            execution=who(),
            alias=alias,
        )


@models_app.command("rollback")
def models_rollback(
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Point production back at the version before the current one; publish ModelPromoted."""
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        change = session.registry.rollback(
            session.model, reason=reason or "rolled back from the mlops CLI", execution=who()
        )
    _moved(session, change)


@models_app.command("canary")
def models_canary(
    version: Annotated[int, typer.Argument(help="The version to roll out as candidate.")],
    reason: ReasonOption = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Point alias candidate at VERSION: the predict function serves it to
    `\\[serving] candidate_share` of requests, then promotes or drops it by its numbers."""
    session = open_registry(local, stage, state_dir, model=model)
    model = session.model
    with reported(stdout=True):
        production = session.registry.get_alias(model)
    if production is not None and production.version == version:
        raise fail(f"version {version} of {model} is {PRODUCTION} already", stdout=True)
    change = _point_alias(session, CANDIDATE, version, reason or "canary from the mlops CLI")
    if change is None:
        return
    before = "none" if change.from_version is None else f"version {change.from_version}"
    console.print(f"{CANDIDATE} of {model} set: {before} -> version {version}")
    serving = session.config.serving
    share = serving.candidate_share
    if share <= 0:
        console.print(
            "[yellow]warning:[/yellow] [serving] candidate_share is 0: the predict function "
            "serves no traffic from the candidate and never judges it."
        )
    else:
        console.print(
            f"It serves {share:.0%} of requests; a sequential test on the captured requests "
            f"promotes or drops it (at the latest after {serving.candidate_max_minutes} "
            f"minutes; see `mlops models history --alias {CANDIDATE}`)."
        )


def _moved(session: Session, change: AliasChange) -> None:
    assert change.to_version is not None
    verb = "promoted" if change.kind == "promote" else "rolled back"
    before = "none" if change.from_version is None else f"version {change.from_version}"
    console.print(
        f"{PRODUCTION} of {change.model_name} {verb}: {before} -> version {change.to_version}"
    )
    try:
        version = session.registry.get_version(change.model_name, change.to_version)
        detail = model_promoted_detail(
            change,
            metrics=version.metrics if version else {},
            run_id=version.run_id if version else None,
        )
        event_id = publish_model_promoted(detail, events=session.target.client("events"))
    except (ModelRegistryError, AdapterError, BotoCoreError) as exc:
        raise fail(
            f"the alias moved, but ModelPromoted was not published: {exc}", stdout=True
        ) from None
    console.print(f"Published ModelPromoted (event {event_id}).", style="dim")


@models_app.command("history")
def models_history(
    alias: Annotated[
        str,
        typer.Option(
            help=f"The alias: {PRODUCTION}, {CANDIDATE} (rollouts) or shadow (`models shadow`)."
        ),
    ] = PRODUCTION,
    at: Annotated[
        str | None,
        typer.Option(
            help="Only which version held the alias at this time (ISO 8601, e.g. "
            "2026-12-01T12:00:00Z or 2026-12-01; without an offset: UTC)."
        ),
    ] = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every change of an alias (production by default), oldest first: when, what, why, by
    whom. Rollout outcomes show as `promote` (production) and `drop` (candidate). With
    `--at TIME`: which version held the alias at that time, and since which move."""
    when = None if at is None else _time(at)
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        changes = session.registry.history(session.model, alias)
    if when is not None:
        _held_at(session.model, alias, changes, when)
        return
    if not changes:
        console.print(f"{escape(alias)} of {session.model} has never been set.")
        return
    table = Table(title=f"{escape(alias)} of {session.model}, oldest first")
    for column in ("#", "at", "kind", "from", "to", "reason", "by"):
        table.add_column(column, overflow="fold", no_wrap=column == "at")
    for change in changes:
        table.add_row(
            str(change.revision),
            change.at,
            change.kind,
            cell(change.from_version),
            cell(change.to_version),
            cell(change.reason),
            cell(change.execution),
        )
    console.print(table)


def _time(text: str) -> datetime:
    """`--at`: an ISO 8601 date or time, as UTC (naive is UTC); exit 2 naming the value."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2026-12-01T12:00:00Z or 2026-12-01)",
            2,
            stdout=True,
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _held_at(model: str, alias: str, changes: list[AliasChange], when: datetime) -> None:
    moment = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    change = change_at(changes, when)
    name = f"{escape(alias)} of {model} at {moment}"
    if change is None:
        first = f" (first set at {changes[0].at})" if changes else " (never set)"
        console.print(f"{name}: no version{first}.")
    elif change.to_version is None:
        console.print(
            f"{name}: no version (dropped at {change.at}, revision {change.revision}: "
            f"{escape(change.reason)})."
        )
    else:
        console.print(
            f"{name}: version {change.to_version} (since {change.at}, {change.kind} "
            f"from {cell(change.from_version)}, revision {change.revision}: "
            f"{escape(change.reason)})."
        )


class ExportFormat(StrEnum):
    MLFLOW = "mlflow"


@models_app.command("export")
def models_export(
    version: Annotated[int, typer.Argument(help="The version to export.")],
    export_format: Annotated[
        ExportFormat,
        typer.Option("--format", help="The model format: mlflow (MLflow's, `MLmodel`)."),
    ] = ExportFormat.MLFLOW,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The folder to write (new or empty); default ./<model>-v<version>-mlflow."
        ),
    ] = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Write VERSION in MLflow's model format to a local folder, which
    `mlflow.pyfunc.load_model(folder)` loads: the folder the register stage stored, or, for a
    version registered before it stored one, the same folder built from the version's
    model.onnx (checked against its sha256), signature and reference profile."""
    session = open_registry(local, stage, state_dir, model=model)
    target = out or Path(f"{session.model}-v{version}-{export_format.value}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise fail(f"{target} exists and is not an empty folder", stdout=True)
    with reported(stdout=True):
        found = session.registry.get_version(session.model, version)
        if found is None:
            raise fail(f"{session.model} has no registered version {version}", stdout=True)
        store, bucket = session.store(), session.bucket
        prefix = mlflow_prefix(session.model, version)
        stored = [item["key"] for item in store.list_objects(bucket, prefix)]
        target.mkdir(parents=True, exist_ok=True)
        if stored:
            for key in stored:
                store.download(bucket, key, target / key.removeprefix(prefix))
            source = f"s3://{bucket}/{prefix}"
        else:
            files = _built_mlflow(session, found)
            for name, body in files.items():
                (target / name).write_bytes(body)
            source = f"built from s3://{bucket}/{found.prefix}"
    console.print(
        f"Version {version} of {session.model} in MLflow's model format ({source}) written "
        f"to {target}; load it with mlflow.pyfunc.load_model({str(target)!r})."
    )


def _built_mlflow(session: Session, version: ModelVersion) -> dict[str, bytes]:
    """The MLflow folder of a version registered before the register stage wrote one."""
    store, bucket = session.store(), session.bucket
    onnx_bytes = store.get_bytes(bucket, version.prefix + MODEL_FILE)
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if digest != version.onnx_sha256:
        raise fail(
            f"s3://{bucket}/{version.prefix}{MODEL_FILE} has sha256 {digest}, but version "
            f"{version.version} was registered with {version.onnx_sha256}: not exported",
            stdout=True,
        )
    signature = formats.content(
        formats.SIGNATURE, store.get_json(bucket, version.prefix + SIGNATURE_FILE)
    )
    try:
        profile = formats.content(
            formats.REFERENCE_PROFILE,
            store.get_json(bucket, version.prefix + REFERENCE_PROFILE_FILE),
        )
    except AdapterError:
        profile = None  # the input example then takes the signature's values
    return mlflow_files(
        onnx_bytes,
        signature,
        profile=profile,
        python_version=platform.python_version(),
        created_at=datetime.fromisoformat(version.created_at),
        model_uuid=version_uuid(version.model_name, version.version, version.onnx_sha256),
    )
