"""`mlops runs ...` and `mlops models ...`: look at training runs, registered versions and the
production alias, and move the alias (promote, roll back), on the local cloud or on AWS.

Every command prints the target it talks to first, except with `--json`: then stdout holds one
JSON document and nothing else. Tables fit an 80-column terminal (cells wrap); `--wide` adds
the columns left out. Exit codes: 0 done, 1 the target or the
registry refused (one sentence says why), 2 the config is invalid.
"""

from __future__ import annotations

import getpass
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from functions.common.config import ConfigError, MlopsConfig, load_config
from functions.common.contracts import AliasChange, AliasState, ModelVersion
from functions.common.errors import AdapterError, ModelRegistryError
from functions.common.events import model_promoted_detail, publish_model_promoted
from functions.common.model_registry import CANDIDATE, PRODUCTION, ModelRegistry
from functions.common.storage import ObjectStore
from functions.ml.metrics import GREATER_IS_BETTER
from infra.cli.target import STATE_DIR_ENV, Target, TargetError, resolve_target

runs_app = typer.Typer(
    help="Training runs of the configured model: list, show, compare.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Registered versions of the configured model and its production alias.",
    no_args_is_help=True,
)
console = Console()

LocalOption = Annotated[
    bool | None,
    typer.Option(
        "--local/--aws",
        help="The local cloud (default when its outputs.json exists) or the AWS stack.",
        show_default=False,
    ),
]
StageOption = Annotated[str, typer.Option(help="Stage of the AWS stack (with --aws).")]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        help="The local cloud's state directory.",
        envvar=STATE_DIR_ENV,
        show_default=".mlops/local",
    ),
]
ReasonOption = Annotated[str | None, typer.Option(help="Why; recorded in the alias history.")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the records as one JSON document, nothing else.")
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column and metric (the default fits 80 columns).")
]
NARROW_METRICS = 2
"""Metric columns of a table without --wide."""
GATE_LEGEND = (
    "Metrics: each run's model on its own held-out rows.\n"
    "vN below: the champion it was gated against, on the same held-out rows."
)


@dataclass
class Session:
    """What one command works with: the target, its registry and data bucket, the model."""

    config: MlopsConfig
    target: Target
    registry: ModelRegistry
    bucket: str

    @property
    def model(self) -> str:
        return self.config.model_name

    def store(self) -> ObjectStore:
        return ObjectStore(self.target.client("s3"))


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _open(
    local: bool | None, stage: str, state_dir: Path | None, *, quiet: bool = False
) -> Session:
    try:
        config = load_config()
        target = resolve_target(config, local=local, stage=stage, local_state=state_dir)
        table, bucket = target.output("RegistryTableName"), target.output("DataBucketName")
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except TargetError as exc:
        raise _fail(str(exc)) from None
    if not quiet:
        console.print(f"target: {target.description}, model {config.model_name}", style="dim")
    registry = ModelRegistry(table, target.client("dynamodb"))
    return Session(config=config, target=target, registry=registry, bucket=bucket)


@contextmanager
def _reported() -> Iterator[None]:
    """Registry refusals and AWS failures as one sentence and exit code 1."""
    try:
        yield
    except (ModelRegistryError, AdapterError) as exc:
        raise _fail(str(exc)) from None
    except BotoCoreError as exc:
        raise _fail(f"the AWS call failed: {exc}") from None


def _text(value: Any) -> str:
    """A value as table text; recorded data is escaped, so "[x]" never reads as markup."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value) or "-"
    if isinstance(value, Mapping):
        return escape(json.dumps(value, default=str))
    return escape(str(value))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    if not isinstance(value, Mapping):
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, Mapping) and item:
            flat.update(_flatten(item, name))
        else:
            flat[name] = item
    return flat


def _metric_names(config: MlopsConfig, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gate's metrics when configured (and reported), else the first few reported."""
    reported: list[str] = []
    for record in records:
        reported.extend(m for m in record.get("metrics") or {} if m not in reported)
    gated = [m for m in config.gate.metrics if m in reported]
    return gated or reported[:3]


