"""`mlops data ...`: the dataset versions of a model's dataset (`--model`, else the default
model's), and retiring a bad one, on the local cloud or on AWS (the same target options as
`mlops models`).

A retired version keeps its raw drop, curated files and registry item; the registry records
who retired it, when and why, and training leaves it out from then on. The target line goes
to stderr, so `--json` output is pure JSON on stdout. Exit codes: 0 done, 1 the target or the
registry refused (one sentence says why), 2 bad arguments or an invalid config.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from functions.adapters.datasets import DatasetRegistry
from functions.common.contracts import DatasetRef, Retirement
from infra.cli.common import (
    REGISTRY_TABLE_OUTPUT,
    LocalOption,
    ModelOption,
    StageOption,
    StateDirOption,
    console,
    errors,
    fail,
    model_config,
    open_target,
    reported,
    who,
)

data_app = typer.Typer(
    help="Dataset versions of a model's dataset (--model): list, show, retire.",
    no_args_is_help=True,
)
VersionArgument = Annotated[str, typer.Argument(help="The data version (its content hash).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _open(
    local: bool | None, stage: str, state_dir: Path | None, model: str | None
) -> tuple[DatasetRegistry, str]:
    """The dataset registry of the target, and the name of `model`'s dataset (the default
    model's when None)."""
    config, target, (table,) = open_target(local, stage, state_dir, REGISTRY_TABLE_OUTPUT)
    config = model_config(config, model)
    errors.print(f"target: {target.description}, dataset {config.dataset.name}", style="dim")
    return DatasetRegistry(table, target.client("dynamodb")), config.dataset.name


def _document(ref: DatasetRef) -> dict[str, Any]:
    return ref.model_dump(mode="json", exclude={"already_ingested", "ingested"})


def _find(registry: DatasetRegistry, dataset: str, version: str) -> DatasetRef:
    ref = registry.get_version(dataset, version)
    if ref is None:
        raise fail(f"dataset version {version!r} of {dataset} is not registered")
    return ref


@data_app.command("list")
def data_list(
    as_json: JsonOption = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every version of the dataset, newest first, with its rows, source and whether it is
    retired; and the class set of the target when it is frozen."""
    registry, dataset = _open(local, stage, state_dir, model)
    with reported(stdout=True):
        versions = list(reversed(registry.list_versions(dataset)))
        classes = registry.get_classes(dataset)
    if as_json:
        print(json.dumps([_document(ref) for ref in versions], indent=2))
        return
    table = Table(title=f"dataset {dataset}: {len(versions)} version(s)")
    for column in ("version", "created", "rows", "source", "retired"):
        table.add_column(column, overflow="fold")
    for ref in versions:
        retired = f"{ref.retired.at} {ref.retired.by}" if ref.retired else "-"
        table.add_row(
            ref.data_version, ref.created_at, str(ref.rows), escape(ref.source.key), retired
        )
    console.print(table)
    if classes is not None:
        console.print(f"classes of the target: {escape(', '.join(classes))}", highlight=False)


@data_app.command("show")
def data_show(
    version: VersionArgument,
    as_json: JsonOption = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """One version: where it came from, its files, and its retirement if any."""
    registry, dataset = _open(local, stage, state_dir, model)
    with reported(stdout=True):
        ref = _find(registry, dataset, version)
    if as_json:
        print(json.dumps(_document(ref), indent=2))
        return
    _print_version(ref)


def _print_version(ref: DatasetRef) -> None:
    source = ref.source
    fields = {
        "data version": ref.data_version,
        "created": ref.created_at,
        "rows": str(ref.rows),
        "source": f"s3://{source.bucket}/{source.key}"
        + (f" (version {source.version_id})" if source.version_id else ""),
        "manifest": ref.manifest_key,
        "status": "retired" if ref.retired else "active (used for training)",
    }
    if ref.retired is not None:
        fields |= {
            "retired at": ref.retired.at,
            "retired by": ref.retired.by,
            "reason": ref.retired.reason,
        }
    width = max(map(len, fields))
    for name, value in fields.items():
        console.print(f"{name:<{width}}  {escape(value)}", highlight=False, soft_wrap=True)


@data_app.command("retire")
def data_retire(
    version: VersionArgument,
    reason: Annotated[
        str, typer.Option(help="Why; recorded in the registry with who retired it and when.")
    ],
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Leave a bad version out of training from now on; its files and registry item stay."""
    if not reason.strip():
        raise fail("--reason must say why the version is retired", 2)
    registry, dataset = _open(local, stage, state_dir, model)
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with reported(stdout=True):
        ref = registry.retire_version(
            dataset, version, Retirement(at=at, by=who(), reason=reason.strip())
        )
    console.print(f"retired {ref.data_version} of {dataset}; training leaves it out from now on")
    _print_version(ref)
