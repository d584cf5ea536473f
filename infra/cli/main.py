"""The `mlops` command. Each command group is a typer sub-app in its own module; this module
composes them and holds the single commands (`python -m infra.cli ...` works as well as the
`mlops` script)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from functions.common.config.base import ConfigError
from functions.common.config.loading import load_config
from infra.cli.batch import batch_app
from infra.cli.common import (
    AllowReplacementOption,
    LocalOption,
    ModelOption,
    StageOption,
    StateDirOption,
    console,
    model_config,
)
from infra.cli.config import checked_config, config_app
from infra.cli.cost import cost
from infra.cli.data import data_app
from infra.cli.dlq import dlq_app
from infra.cli.drift import drift_app
from infra.cli.drops import drops_app
from infra.cli.erasure import erase_app
from infra.cli.migrate import migrate
from infra.cli.models import models_app
from infra.cli.restore import restore
from infra.cli.rollback import rollback
from infra.cli.runs import runs_app
from infra.cli.shadow import shadow_app
from infra.local.cli import app as local_app

app = typer.Typer(
    name="mlops",
    help="Serverless MLOps bundle: synthesize, run locally, operate.",
    no_args_is_help=True,
)
app.add_typer(local_app, name="local")
app.add_typer(runs_app, name="runs")
models_app.add_typer(shadow_app, name="shadow")
app.add_typer(models_app, name="models")
app.add_typer(drift_app, name="drift")
app.add_typer(erase_app, name="erase")
app.add_typer(batch_app, name="batch")
app.add_typer(data_app, name="data")
app.add_typer(drops_app, name="drops")
app.add_typer(config_app, name="config")
app.add_typer(dlq_app, name="dlq")
app.command()(cost)
app.command()(restore)
app.command()(migrate)
app.command()(rollback)


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows in the demo's good drop.")] = 5_000,
) -> None:
    """Run the lifecycle on the local cloud: a good drop and a bad one, and what happened."""
    from infra.cli.demo import DemoFailed, run
    from infra.local.synth import SynthError

    try:
        run(console, rows=rows)
    except ConfigError as exc:
        raise _exit(exc, 2) from None
    except (DemoFailed, SynthError) as exc:
        raise _exit(exc, 1, heading="demo failed") from None


@app.command()
def predict(
    file: Annotated[
        Path, typer.Option("--file", "-f", help='JSON rows: a list, or {"instances": [...]}.')
    ],
    url: Annotated[
        str | None,
        typer.Option(help="API base URL (default: ApiUrl of the running local cloud)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="MLOPS_API_KEY", help="x-api-key (\\[serving] api_key).")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(envvar="MLOPS_LOCAL_STATE_DIR", help="The local cloud's state.")
    ] = Path(".mlops/local"),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The model to ask (POST /v1/models/<model>/predict; default: the API's "
            "default model, POST /v1/predict).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """POST the rows to a model's predict route and print the predictions."""
    from infra.cli.predict_client import PredictError, call_predict, default_api_url

    if model is not None:
        try:
            model_config(load_config(), model)
        except ConfigError as exc:
            raise _exit(escape(str(exc)), 2) from None

    try:
        rows = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}: {exc.msg}"
        takes = 'a JSON list of rows or {"instances": [...]}; a CSV is scored by `mlops batch run`'
        raise _exit(f"{file} is not JSON ({where}); --file takes {takes}", 2) from None
    except (OSError, ValueError) as exc:
        raise _exit(f"{file}: {exc}", 2) from None
    instances = rows.get("instances") if isinstance(rows, dict) else rows
    if not isinstance(instances, list):
        console.print(f'[red]error:[/red] {file}: expected a list or {{"instances": [...]}}')
        raise typer.Exit(2)
    base = url or default_api_url(state_dir)
    try:
        result = call_predict(base, instances, api_key=api_key, model=model)
    except PredictError as exc:
        raise _exit(exc, 1) from None
    served = escape(str(result.get("model_name") or model or "the default model"))
    table = Table(
        title=f"model version {result.get('model_version')} ({served})  "
        f"request {result.get('request_id')}"
    )
    table.add_column("row", justify="right")
    table.add_column("prediction")
    probabilities = result.get("probabilities")
    if probabilities:
        table.add_column("probability", justify="right")
    for index, prediction in enumerate(result.get("predictions", [])):
        cells = [str(index), str(prediction)]
        if probabilities:
            cells.append(f"{max(probabilities[index]):.3f}")
        table.add_row(*cells)
    console.print(table)