def _print_json(document: Any) -> None:
    """`document` as JSON on stdout, alone (for jq and friends): never wrapped or styled."""
    typer.echo(json.dumps(document, indent=2, default=str))


def _listing(title: str, columns: Sequence[str], no_wrap: Sequence[str] = ()) -> Table:
    """A table whose cells wrap to fit the terminal, except `no_wrap` (ids), never cut to "…"."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in no_wrap, overflow="fold")
    return table


def _run_status(run: Mapping[str, Any]) -> str:
    """The run's status; a run the gate rejected reads `rejected`, also when it was recorded
    as `evaluated` with `gate_passed` false (as the evaluate stage once recorded it)."""
    if run.get("gate_passed") is False and run.get("status") in (None, "evaluated"):
        return "rejected"
    return _text(run.get("status"))


def _gated(run: Mapping[str, Any], name: str) -> tuple[int, Any] | None:
    """The champion version `run` was gated against and its `name` metric on the run's
    held-out rows, or None when the run had no champion (or no such metric)."""
    champion, scored = run.get("champion_version"), run.get("champion_metrics") or {}
    if champion is None or name not in scored:
        return None
    return int(champion), scored[name]


def _metric_cell(metrics: Mapping[str, Any], run: Mapping[str, Any], name: str) -> str:
    """The metric, and below it the champion's on the same held-out rows ("vN value")."""
    value = _text(metrics.get(name))
    gated = _gated(run, name)
    return value if gated is None else f"{value}\nv{gated[0]} {_text(gated[1])}"


def _print_legend(runs: Sequence[Mapping[str, Any]]) -> None:
    if any(run.get("champion_metrics") for run in runs):
        console.print(GATE_LEGEND, style="dim", highlight=False)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _production_marker(version: int | None, alias: AliasState | None) -> str:
    return PRODUCTION if alias is not None and alias.version == version else ""


# mlops runs ...


