"""`mlops local ...`: run the local cloud in the foreground."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from functions.common.config.loading import CONFIG_JSON_ENV, MlopsConfig
from infra.local import updates
from infra.local.api_adapter import DEFAULT_API_PORT
from infra.local.assembly import AssemblyError, load_stack, stack_names
from infra.local.cloud import REPO_ROOT, LocalCloud
from infra.local.resources import DeployError
from infra.local.server import DEFAULT_HOST, DEFAULT_PORT
from infra.local.synth import SynthError, stale_reason, synthesize

app = typer.Typer(help="The Docker-free local cloud (moto).", no_args_is_help=True)
console = Console()


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the moto server.")] = DEFAULT_PORT,
    api_port: Annotated[
        int, typer.Option(help="Port of the REST API (as sam local start-api).")
    ] = DEFAULT_API_PORT,
    host: Annotated[str, typer.Option(help="Address to bind.")] = DEFAULT_HOST,
    cdk_out: Annotated[Path, typer.Option(help="The synthesized cloud assembly.")] = Path(
        "cdk.out"
    ),
    stage: Annotated[
        str | None,
        typer.Option(help="Stage to deploy: its stack <project>-<stage> (default: dev)."),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(help="Stack to deploy, by name (default: the stack of --stage)."),
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="Where outputs.json is written.")] = Path(
        ".mlops/local"
    ),
    synth: Annotated[
        bool | None,
        typer.Option(
            "--synth/--no-synth",
            help="Synthesize first (default: only if cdk.out is missing or stale: it lacks "
            "the stage's stack, or was synthesized from another config file, or the config "
            "or the app's sources changed since).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run functions in this process (a debugging aid: not their runtime, packages "
            "or limits) instead of function workers.",
        ),
    ] = False,
) -> None:
    """Deploy the stage's stack (dev unless --stage names another) into moto at
    http://HOST:PORT and stay in the foreground (Ctrl-C). Functions run in function workers,
    as Lambda runs them (their runtime's Python, only their packages, their memory, timeout
    and /tmp limits), one environment of each initialised right away."""
    _configure_logging(verbose)
    functions = "inprocess" if in_process else _workers_or_say_why_not()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stage, stack = _stage_and_stack(stage, stack)
    _synthesize_if_needed(cdk_out, synth, stage, stack)
    _say_which_stack(cdk_out, stage, stack)
    try:
        with console.status("Deploying into moto..."):
            cloud = LocalCloud.start(
                cdk_out=cdk_out,
                stack_name=stack,
                mode="server",
                port=port,
                host=host,
                state_dir=state_dir,
                api_port=api_port if _has_rest_api(cdk_out, stack) else None,
                functions=functions,
                prewarm=True,
            )
    except (AssemblyError, DeployError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    try:
        _summary(cloud, state_dir, cdk_out, stack)
        running = updates.announce(state_dir)
        while not stop.wait(0.5):
            result = updates.serve(cloud, running)
            if result is not None:
                print_update(result)
        console.print("Stopping the local cloud...")
    finally:
        updates.retire(state_dir)
        cloud.stop()
    console.print("Stopped.")


@app.command()
def update(
    cdk_out: Annotated[Path, typer.Option(help="The synthesized cloud assembly.")] = Path(
        "cdk.out"
    ),
    stage: Annotated[
        str | None,
        typer.Option(help="Stage of the running stack: its stack <project>-<stage> (dev)."),
    ] = None,
    stack: Annotated[
        str | None, typer.Option(help="Stack, by name (default: the stack of --stage).")
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="The running local cloud's state.")] = Path(
        ".mlops/local"
    ),
    synth: Annotated[
        bool | None,
        typer.Option(
            "--synth/--no-synth",
            help="Synthesize first (default: only if cdk.out is missing or stale).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the update.")] = 600.0,
) -> None:
    """Update the running `mlops local up` in place to the current code and template, as a
    CloudFormation stack update does: unchanged resources keep their data, changed ones are
    updated or replaced, removed ones deleted unless retained (docs/local-cloud.md)."""
    stage, stack = _stage_and_stack(stage, stack)
    _synthesize_if_needed(cdk_out, synth, stage, stack)
    try:
        with console.status(f"Updating stack {stack} in the running local cloud..."):
            result = updates.request(state_dir, cdk_out.resolve(), stack, timeout)
    except updates.UpdateRequestError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    print_update(result)
    if not result.get("ok"):
        raise typer.Exit(1)


def print_update(result: dict[str, Any]) -> None:
    if not result.get("ok"):
        console.print(f"[red]update failed:[/red] {result.get('error')}", highlight=False)
        return
    changes: dict[str, str] = result.get("changes", {})
    table = Table(title=f"Stack update ({result.get('seconds', 0):.1f} s)")
    table.add_column("Resource", style="bold", no_wrap=True)
    table.add_column("Change")
    for logical_id, change in changes.items():
        if change != "kept":
            table.add_row(logical_id, change)
    for logical_id, fate in (result.get("removed") or {}).items():
        table.add_row(logical_id, fate)
    kept = sum(change == "kept" for change in changes.values())
    console.print(table)
    console.print(f"{kept} resources kept unchanged, with their data.", highlight=False)


@app.command("fire-schedule")
def fire_schedule(
    rule: Annotated[str, typer.Argument(help="Schedule rule name (see stack.json).")],
    endpoint: Annotated[str, typer.Option(help="The running local cloud.")] = (
        f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    ),
) -> None:
    """Deliver one scheduled event for RULE to a running `mlops local up`."""
    import boto3

    events = boto3.client(
        "events",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = events.describe_rule(Name=rule)["Arn"]
    # The local cloud delivers a scheduled event to the schedule rule named in its resources.
    events.put_events(
        Entries=[
            {
                "Source": "aws.events",
                "DetailType": "Scheduled Event",
                "Detail": "{}",
                "Resources": [arn],
            }
        ]
    )
    console.print(f"Fired {rule}.")


def _workers_or_say_why_not() -> Literal["workers", "inprocess"]:
    """Function workers need the Lambda runtime's Python; without it, say so once and run
    functions in this process."""
    from infra.cdk.layers import missing_python_message, runtime_python

    if runtime_python() is not None:
        return "workers"
    console.print(
        f"[yellow]warning:[/yellow] {missing_python_message()}. Until then functions run in "
        "this process, with this interpreter and the dev virtualenv's packages: not as Lambda "
        "runs them.",
        highlight=False,
        soft_wrap=True,
    )
    return "inprocess"


def _has_rest_api(cdk_out: Path, stack: str | None) -> bool:
    template = load_stack(cdk_out, stack).template
    return any(
        resource.get("Type") == "AWS::ApiGateway::RestApi"
        for resource in (template.get("Resources") or {}).values()
    )


def _configure_logging(verbose: bool) -> None:
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=True)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("infra.local").setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        # Deliveries and function failures are what a user watches for.
        logging.getLogger("infra.local.eventbridge").setLevel(logging.INFO)


def _stage_and_stack(stage: str | None, stack: str | None) -> tuple[str, str]:
    """The stage to synthesize and the stack to deploy: --stack as given, else the stack of
    --stage (default dev) in the config in use; an unknown stage or a bad config exits 2."""
    from functions.common.config.base import ConfigError
    from functions.common.config.loading import load_config

    stage = stage or "dev"
    try:
        config = load_config()
        config.stage(stage)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    return stage, stack or config.stack_name(stage)


def _synthesize_if_needed(cdk_out: Path, synth: bool | None, stage: str, stack: str) -> None:
    """Synthesize `stage` into cdk_out when asked to, or (by default) when cdk.out is stale,
    saying why; with --no-synth, warn about a stale cdk.out and deploy it."""
    reason = _stale_reason(cdk_out, stack) if synth is not True else "--synth"
    if reason is None:
        return
    if synth is False:
        console.print(
            f"[yellow]warning:[/yellow] deploying {cdk_out} as --no-synth asks, but it is "
            f"stale: {reason}",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(f"Synthesizing stage {stage} into {cdk_out}: {reason}", highlight=False)
    with console.status(f"Synthesizing the CDK app (python -m infra.cdk.app, stage {stage})..."):
        try:
            synthesize(REPO_ROOT, cdk_out.resolve(), {"stage": stage})
        except SynthError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None


def _stale_reason(cdk_out: Path, stack: str) -> str | None:
    reason = stale_reason(cdk_out, REPO_ROOT)
    if reason is not None:
        return reason
    try:
        names = stack_names(cdk_out)
    except AssemblyError as exc:
        return str(exc)
    if stack not in names:
        return f"{cdk_out} holds no stack {stack} (it holds: {', '.join(names) or 'none'})"
    return None


def _say_which_stack(cdk_out: Path, stage: str, stack: str) -> None:
    """Name the stack about to be deployed, and the other stacks the assembly holds."""
    try:
        others = [name for name in stack_names(cdk_out) if name != stack]
    except AssemblyError:
        others = []
    also = f"; {cdk_out} also holds {', '.join(others)} (--stage picks another)" if others else ""
    console.print(f"Deploying stack {stack} (stage {stage}){also}", highlight=False)


def _summary(cloud: LocalCloud, state_dir: Path, cdk_out: Path, stack: str) -> None:
    outputs: dict[str, Any] = cloud.outputs
    table = Table(title=f"Stack {cloud.deployment.stack_name if cloud.deployment else ''}")
    table.add_column("Output", style="bold", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for name, value in outputs.items():
        table.add_row(name, str(value))
    console.print(table)
    endpoint = cloud.endpoint
    seconds = cloud.deployment.seconds if cloud.deployment else 0.0
    console.print(f"Endpoint: [bold]{endpoint}[/bold]  (deployed in {seconds:.1f} s)")
    console.print(f"Outputs:  {state_dir / 'outputs.json'}")
    if cloud.enforce_iam:
        console.print(
            "IAM:      enforced for functions, state machines, rules and the API "
            "(you are the operator: key testing, not evaluated)"
        )
    if "ApiUrl" in outputs:
        console.print(
            f"API:      [bold]{outputs['ApiUrl']}[/bold]  (mlops predict --file rows.json)"
        )
    bucket = outputs.get("DataBucketName", "<bucket>")
    dataset = _dataset(cdk_out, stack)
    machine = outputs.get("PipelineStateMachineArn", "<state-machine-arn>")
    console.print("\nTry it (fake credentials work; the region is us-east-1):", style="bold")
    console.print(
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1\n"
        f"  aws --endpoint-url {endpoint} s3 cp data.csv s3://{bucket}/raw/{dataset}/\n"
        f"  aws --endpoint-url {endpoint} stepfunctions list-executions "
        f"--state-machine-arn {machine}\n",
        highlight=False,
        soft_wrap=True,
    )
    console.print("Ctrl-C stops the local cloud.")


def _dataset(cdk_out: Path, stack: str) -> str:
    """The default model's dataset in the config the deployed functions run with (their
    `MLOPS_CONFIG_JSON`), not the one the config file in use names now."""
    template = load_stack(cdk_out, stack).template
    for resource in (template.get("Resources") or {}).values():
        variables = (resource.get("Properties") or {}).get("Environment", {}).get("Variables", {})
        text = variables.get(CONFIG_JSON_ENV) if isinstance(variables, dict) else None
        if isinstance(text, str):
            return MlopsConfig.model_validate_json(text).dataset.name
    return "<dataset>"
