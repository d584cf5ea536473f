"""What `mlops demo` prints: each drop's outcome with the gate's decision, the serving API's
answers, and the drift checks with the retraining they started."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table


def show(console: Console, summary: dict[str, Any]) -> None:
    """The demo's summary (`demo.run`): drops, serving, monitoring, and where the files are."""
    table = Table(title="What the pipeline did with each drop", show_lines=True)
    table.add_column("drop", overflow="fold")
    table.add_column("outcome")
    table.add_column("details", overflow="fold")
    for outcome in summary["outcomes"]:
        table.add_row(
            f"{outcome['label']}\n{outcome['key']}", _colour(outcome["outcome"]), _details(outcome)
        )
    console.print(table)
    for outcome in summary["outcomes"]:
        evaluation = outcome.get("output", {}).get("evaluation")
        if evaluation:
            console.print(_gate_table(outcome, evaluation))
    _show_serving(console, summary["serving"])
    _show_monitoring(console, summary["monitoring"])
    console.print(
        Panel.fit(
            f"model card: {summary['model_card']} (open it in a browser)\n"
            f"alerts published to the SNS topic: {summary['alerts_sent']}\n"
            f"function logs: {summary['function_logs']}\n"
            f"timings (s): {summary['timings']}",
            title="local cloud",
        )
    )


def _show_serving(console: Console, serving: dict[str, Any]) -> None:
    url, answer = serving["url"], serving["predict"]["body"]
    table = Table(title=f"POST {url}v1/predict: three customers")
    for column in ("contract", "tenure", "monthly $", "prediction", "probabilities", "version"):
        table.add_column(column)
    classes = answer.get("classes") or []
    for row, label, probabilities in zip(
        serving["rows"],
        answer.get("predictions", []),
        answer.get("probabilities", []),
        strict=False,
    ):
        table.add_row(
            str(row["contract"]),
            str(row["tenure_months"]),
            str(row["monthly_charges"]),
            f"[bold]{label}[/bold]",
            ", ".join(f"{name} {p:.3f}" for name, p in zip(classes, probabilities, strict=False)),
            str(answer.get("model_version")),
        )
    console.print(table)
    bad = serving["bad"]
    console.print(
        f'a wrong type (age = "forty") -> HTTP {bad["status"]}: '
        + json.dumps(bad["body"], separators=(", ", ": ")),
        soft_wrap=True,
    )
    model = serving["model"]["body"]
    metrics = ", ".join(
        f"{name} {value:.3f}"
        for name, value in model.get("metrics", {}).items()
        if name in ("roc_auc", "f1_macro", "accuracy")
    )
    console.print(
        Panel.fit(
            f"GET {url}v1/model: {model.get('model_name')} version {model.get('model_version')} "
            f"({model.get('task')}, {len(model.get('signature', {}).get('inputs', []))} inputs, "
            f"classes {model.get('classes')})\n"
            f"metrics: {metrics}\npromoted at: {model.get('promoted_at')}\n"
            "(the API stopped with the demo; `mlops local up` serves it on port 3000, then "
            "`mlops predict --file rows.json`)",
            title="serving API (local)",
        )
    )


def _show_monitoring(console: Console, monitoring: dict[str, Any]) -> None:
    steps = (("normal traffic", monitoring["normal"]), ("shifted traffic", monitoring["shifted"]))
    for label, step in steps:
        check = step["check"]
        version = check["versions"][0] if check["versions"] else None
        report = version["report"] if version else None
        served = f", model v{version['model_version']}" if version else ""
        title = (
            f"Drift check {check['check_id']} ({label}, {check['window']['rows']} rows"
            f"{served}): {check['verdict'].upper().replace('_', ' ')}"
        )
        table = Table(title=title)
        for column in ("feature", "severity", "score", "statistics"):
            table.add_column(column)
        features = (report or {}).get("features", {})
        for name, feature in sorted(
            features.items(), key=lambda item: (-_RANK[item[1]["severity"]], item[0])
        ):
            stats = feature.get("statistics", {})
            shown = ", ".join(
                f"{key} {stats[key]:.3f}"
                for key in ("psi", "wasserstein_normed", "js_distance", "null_share_change")
                if isinstance(stats.get(key), int | float)
            )
            table.add_row(
                name,
                _severity(feature["severity"]),
                "-" if feature.get("score") is None else f"{feature['score']:.3f}",
                shown,
            )
        console.print(table)
        retrain = check["retrain"]
        decision = (
            f"retraining requested ({retrain['reason']})"
            if retrain["requested"]
            else f"no retraining ({retrain['skipped'] or 'nothing drifted'})"
        )
        lines = [f"report: {step['report']}", decision]
        if step["retrain"]:
            run = step["retrain"]
            lines.append(
                f"the DriftDetected event started the pipeline with {json.dumps(run['input'])}: "
                f"{run['status']}, [bold]{run['outcome']}[/bold]"
            )
            evaluation = run["output"].get("evaluation")
            if evaluation and not evaluation["passed"]:
                lines.append("the gate decided: " + "; ".join(evaluation["failed"]))
            model = run["output"].get("registered")
            if model:
                lines.append(f"the gate promoted version {model['version']}")
        console.print(Panel.fit("\n".join(lines), title=f"drift check: {label}"))


_RANK = {"major": 2, "minor": 1, "none": 0}


def _severity(severity: str) -> str:
    colour = {"major": "red", "minor": "yellow"}.get(severity, "green")
    return f"[{colour}]{severity}[/{colour}]"


def _details(outcome: dict[str, Any]) -> str:
    if outcome["outcome"] == "quarantined":
        reason = outcome["reason"]
        return (
            f"{reason.get('error')}: [bold]{reason.get('code')}[/bold]\n{reason.get('message')}\n"
            f"reason: {outcome['reason_key']}"
        )
    output = outcome.get("output", {})
    lines = []
    manifest = outcome.get("manifest")
    if manifest:
        rows, cleaning = manifest["rows"], manifest["cleaning"]
        lines.append(
            f"data version [bold]{manifest['data_version']}[/bold]: rows {rows['in']} -> "
            f"{rows['out']} ({cleaning.get('duplicate_rows_dropped', 0)} duplicates dropped)"
        )
    training = output.get("training")
    if training:
        lines.append(
            f"run {training['run_id']}: {training['estimator']} on "
            f"{len(training['data_versions'])} version(s), {training['rows_train']} rows"
        )
    model = output.get("registered")
    if model:
        lines.append(f"registered as version [bold]{model['version']}[/bold], alias production")
    evaluation = output.get("evaluation")
    if evaluation and not evaluation["passed"]:
        lines.append("gate failed: " + "; ".join(evaluation["failed"]))
    return "\n".join(lines)


def _gate_table(outcome: dict[str, Any], evaluation: dict[str, Any]) -> Table:
    champion = evaluation.get("champion_version")
    title = f"{outcome['label']}: candidate vs " + (
        f"champion v{champion}" if champion else "no champion yet"
    )
    table = Table(title=title)
    for column in ("criterion", "candidate", "champion", "bound", "result"):
        table.add_column(column)
    for criterion in evaluation["criteria"]:
        table.add_row(
            f"{criterion['metric']} ({criterion['kind']})",
            _number(criterion["candidate"]),
            _number(criterion.get("champion")),
            _number(criterion["bound"]),
            "[green]pass[/green]" if criterion["passed"] else "[red]fail[/red]",
        )
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _colour(outcome: str) -> str:
    colour = {"promoted": "green", "rejected": "yellow"}.get(outcome, "red")
    return f"[{colour}]{outcome}[/{colour}]"
