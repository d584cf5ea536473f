"""`mlops cost`: what the stack costs, from its synthesized template, its config, the figures
`make bench` measured and the list prices in infra/cli/cost_sheet/prices.toml. No AWS calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig
from infra.cli.common import console, errors, fail, listing
from infra.cli.config import checked_config
from infra.cli.cost_sheet.parts import (
    MEASURED_FILE,
    REPO,
    MeasuredInputsError,
    Sheet,
    load_measured,
    shown,
)
from infra.cli.cost_sheet.prices import PRICES_FILE, PriceFileError, load_prices
from infra.cli.cost_sheet.sheet import build_sheet
from infra.cli.cost_sheet.stack import TemplateError, read_template

COST_CDK_OUT = REPO / ".mlops" / "cost" / "cdk.out"


def cost(
    stage: Annotated[str, typer.Option(help="The stage whose stack is priced.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="The whole sheet as JSON.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="The sheet as Markdown tables (docs/cost.md).")
    ] = False,
    predictions_per_month: Annotated[
        float, typer.Option(min=0, help="Predictions (one-row requests) a month.")
    ] = 1_000_000,
    retrains_per_month: Annotated[
        float | None,
        typer.Option(min=0, help="Retrainings a month [default: the retrain schedule's, else 1]."),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="The stack's synthesized template [default: cdk.out when current, else "
            "synthesized into .mlops/cost/cdk.out].",
        ),
    ] = None,
    prices: Annotated[Path, typer.Option(dir_okay=False, help="The price file.")] = PRICES_FILE,
    measured: Annotated[
        Path, typer.Option(dir_okay=False, help="The measured inputs (`make bench`).")
    ] = MEASURED_FILE,
) -> None:
    """What the stage's stack costs: idle per month, per million predictions, per retraining,
    per drift check, and a month at the given volumes; each figure with its formula and where
    each input comes from (template, config, measured, price file). Works offline."""
    try:
        config = checked_config()
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    if stage not in config.stages:
        raise fail(f"no stage {stage!r} in the config (stages: {', '.join(config.stages)})", 2)
    stack = config.stack_name(stage)
    try:
        facts = read_template(template or _synthesized(config, stage, stack))
        sheet = build_sheet(
            stack=stack,
            stage=stage,
            facts=facts,
            config=config.for_stage(stage),
            prices=load_prices(prices),
            measured=load_measured(measured),
            predictions_per_month=predictions_per_month,
            retrains_per_month=retrains_per_month,
        )
    except (TemplateError, PriceFileError, MeasuredInputsError) as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        typer.echo(json.dumps(sheet.to_json(), indent=1))
    elif as_markdown:
        typer.echo(markdown(sheet), nl=False)
    else:
        show(sheet)


def _synthesized(config: MlopsConfig, stage: str, stack: str) -> Path:
    """The stack's template from cdk.out (or the cost sheet's own assembly) when its last
    synthesis wrote the stack and is current, else synthesized now into .mlops/cost/cdk.out."""
    from infra.local.synth import SynthError, stale_reason, synthesize

    for out in (REPO / "cdk.out", COST_CDK_OUT):
        if _holds(out, stack) and stale_reason(out, REPO) is None:
            return out / f"{stack}.template.json"
    errors.print(f"synthesizing {stack} into {shown(COST_CDK_OUT)} ...", style="dim")
    try:
        synthesize(REPO, COST_CDK_OUT, {"stage": stage})
    except SynthError as exc:
        raise fail(str(exc)) from None
    return COST_CDK_OUT / f"{stack}.template.json"


def _holds(cdk_out: Path, stack: str) -> bool:
    """Whether the last synthesis into `cdk_out` wrote `stack` (its manifest lists the stacks
    of the last synthesis; a template left by an earlier one may be stale)."""
    try:
        manifest = json.loads((cdk_out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stack in (manifest.get("artifacts") or {})


def usd(value: float) -> str:
    """Dollars: cents from $1 up, four decimals from a cent, three significant digits below."""
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4f}" if abs(value) >= 0.01 else f"{value:.3g}"


def show(sheet: Sheet) -> None:
    console.print(
        f"cost sheet of {sheet.stack} (USD; template {sheet.template})",
        style="bold",
        highlight=False,
    )
    for figure in sheet.figures.values():
        table = listing(f"{figure.title}: ${usd(figure.usd)}", ("item", "formula", "USD"))
        table.caption = figure.note
        for line in figure.lines:
            table.add_row(line.item, line.formula, usd(line.usd))
        console.print(table)
    inputs = {i.name: i for f in sheet.figures.values() for line in f.lines for i in line.inputs}
    table = listing("Inputs", ("name", "value", "unit", "source", "where"), no_wrap=("name",))
    for name in sorted(inputs):
        i = inputs[name]
        table.add_row(name, f"{i.value:,.10g}", i.unit, i.source, i.where)
    console.print(table)
    for note in sheet.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def markdown(sheet: Sheet) -> str:
    """The sheet as Markdown: each figure's table of lines, then the inputs table. The
    template's path is left out: every synthesis of the same stack gives the same text."""
    measured, prices = sheet.measured, sheet.prices
    out = [
        f"Stack `{sheet.stack}`; a month of {sheet.volumes['predictions_per_month']:,.0f} "
        f"predictions and {sheet.volumes['retrains_per_month']:,.4g} retraining(s). Prices: "
        f"`{prices.source_name}`, {prices.region}, {prices.date.isoformat()}. Measured: "
        f"`{measured.source}`, {measured.date}, {measured.machine}.",
        "",
    ]
    for figure in sheet.figures.values():
        out += [f"**{figure.title}: ${usd(figure.usd)}** ({figure.note})", ""]
        out += ["| item | formula | USD |", "|---|---|--:|"]
        out += [f"| {line.item} | `{line.formula}` | {usd(line.usd)} |" for line in figure.lines]
        out.append("")
    inputs = {i.name: i for f in sheet.figures.values() for line in f.lines for i in line.inputs}
    out += ["| input | value | unit | source | where |", "|---|--:|---|---|---|"]
    for name in sorted(inputs):
        i = inputs[name]
        out.append(f"| `{name}` | {i.value:,.10g} | {i.unit} | {i.source} | {i.where} |")
    return "\n".join(out) + "\n"
