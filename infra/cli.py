"""The `mlops` command. Each concern is a typer sub-app or command in its own module; this file
only composes them (`python -m infra.cli ...` works as well as the `mlops` script)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from functions.common.config import ConfigError, load_config
from infra.local.cli import app as local_app
from infra.registry_cli import models_app, runs_app

app = typer.Typer(
    name="mlops",
    help="Serverless MLOps bundle: synthesize, run locally, operate.",
    no_args_is_help=True,
)
app.add_typer(local_app, name="local")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
config_app = typer.Typer(help="The pipeline config (mlops.toml).", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console()


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None, typer.Argument(help="Config file (default: $MLOPS_CONFIG or mlops.toml).")
    ] = None,
) -> None:
    """Validate the config; on error, name the file, the key and the problem (exit 2)."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    table = Table(title="config is valid", show_header=False)
    table.add_row("stacks", ", ".join(config.stack_name(stage) for stage in config.stages))
    dataset = config.dataset
    table.add_row("dataset", f"{dataset.name} (drops under raw/{dataset.name}/)")
    table.add_row("target", f"{dataset.target} ({dataset.task.value}, mode {dataset.mode.value})")
    features = (
        ", ".join(f"{name}:{kind.value}" for name, kind in dataset.features.items())
        if dataset.features
        else "inferred from the first good drop, then frozen"
    )
    table.add_row("features", features)
    console.print(table)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows in the demo's good drop.")] = 5_000,
) -> None:
    """Run the lifecycle on the local cloud: a good drop and a bad one, and what happened."""
    from infra.demo import DemoFailed, run
    from infra.local.synth import SynthError

    try:
        run(console, rows=rows)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except (DemoFailed, SynthError) as exc:
        console.print(f"[red]demo failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
