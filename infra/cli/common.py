"""What the command groups of `mlops` share: the consoles, the target and model options, failing
with one sentence and an exit code, refusals and AWS failures reported as such, opening the
target a command talks to and choosing the model it acts on, and table text.

A command on one model acts on `--model`, else on the config's default model (the only model,
`[project] default_model`, or the first model); it says which on its first line.

Exit codes: 0 done, 1 the target, the registry or AWS refused (one sentence says why), 2 bad
arguments or an invalid config.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig, load_config
from functions.common.errors import AdapterError, ModelRegistryError
from functions.common.formats import FormatVersionError
from infra.cli.target import STATE_DIR_ENV, Target, TargetError, resolve_target

console = Console()
errors = Console(stderr=True)

DATA_BUCKET_OUTPUT = "DataBucketName"
REGISTRY_TABLE_OUTPUT = "RegistryTableName"

LocalOption = Annotated[
    bool | None,
    typer.Option(
        "--local/--aws",
        help="The local cloud (default when its outputs.json exists) or the AWS stack.",
        show_default=False,
    ),
]
StageOption = Annotated[str, typer.Option(help="Stage of the AWS stack (with --aws).")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="The configured model (default: the only model, or \\[project] default_model).",
        show_default=False,
    ),
]
AllowReplacementOption = Annotated[
    list[str] | None,
    typer.Option(
        metavar="LOGICAL_ID",
        help="Let this stateful resource be replaced or deleted (repeatable).",
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        help="The local cloud's state directory.",
        envvar=STATE_DIR_ENV,
        show_default=".mlops/local",
    ),
]


def fail(message: str, code: int = 1, *, stdout: bool = False) -> typer.Exit:
    """Print `error: <message>` and return the exit to raise: on stderr as one line, or with
    `stdout` on stdout, wrapped to the terminal (the `runs`, `models` and `erase` commands)."""
    text = f"[red]error:[/red] {escape(message)}"
    if stdout:
        console.print(text, highlight=False)
    else:
        errors.print(text, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def reported(*, stdout: bool = False) -> Iterator[None]:
    """Refusals and AWS failures as one sentence (`fail`) and exit code 1: the target's, an
    adapter's or the registry's own message, a refused AWS call as `Code: Message`."""
    try:
        yield
    except (TargetError, ModelRegistryError, AdapterError, FormatVersionError) as exc:
        raise fail(str(exc), stdout=stdout) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
        raise fail(message, stdout=stdout) from None
    except BotoCoreError as exc:
        raise fail(f"the AWS call failed: {exc}", stdout=stdout) from None


def checked(*, stdout: bool = False) -> MlopsConfig:
    """The config; exit 2 when it is invalid."""
    try:
        return load_config()
    except ConfigError as exc:
        raise fail(str(exc), 2, stdout=stdout) from None


def model_config(config: MlopsConfig, model: str | None, *, stdout: bool = False) -> MlopsConfig:
    """The view of `model` (the default model when None); exit 2 with one line listing the
    configured models when it is not one of them."""
    return config.for_model(chosen_model(config, model, stdout=stdout))


def open_target(
    local: bool | None,
    stage: str,
    state_dir: Path | None,
    *outputs: str,
    stdout: bool = False,
    config: MlopsConfig | None = None,
) -> tuple[MlopsConfig, Target, list[str]]:
    """The config (`config`, else the file's), the target the options choose and the values
    of its stack `outputs`; exit 2 on an invalid config, 1 when the target or one of the
    outputs is missing."""
    config = config or checked(stdout=stdout)
    try:
        target = resolve_target(config, local=local, stage=stage, local_state=state_dir)
        values = [target.output(name) for name in outputs]
    except ConfigError as exc:
        raise fail(str(exc), 2, stdout=stdout) from None
    except TargetError as exc:
        raise fail(str(exc), stdout=stdout) from None
    return config, target, values


@dataclass
class Session:
    """What one command on one model works with: that model's view of the config (its dataset,
    its gate, drift and serving settings), the whole config, the target, its data bucket."""

    config: MlopsConfig
    portfolio: MlopsConfig
    target: Target
    bucket: str

    @property
    def model(self) -> str:
        return self.config.model_name

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(
            self.target.output(REGISTRY_TABLE_OUTPUT), self.target.client("dynamodb")
        )

    def store(self) -> ObjectStore:
        return ObjectStore(self.target.client("s3"))


def chosen_model(config: MlopsConfig, model: str | None, *, stdout: bool = False) -> str:
    """`--model` when it is a configured model (one line naming the configured ones when it is
    not), else the default model."""
    if model is None:
        return config.default_model
    if model not in config.models:
        raise fail(
            f"--model {model!r} is not a configured model: {', '.join(config.model_names)}",
            2,
            stdout=stdout,
        )
    return model


def open_session(
    local: bool | None,
    stage: str,
    state_dir: Path | None,
    *,
    model: str | None = None,
    quiet: bool = False,
    stdout: bool = False,
    needs: Sequence[str] = (),
) -> Session:
    """The session of a command on `model` (the default model when None; an unknown one exits
    2 before any target is reached), after checking the target has the data bucket and the
    outputs it `needs`; says which target and model, unless `quiet`."""
    portfolio = checked(stdout=stdout)
    view = model_config(portfolio, model, stdout=stdout)
    _, target, values = open_target(
        local, stage, state_dir, *needs, DATA_BUCKET_OUTPUT, stdout=stdout, config=portfolio
    )
    if not quiet:
        console.print(f"target: {target.description}, model {view.model_name}", style="dim")
    return Session(config=view, portfolio=portfolio, target=target, bucket=values[-1])


def text(value: Any) -> str:
    """A value as terminal text; recorded data is escaped, so "[x]" never reads as markup."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value) or "-"
    return escape(str(value))


def listing(title: str, columns: Sequence[str], no_wrap: Sequence[str] = ()) -> Table:
    """A table whose cells wrap to fit the terminal, except `no_wrap` (ids), never cut to "…"."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in no_wrap, overflow="fold")
    return table


def record(title: str, key: str = "field") -> Table:
    """A table of one record's fields, a row each: the name in bold, the value wrapping to fit
    the terminal, never cut to "…"."""
    table = Table(title=title, show_header=False)
    table.add_column(key, style="bold")
    table.add_column("value", overflow="fold")
    return table


def who() -> str:
    """Who acts, as recorded in the registry: `cli:<user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