@runs_app.command("start")
def runs_start(
    data_version: Annotated[
        str | None,
        typer.Option(help="Dataset version to train on (default: the latest one)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the run).")] = "cli retrain",
    wait: Annotated[bool, typer.Option(help="Wait for the pipeline to finish.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800.0,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Retrain without a new drop: start the pipeline with a retrain request."""
    session = _open(local, stage, state_dir)
    request: dict[str, Any] = {"reason": reason}
    if data_version:
        request["data_version"] = data_version
    sfn = session.target.client("stepfunctions")
    name = f"retrain-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    with _reported():
        started = sfn.start_execution(
            stateMachineArn=session.target.output("PipelineStateMachineArn"),
            name=name,
            input=json.dumps({"retrain": request}),
        )
    console.print(f"Started execution {escape(started['executionArn'])}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with _reported(), console.status("Training, evaluating, gating..."):
        while (described := sfn.describe_execution(executionArn=started["executionArn"]))[
            "status"
        ] == "RUNNING":
            if time.monotonic() > deadline:
                raise _fail(f"still running after {timeout:.0f} s")
            time.sleep(1)
    _print_outcome(described)


def _print_outcome(described: Mapping[str, Any]) -> None:
    if described["status"] != "SUCCEEDED":
        cause = described.get("cause") or described.get("error") or described["status"]
        raise _fail(f"the pipeline {described['status'].lower()}: {cause}")
    output = json.loads(described.get("output") or "{}")
    training, evaluation = output.get("training", {}), output.get("evaluation", {})
    console.print(
        f"run {escape(str(training.get('run_id')))} on data version "
        f"{escape(str(training.get('data_version')))}: [bold]{output.get('status')}[/bold]"
    )
    if output.get("model"):
        console.print(f"production is now version {output['model']['version']}")
    for failed in evaluation.get("failed", []):
        console.print(f"  failed: {escape(failed)}")


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    wide: WideOption = False,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """The newest training runs: status, metrics and the version each became (with --wide
    also when it started, the estimator and the data version)."""
    session = _open(local, stage, state_dir, quiet=as_json)
    with _reported():
        runs = session.registry.list_runs(session.model, limit=limit)
        alias = session.registry.get_alias(session.model)
    if as_json:
        _print_json(runs)
        return
    if not runs:
        console.print(f"No training runs recorded for {session.model} yet.")
        return
    names = _metric_names(session.config, runs)
    names = names if wide else names[:NARROW_METRICS]
    details = ("started", "estimator", "data version") if wide else ()
    table = _listing(
        f"Training runs of {session.model} (newest first)",
        ("run id", "status", "version", *details, *names),
        no_wrap=("run id", "started"),
    )
    for run in runs:
        metrics = run.get("metrics") or {}
        version = run.get("version")
        marker = _production_marker(version, alias)
        detail_cells = (
            _text(run.get("started_at"))[:16].replace("T", " "),
            _text(run.get("estimator")),
            _text(run.get("data_version")),
        )
        table.add_row(
            _text(run["run_id"]),
            _run_status(run),
            f"{_text(version)} ({marker})" if marker else _text(version),
            *(detail_cells if wide else ()),
            *(_metric_cell(metrics, run, name) for name in names),
        )
    console.print(table)
    _print_legend(runs)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id (see `mlops runs list`).")],
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Everything recorded about one run: summary, parameters, metrics, durations."""
    session = _open(local, stage, state_dir)
    with _reported():
        run = session.registry.get_run(session.model, run_id)
    if run is None:
        raise _fail(f"no training run {run_id} is recorded for {session.model}")
    summary = Table(title=f"Run {run_id}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    sections: list[tuple[str, Mapping[str, Any]]] = []
    for name, value in run.items():
        if isinstance(value, Mapping):
            sections.append((name, value))
        else:
            summary.add_row(escape(name), _text(value))
    console.print(summary)
    for name, value in sections:
        table = Table(title=name, show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, item in _flatten(value).items():
            table.add_row(escape(key), _text(item))
        console.print(table)


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[
        list[str], typer.Argument(help="Two or more run ids; the first is the baseline.")
    ],
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Runs side by side: data, parameters (differences marked), metrics with changes."""
    if len(run_ids) < 2:
        raise _fail("compare needs at least two run ids")
    session = _open(local, stage, state_dir)
    runs = []
    with _reported():
        for run_id in run_ids:
            run = session.registry.get_run(session.model, run_id)
            if run is None:
                raise _fail(f"no training run {run_id} is recorded for {session.model}")
            runs.append(run)
    console.print(_overview_table(runs))
    console.print(_params_table(runs))
    console.print(_metrics_table(runs))
    if any(run.get("gate_passed") is not None for run in runs):
        console.print(_gate_table(runs))


def _compare_table(title: str, runs: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=title)
    table.add_column("", style="bold")
    for run in runs:
        table.add_column(_text(run["run_id"]), overflow="fold")
    return table


def _overview_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = _compare_table("Runs", runs)
    fields = ("status", "estimator", "data_version", "data_versions", "rows_train", "version")
    for name in fields:
        if any(run.get(name) is not None for run in runs):
            cells = (_run_status(run) if name == "status" else _text(run.get(name)) for run in runs)
            table.add_row(name, *cells)
    return table


def _params_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = _compare_table("Parameters (* differs)", runs)
    flat = [_flatten(run.get("params") or {}) for run in runs]
    names = list(dict.fromkeys(name for params in flat for name in params))
    for name in names:
        values = [_text(params.get(name)) for params in flat]
        differs = len(set(values)) > 1
        table.add_row(
            escape(f"* {name}" if differs else name),
            *(f"[yellow]{value}[/yellow]" if differs else value for value in values),
        )
    return table


def _metrics_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = _compare_table(
        f"Metrics, each on its own held-out rows (change from {runs[0]['run_id']})", runs
    )
    flat = [_flatten(run.get("metrics") or {}) for run in runs]
    names = list(dict.fromkeys(name for metrics in flat for name in metrics))
    for name in names:
        base = flat[0].get(name)
        cells = [_text(base)]
        for metrics in flat[1:]:
            cells.append(_with_delta(name, base, metrics.get(name)))
        table.add_row(escape(name), *cells)
    return table


def _gate_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    """What the gate compared for each run: its model vs the champion, both scored on the
    run's own held-out rows (the figures that decided), and the decision."""
    table = _compare_table("Gate: candidate vs champion on the same held-out rows", runs)
    table.add_row("gate", *(_gate_decision(run) for run in runs))
    names = list(dict.fromkeys(name for run in runs for name in run.get("champion_metrics") or {}))
    for name in names:
        cells = []
        for run in runs:
            value, gated = (run.get("metrics") or {}).get(name), _gated(run, name)
            if run.get("gate_passed") is None:
                cells.append("-")
            elif gated is None:
                cells.append(f"{_text(value)} (no champion)")
            else:
                version, champion = gated
                cells.append(
                    f"{_text(value)} vs v{version} {_text(champion)}{_delta(name, champion, value)}"
                )
        table.add_row(escape(name), *cells)
    return table


def _gate_decision(run: Mapping[str, Any]) -> str:
    passed = run.get("gate_passed")
    if passed is None:
        return "not gated"
    if passed:
        return "[green]passed[/green]"
    return "[red]rejected[/red]: " + _text(run.get("gate_failed"))


def _with_delta(name: str, base: Any, value: Any) -> str:
    return _text(value) + _delta(name, base, value)


def _delta(name: str, base: Any, value: Any) -> str:
    """` (+0.0123)` in green when `value` is better than `base`, red when worse."""
    numbers = (int, float)
    if not isinstance(value, numbers) or not isinstance(base, numbers):
        return ""
    delta = float(value) - float(base)
    if abs(delta) < 5e-5:
        return " (=)"
    better = (delta > 0) == GREATER_IS_BETTER.get(name, True)
    colour = "green" if better else "red"
    return f" [{colour}]({delta:+.4f})[/{colour}]"


# mlops models ...


@models_app.command("list")
def models_list(
    wide: WideOption = False,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every registered version, and which one is production (with --wide also when it was
    created and its data version)."""
    session = _open(local, stage, state_dir, quiet=as_json)
    with _reported():
        versions = session.registry.list_versions(session.model)
        alias = session.registry.get_alias(session.model)
        runs = {v.run_id: session.registry.get_run(session.model, v.run_id) or {} for v in versions}
    if as_json:
        _print_json([version.model_dump(mode="json") for version in versions])
        return
    if not versions:
        console.print(f"No versions of {session.model} are registered yet.")
        return
    names = _metric_names(session.config, [v.model_dump() for v in versions])
    names = names if wide else names[:NARROW_METRICS]
    details = ("created", "data version") if wide else ()
    table = _listing(
        f"Versions of {session.model}",
        ("version", "alias", "run id", *details, *names),
        no_wrap=("run id", "created"),
    )
    for version in versions:
        detail_cells = (version.created_at, _text(version.data_version))
        table.add_row(
            str(version.version),
            _production_marker(version.version, alias),
            _text(version.run_id),
            *(detail_cells if wide else ()),
            *(_metric_cell(version.metrics, runs[version.run_id], name) for name in names),
        )
    console.print(table)
    _print_legend(list(runs.values()))
    if alias is None:
        console.print(f"No version of {session.model} is {PRODUCTION} yet.")


@models_app.command("show")
def models_show(
    version: Annotated[int, typer.Argument(help="The version number.")],
    card: Annotated[
        Path | None, typer.Option(help="Also save the model card (HTML) to this file.")
    ] = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """One version: where its files are, what it was trained on, its metrics and inputs."""
    session = _open(local, stage, state_dir)
    with _reported():
        found = session.registry.get_version(session.model, version)
        alias = session.registry.get_alias(session.model)
    if found is None:
        raise _fail(f"{session.model} has no registered version {version}")
    summary = Table(title=f"{session.model} version {version}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    where = f"s3://{session.bucket}/"
    summary.add_row(PRODUCTION, "yes" if _production_marker(version, alias) else "no")
    for name in ("created_at", "run_id", "data_version", "data_versions", "onnx_sha256"):
        summary.add_row(name, _text(getattr(found, name)))
    summary.add_row("previous_version", _text(found.previous_version))
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
            summary.add_row(label, _text(metadata[name]))
    console.print(summary)
    metrics = Table(title="Metrics", show_header=False)
    for name, value in found.metrics.items():
        metrics.add_row(escape(name), _text(value))
    console.print(metrics)
    inputs = (metadata.get("signature") or {}).get("inputs") or []
    if inputs:
        table = Table(title="Inputs")
        for column in ("name", "type", "categories"):
            table.add_column(column, overflow="fold")
        for spec in inputs:
            table.add_row(
                _text(spec.get("name")), _text(spec.get("type")), _text(spec.get("categories"))
            )
        console.print(table)
    if card is not None:
        with _reported():
            session.store().download(session.bucket, found.model_card_key, card)
        console.print(f"Model card saved to {card}")


def _metadata(session: Session, version: ModelVersion) -> dict[str, Any]:
    try:
        document = session.store().get_json(session.bucket, version.prefix + "metadata.json")
    except AdapterError as exc:
        console.print(f"[yellow]warning:[/yellow] metadata.json not readable: {escape(str(exc))}")
        return {}
    return dict(document) if isinstance(document, Mapping) else {}


@models_app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="The version to make production.")],
    reason: ReasonOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Make VERSION the production model and publish ModelPromoted."""
    session = _open(local, stage, state_dir)
    change = _point_alias(session, PRODUCTION, version, reason or "promoted from the mlops CLI")
    if change is not None:
        _moved(session, change)


def _point_alias(session: Session, alias: str, version: int, reason: str) -> AliasChange | None:
    """Move `alias` to `version`, expecting it where it points now (a move racing another
    is refused); None, after saying so, when it points there already."""
    with _reported():
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
            execution=_who(),
            alias=alias,
        )


@models_app.command("rollback")
def models_rollback(
    reason: ReasonOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Point production back at the version before the current one; publish ModelPromoted."""
    session = _open(local, stage, state_dir)
    with _reported():
        change = session.registry.rollback(
            session.model, reason=reason or "rolled back from the mlops CLI", execution=_who()
        )
    _moved(session, change)


@models_app.command("canary")
def models_canary(
    version: Annotated[int, typer.Argument(help="The version to roll out as candidate.")],
    reason: ReasonOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Point alias candidate at VERSION: the predict function serves it to
    `[serving] candidate_share` of requests, then promotes or drops it by its numbers."""
    session = _open(local, stage, state_dir)
    model = session.model
    with _reported():
        production = session.registry.get_alias(model)
    if production is not None and production.version == version:
        raise _fail(f"version {version} of {model} is {PRODUCTION} already")
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
            f"It serves {share:.0%} of requests until {serving.candidate_min_requests} "
            f"requests or {serving.candidate_max_minutes} minutes, then is "
            f"promoted or dropped (see `mlops models history --alias {CANDIDATE}`)."
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
        raise _fail(f"the alias moved, but ModelPromoted was not published: {exc}") from None
    console.print(f"Published ModelPromoted (event {event_id}).", style="dim")


@models_app.command("history")
def models_history(
    alias: Annotated[
        str, typer.Option(help=f"The alias: {PRODUCTION} or {CANDIDATE} (rollouts).")
    ] = PRODUCTION,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every change of an alias (production by default), oldest first: when, what, why, by
    whom. Rollout outcomes show as `promote` (production) and `drop` (candidate)."""
    session = _open(local, stage, state_dir)
    with _reported():
        changes = session.registry.history(session.model, alias)
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
            _text(change.from_version),
            _text(change.to_version),
            _text(change.reason),
            _text(change.execution),
        )
    console.print(table)
