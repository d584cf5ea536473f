"""What `mlops runs ...` and `mlops models ...` share: the session on the model registry, the
options, and how runs and versions read in tables.

Every command prints the target it talks to first, except with `--json`: then stdout holds one
JSON document and nothing else. Tables fit an 80-column terminal (cells wrap); `--wide` adds
the columns left out. Exit codes: 0 done, 1 the target or the
registry refused (one sentence says why, on stdout), 2 the config is invalid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from functions.adapters.registry.aliases import PRODUCTION
from functions.common.config.loading import MlopsConfig
from functions.common.contracts import AliasState
from infra.cli.common import REGISTRY_TABLE_OUTPUT, Session, console, open_session, text


def open_registry(
    local: bool | None,
    stage: str,
    state_dir: Path | None,
    *,
    model: str | None = None,
    quiet: bool = False,
) -> Session:
    """The session of a runs or models command on `model` (the default model when None): the
    target must have the registry table; its errors go to stdout."""
    return open_session(
        local,
        stage,
        state_dir,
        model=model,
        quiet=quiet,
        stdout=True,
        needs=(REGISTRY_TABLE_OUTPUT,),
    )


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


def cell(value: Any) -> str:
    """A value as table text (`common.text`), except that integers (versions, row counts) read
    as recorded and mappings as JSON, escaped so "[x]" never reads as markup."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping):
        return escape(json.dumps(value, default=str))
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value) or "-"
    return text(value)


def metric_names(config: MlopsConfig, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gate's metrics when configured (and reported), else the first few reported."""
    reported: list[str] = []
    for record in records:
        reported.extend(m for m in record.get("metrics") or {} if m not in reported)
    gated = [m for m in config.gate.metrics if m in reported]
    return gated or reported[:3]


def print_json(document: Any) -> None:
    """`document` as JSON on stdout, alone (for jq and friends): never wrapped or styled."""
    typer.echo(json.dumps(document, indent=2, default=str))


def champion_metric(run: Mapping[str, Any], name: str) -> tuple[int, Any] | None:
    """The champion version `run` was gated against and its `name` metric on the run's
    held-out rows, or None when the run had no champion (or no such metric)."""
    champion, scored = run.get("champion_version"), run.get("champion_metrics") or {}
    if champion is None or name not in scored:
        return None
    return int(champion), scored[name]


def metric_cell(metrics: Mapping[str, Any], run: Mapping[str, Any], name: str) -> str:
    """The metric, and below it the champion's on the same held-out rows ("vN value")."""
    value = cell(metrics.get(name))
    gated = champion_metric(run, name)
    return value if gated is None else f"{value}\nv{gated[0]} {cell(gated[1])}"


def print_legend(runs: Sequence[Mapping[str, Any]]) -> None:
    if any(run.get("champion_metrics") for run in runs):
        console.print(GATE_LEGEND, style="dim", highlight=False)


def production_marker(version: int | None, alias: AliasState | None) -> str:
    return PRODUCTION if alias is not None and alias.version == version else ""