@app.command()
def predeploy(
    stage: Annotated[str, typer.Option(help="The stage about to be deployed.")] = "dev",
    aws: Annotated[
        bool, typer.Option("--aws", help="Compare with the stack's template on CloudFormation.")
    ] = False,
    against: Annotated[
        Path | None,
        typer.Option(help="Compare with this cloud assembly (cdk.out) or template file."),
    ] = None,
    against_revision: Annotated[
        str | None,
        typer.Option(help="Compare with this git revision, synthesized for the same stage."),
    ] = None,
    allow_replacement: AllowReplacementOption = None,
    cdk_out: Annotated[
        Path | None,
        typer.Option(help="A synthesized cloud assembly of the stage to check (default: synth)."),
    ] = None,
    template_only: Annotated[
        bool, typer.Option(help="Only compare the templates (skip the build checks).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Checks before a deploy: serving layer size, training requirements resolve for
    Lambda's arm64 Python 3.13, the training Dockerfile, every function's handler imports
    with only its deployed packages (none needs AWS); and the template against the deployed
    one (from CloudFormation with --aws, else --against, --against-revision or the last
    synth in cdk.out/): a resource holding data that would be replaced or deleted is
    refused unless --allow-replacement names it. Exit 1 on any failure."""
    from infra.cli.predeploy import (
        PredeployError,
        deployed_template,
        json_document,
        print_changes,
        run_predeploy,
    )

    try:
        config = load_config()
    except ConfigError as exc:
        raise _exit(exc, 2) from None
    if stage not in config.stages:
        known = ", ".join(config.stages)
        console.print(f"[red]error:[/red] no stage {stage!r} in the config (stages: {known})")
        raise typer.Exit(2)
    if sum((aws, against is not None, against_revision is not None)) > 1:
        raise _exit("choose one of --aws, --against and --against-revision", 2)
    stack = config.stack_name(stage)
    if not as_json:
        console.print(f"pre-deploy checks for {stack}", style="bold")
    try:
        deployed = deployed_template(
            stack,
            stage,
            aws=aws,
            against=against,
            against_revision=against_revision,
            cdk_out=cdk_out,
        )
        results, verdict = run_predeploy(
            stack,
            stage,
            deployed,
            allowed=allow_replacement or [],
            cdk_out=cdk_out,
            template_only=template_only,
        )
    except PredeployError as exc:
        raise _exit(escape(str(exc)), 1) from None
    if as_json:
        print(json_document(stack, deployed, results, verdict))
        if not all(result.passed for result in results):
            raise typer.Exit(1)
        return
    print_changes(verdict)
    _report(
        [
            (
                r.passed,
                f"{r.name}: {escape(r.figure)}",
                [f"[red]-[/red] {escape(p)}" for p in r.problems],
            )
            for r in results
        ]
    )


def _exit(message: object, code: int, *, heading: str = "error") -> typer.Exit:
    """Print `<heading>: <message>` (the message as markup, as these commands always printed
    it) and return the exit to raise."""
    console.print(f"[red]{heading}:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _report(results: list[tuple[bool, str, list[str]]]) -> None:
    """One line per check (pass or FAIL, then what it found) and its details indented; exit
    1 if any failed."""
    for passed, line, details in results:
        status = "[green]pass[/green]" if passed else "[red]FAIL[/red]"
        console.print(f"{status} {line}", highlight=False, soft_wrap=True)
        for detail in details:
            console.print(f"  {detail}", highlight=False, soft_wrap=True)
    if not all(passed for passed, _, _ in results):
        raise typer.Exit(1)


@app.command()
def smoke(
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Check a deployed stack without changing its data: every function initialises (a
    health-check invocation), the API's health routes answer, alias production resolves and
    its model's checksum verifies. Exit 1 on any failure (`make deploy` runs it)."""
    from infra.cli.smoke import run_smoke
    from infra.cli.target import TargetError, resolve_target
    from infra.cli.target import state_dir as local_state_dir

    try:
        config = load_config()
        target = resolve_target(config, local=local, stage=stage, local_state=state_dir)
    except ConfigError as exc:
        raise _exit(exc, 2) from None
    except TargetError as exc:
        raise _exit(exc, 1) from None
    console.print(f"smoke test of {target.description}", style="bold")
    results = run_smoke(config, target, stage, local_state_dir(state_dir))
    _report(
        [(r.passed, f"{r.check}: {r.detail}", [f"note: {n}" for n in r.notes]) for r in results]
    )


@app.command("train-local")
def train_local(
    data: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="A local data file (csv, csv.gz, parquet, jsonl)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where the model and its reports go.")] = Path(
        ".mlops/train-local"
    ),
    champion: Annotated[
        Path | None,
        typer.Option(help="A champion model.onnx (signature.json beside it) to gate against."),
    ] = None,
    model: ModelOption = None,
) -> None:
    """Ingest, train and evaluate a local file with the pipeline's own code, no cloud, as the
    pipeline trains the model (--model, else the default model; the file is its dataset):
    writes model.onnx, model_card.html, metrics.json, reference_profile.json, signature.json."""
    from functions.common.config.loading import config_path
    from functions.ml.boosting import MissingFrameworkError
    from functions.ml.errors import DataRejectedError
    from functions.ml.model_code import ModelCodeError
    from functions.ml.onnx_model import ParityError, UnconvertibleStepError
    from infra.cli.train_local import ChampionNotFoundError
    from infra.cli.train_local import train_local as run_train_local

    try:
        config = model_config(checked_config(), model)
        console.print(f"model {config.model_name} (dataset {config.dataset.name})", style="dim")
        run = run_train_local(
            data,
            out,
            config=config,
            champion=champion,
            config_dir=config_path().resolve().parent,
        )
    except ConfigError as exc:
        raise _exit(exc, 2) from None
    except DataRejectedError as exc:
        raise _exit(exc.message, 1, heading=f"{data} rejected ({exc.code})") from None
    except (
        ParityError,
        ChampionNotFoundError,
        ModelCodeError,
        UnconvertibleStepError,
        MissingFrameworkError,
        OSError,
    ) as exc:
        raise _exit(exc, 1, heading="train-local failed") from None
    evaluation = run.evaluation
    table = Table(title=f"{run.run.model_name} on {data.name}: {run.run.rows_test} held-out rows")
    table.add_column("metric")
    table.add_column("candidate", justify="right")
    if evaluation.champion_metrics is not None:
        table.add_column("champion", justify="right")
    for name, value in evaluation.metrics.items():
        cells = [name, f"{value:.4f}"]
        if evaluation.champion_metrics is not None:
            champion_value = evaluation.champion_metrics.get(name)
            cells.append("" if champion_value is None else f"{champion_value:.4f}")
        table.add_row(*cells)
    console.print(table)
    verdict = "[green]passed[/green]" if evaluation.passed else "[red]failed[/red]"
    console.print(f"gate {verdict}" + "".join(f"\n  {m}" for m in evaluation.failed))
    console.print(f"wrote {run.out_dir} in {run.durations['total']:.1f} s", highlight=False)


def main() -> None:
    app()
