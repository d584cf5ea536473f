"""`mlops config ...`: check the pipeline config, or write a first one for a new dataset."""

from __future__ import annotations

import json
import re
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig, config_path, load_config
from infra.cli.common import console

config_app = typer.Typer(help="The pipeline config (mlops.toml).", no_args_is_help=True)


class TaskOption(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


def checked_config(file: Path | None = None) -> MlopsConfig:
    """The config, validated as synth validates it (the model's hyperparameters and the gate's
    metrics included: `functions.ml.config_check`); raises ConfigError."""
    from functions.ml.config_check import check_training_config

    config = load_config(file)
    check_training_config(config, str(config_path(file)))
    return config


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None, typer.Argument(help="Config file (default: $MLOPS_CONFIG or mlops.toml).")
    ] = None,
) -> None:
    """Validate the config as synth does; on error, name the file, the key and the problem
    (with the allowed values where there is a list of them) and exit 2."""
    try:
        config = checked_config(file)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table(title="config is valid", show_header=False)
    table.add_row("stacks", ", ".join(config.stack_name(stage) for stage in config.stages))
    several = len(config.models) > 1
    for dataset in config.datasets.values():
        suffix = f" {dataset.name}" if len(config.datasets) > 1 else ""
        table.add_row(f"dataset{suffix}", f"{dataset.name} (drops under raw/{dataset.name}/)")
        table.add_row(
            f"target{suffix}", f"{dataset.target} ({dataset.task.value}, mode {dataset.mode.value})"
        )
        features = (
            ", ".join(f"{name}:{kind.value}" for name, kind in dataset.features.items())
            if dataset.features
            else "inferred from the first good drop, then frozen"
        )
        table.add_row(f"features{suffix}", features)
    for name in config.models:
        view = config.for_model(name)
        trains = view.model.factory or view.estimator
        if several:
            default = ", the default model" if name == config.default_model else ""
            table.add_row(f"model {name}", f"{trains} on {view.dataset.name}{default}")
        else:
            table.add_row("model", f"{name} ({trains})")
    console.print(table)


@config_app.command("init")
def config_init(
    task: Annotated[TaskOption, typer.Option(help="What the model predicts.")],
    data: Annotated[
        Path,
        typer.Option(
            "--from",
            exists=True,
            dir_okay=False,
            help="A data file of the new dataset (csv, csv.gz, parquet, jsonl).",
        ),
    ],
    out: Annotated[Path, typer.Option(help="The config file to write.")] = Path("mlops.toml"),
    target: Annotated[
        str | None,
        typer.Option(help="The target column, as in the file or normalised (default: the last)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Dataset name, the prefix under raw/ (default: the file's).")
    ] = None,
    delimiter: Annotated[
        str, typer.Option(help="The file's field separator (written as dataset.delimiter).")
    ] = ",",
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a minimal, valid config for a new dataset: its name, target and task, and the
    features the pipeline's own ingestion reads from the file (normalised names, types). The
    file is ingested as a first drop would be, so a file the pipeline would reject is named
    here (exit 1); the written config passes `mlops config check`."""
    if out.exists() and not force:
        console.print(f"[red]error:[/red] {out} already exists (--force overwrites it)")
        raise typer.Exit(2)
    from functions.ml.errors import DataRejectedError

    try:
        text = initial_config(data, task=task.value, target=target, name=name, delimiter=delimiter)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except DataRejectedError as exc:
        detected = exc.details.get("detected") if exc.code == "wrong_delimiter" else None
        hint = f" (--delimiter {detected!r} reads it)" if detected else ""
        console.print(
            f"[red]{data} rejected ({exc.code}):[/red] {escape(exc.message)}{hint}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    out.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {out}; use it with: MLOPS_CONFIG={out} mlops config check", highlight=False
    )


def initial_config(
    data: Path, *, task: str, target: str | None, name: str | None, delimiter: str = ","
) -> str:
    """The text of a minimal config for `data`, validated as `config check` validates it."""
    import tomllib

    from functions.common.config.loading import parse_config
    from functions.ml.cleaning import normalise_header
    from functions.ml.ingestion import ingest_file
    from functions.ml.readers.formats import detect_format
    from functions.ml.readers.tables import open_table

    if len(delimiter) != 1:
        raise ConfigError(f"--delimiter must be one character, not {delimiter!r}")
    header = open_table(data, detect_format(data, data.name), delimiter=delimiter, chunk_rows=1_000)
    renames = normalise_header(header.header)
    columns = list(renames.values())
    chosen = columns[-1] if target is None else renames.get(target, target)
    if chosen not in columns:
        raise ConfigError(f"--target {target!r} is not a column of {data} ({', '.join(columns)})")
    dataset_name = name or _dataset_name(data)
    options = {"name": dataset_name, "target": chosen, "task": task, "delimiter": delimiter}
    dataset = parse_config({"dataset": options}, source="mlops config init").dataset
    with tempfile.TemporaryDirectory(prefix="config-init-") as tmp:
        contract = ingest_file(
            data, name=data.name, dataset=dataset, contract=None, out_dir=Path(tmp)
        ).contract
    features = "\n".join(f'{column} = "{kind.value}"' for column, kind in contract.features.items())
    text = (
        f"# Written by `mlops config init` from {data.name}: check the target, the task and the\n"
        "# feature types, then see docs/configuration.md for every other key.\n\n"
        "[stages.dev]\n"
        'removal_policy = "destroy"     # dev data may go with the stack\n\n'
        "[dataset]\n"
        f'name = "{dataset_name}"          # drops under raw/{dataset_name}/ start the pipeline\n'
        f'target = "{chosen}"\n'
        f'task = "{task}"\n'
        + (f"delimiter = {json.dumps(delimiter)}\n" if delimiter != "," else "")
        + "\n"
        "[dataset.features]\n"
        f"{features}\n"
    )
    from functions.ml.config_check import check_training_config

    check_training_config(parse_config(tomllib.loads(text), source=str(data)), str(data))
    return text


def _dataset_name(data: Path) -> str:
    """A dataset name (`[a-z][a-z0-9-]*`, at most 32) from the file name."""
    stem = data.name.split(".")[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:32].strip("-")
    return slug if len(slug) >= 2 else "dataset"
