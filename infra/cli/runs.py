"""`mlops runs ...`: the training runs of one model (`--model`, else the default model): start
one (a retrain), list, show and compare them (see `infra.cli.registry` for the options and
exit codes)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from functions.common.contracts import model_outcome
from functions.ml.metrics import GREATER_IS_BETTER
from infra.cli.common import (
    LocalOption,
    ModelOption,
    StageOption,
    StateDirOption,
    console,
    fail,
    listing,
    record,
    reported,
)
from infra.cli.portfolio import run_status
from infra.cli.registry import (
    NARROW_METRICS,
    JsonOption,
    WideOption,
    cell,
    champion_metric,
    metric_cell,
    metric_names,
    open_registry,
    print_json,
    print_legend,
    production_marker,
)

runs_app = typer.Typer(
    help="Training runs of a model (--model): start, list, show, compare.", no_args_is_help=True
)


@runs_app.command("start")
def runs_start(
    data_version: Annotated[
        str | None,
        typer.Option(help="Dataset version to train on (default: the latest one)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the run).")] = "cli retrain",
    wait: Annotated[bool, typer.Option(help="Wait for the pipeline to finish.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800.0,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Retrain the model without a new drop: start the pipeline with a retrain request that
    names it (the dataset's other models are not retrained)."""
    session = open_registry(local, stage, state_dir, model=model)
    request: dict[str, Any] = {"model": session.model, "reason": reason}
    if data_version:
        request["data_version"] = data_version
    sfn = session.target.client("stepfunctions")
    name = f"retrain-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    with reported(stdout=True):
        started = sfn.start_execution(
            stateMachineArn=session.target.output("PipelineStateMachineArn"),
            name=name,
            input=json.dumps({"retrain": request}),
        )
    console.print(f"Started execution {escape(started['executionArn'])}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with reported(stdout=True), console.status("Training, evaluating, gating..."):
        while (described := sfn.describe_execution(executionArn=started["executionArn"]))[
            "status"
        ] == "RUNNING":
            if time.monotonic() > deadline:
                raise fail(f"still running after {timeout:.0f} s", stdout=True)
            time.sleep(1)
    _print_outcome(described)


def _print_outcome(described: Mapping[str, Any]) -> None:
    if described["status"] != "SUCCEEDED":
        cause = described.get("cause") or described.get("error") or described["status"]
        raise fail(f"the pipeline {described['status'].lower()}: {cause}", stdout=True)
    outcome = model_outcome(json.loads(described.get("output") or "{}"))
    training, evaluation = outcome.get("training", {}), outcome.get("evaluation", {})
    console.print(
        f"run {escape(str(training.get('run_id')))} on data version "
        f"{escape(str(training.get('data_version')))}: [bold]{outcome.get('status')}[/bold]"
    )
    if outcome.get("registered"):
        console.print(f"production is now version {outcome['registered']['version']}")
    for failed in evaluation.get("failed", []):
        console.print(f"  failed: {escape(failed)}")


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    wide: WideOption = False,
    as_json: JsonOption = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """The newest training runs: status, metrics and the version each became (with --wide
    also when it started, the estimator and the data version)."""
    session = open_registry(local, stage, state_dir, model=model, quiet=as_json)
    with reported(stdout=True):
        runs = session.registry.list_runs(session.model, limit=limit)
        alias = session.registry.get_alias(session.model)
    if as_json:
        print_json(runs)
        return
    if not runs:
        console.print(f"No training runs recorded for {session.model} yet.")
        return
    names = metric_names(session.config, runs)
    names = names if wide else names[:NARROW_METRICS]
    details = ("started", "estimator", "data version") if wide else ()
    table = listing(
        f"Training runs of {session.model} (newest first)",
        ("run id", "status", "version", *details, *names),
        no_wrap=("run id", "started"),
    )
    for run in runs:
        metrics = run.get("metrics") or {}
        version = run.get("version")
        marker = production_marker(version, alias)
        detail_cells = (
            cell(run.get("started_at"))[:16].replace("T", " "),
            cell(run.get("estimator")),
            cell(run.get("data_version")),
        )
        table.add_row(
            cell(run["run_id"]),
            cell(run_status(run)),
            f"{cell(version)} ({marker})" if marker else cell(version),
            *(detail_cells if wide else ()),
            *(metric_cell(metrics, run, name) for name in names),
        )
    console.print(table)
    print_legend(runs)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id (see `mlops runs list`).")],
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Everything recorded about one run: summary, parameters, metrics, durations."""
    session = open_registry(local, stage, state_dir, model=model)
    with reported(stdout=True):
        run = session.registry.get_run(session.model, run_id)
    if run is None:
        raise fail(f"no training run {run_id} is recorded for {session.model}", stdout=True)
    summary = record(f"Run {run_id}")
    sections: list[tuple[str, Mapping[str, Any]]] = []
    for name, value in run.items():
        if isinstance(value, Mapping):
            sections.append((name, value))
        else:
            summary.add_row(escape(name), cell(value))
    console.print(summary)
    for name, value in sections:
        table = record(name, key="key")
        for key, item in _flatten(value).items():
            table.add_row(escape(key), cell(item))
        console.print(table)


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


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[
        list[str], typer.Argument(help="Two or more run ids; the first is the baseline.")
    ],
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Runs side by side: data, parameters (differences marked), metrics with changes."""
    if len(run_ids) < 2:
        raise fail("compare needs at least two run ids", stdout=True)
    session = open_registry(local, stage, state_dir, model=model)
    runs = []
    with reported(stdout=True):
        for run_id in run_ids:
            run = session.registry.get_run(session.model, run_id)
            if run is None:
                raise fail(f"no training run {run_id} is recorded for {session.model}", stdout=True)
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
        table.add_column(cell(run["run_id"]), overflow="fold")
    return table


def _overview_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = _compare_table("Runs", runs)
    fields = ("status", "estimator", "data_version", "data_versions", "rows_train", "version")
    for name in fields:
        if any(run.get(name) is not None for run in runs):
            cells = (cell(run_status(run) if name == "status" else run.get(name)) for run in runs)
            table.add_row(name, *cells)
    return table


def _params_table(runs: Sequence[Mapping[str, Any]]) -> Table:
    table = _compare_table("Parameters (* differs)", runs)
    flat = [_flatten(run.get("params") or {}) for run in runs]
    names = list(dict.fromkeys(name for params in flat for name in params))
    for name in names:
        values = [cell(params.get(name)) for params in flat]
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
        cells = [cell(base)]
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
            value, gated = (run.get("metrics") or {}).get(name), champion_metric(run, name)
            if run.get("gate_passed") is None:
                cells.append("-")
            elif gated is None:
                cells.append(f"{cell(value)} (no champion)")
            else:
                version, champion = gated
                cells.append(
                    f"{cell(value)} vs v{version} {cell(champion)}{_delta(name, champion, value)}"
                )
        table.add_row(escape(name), *cells)
    return table


def _gate_decision(run: Mapping[str, Any]) -> str:
    passed = run.get("gate_passed")
    if passed is None:
        return "not gated"
    if passed:
        return "[green]passed[/green]"
    return "[red]rejected[/red]: " + cell(run.get("gate_failed"))


def _with_delta(name: str, base: Any, value: Any) -> str:
    return cell(value) + _delta(name, base, value)


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
