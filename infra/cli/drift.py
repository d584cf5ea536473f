"""`mlops drift ...`: run a drift check of one model now, list its checks and look at one's
result, on the local cloud or on AWS (the same target options as `mlops models`; `--model`
names the model, default: the only model or `[project] default_model`).

A check's documents live in the data bucket under `reports/drift/<model>/<check id>/`
(`result.json`, `report.html`); check ids sort by time, so the latest is the largest.
Exit codes: 0 done, 1 the target, the function or the bucket refused (one sentence says why),
2 the config is invalid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.config import Config
from rich.markup import escape
from rich.table import Table

from functions.common import formats
from functions.common.errors import ObjectNotFoundError
from functions.common.layout import REPORT_FILE, RESULT_FILE, drift_reports_prefix
from functions.ml.drift.presentation import STATISTICS, ranked_features
from infra.cli.common import (
    LocalOption,
    ModelOption,
    Session,
    StageOption,
    StateDirOption,
    console,
    errors,
    fail,
    open_session,
    reported,
    text,
)

drift_app = typer.Typer(
    help="Drift checks of a configured model: run one now, list them, show the latest or any one.",
    no_args_is_help=True,
)
DRIFT_FUNCTION_OUTPUT = "DriftFunctionName"
DEFAULT_REPORT_DIR = Path(".mlops/reports")
# A check reads a whole window: wait as long as Lambda may run, and never retry an invocation
# that timed out on our side (the check would run twice).
_INVOKE_CONFIG = Config(read_timeout=960, connect_timeout=5, retries={"total_max_attempts": 1})
_SEVERITY_STYLE = {"major": "bold red", "minor": "yellow", "none": "green"}
_VERDICT_STYLE = {"drift": "bold red", "drop": "bold red", "no_drift": "green", "ok": "green"}


def _checks_prefix(session: Session) -> str:
    return drift_reports_prefix(session.model)


def _styled(value: Any, styles: Mapping[str, str]) -> str:
    style = styles.get(str(value))
    return f"[{style}]{text(value)}[/{style}]" if style else text(value)


def _retrain_line(retrain: Mapping[str, Any] | None) -> str:
    if not retrain:
        return "retrain: not decided"
    if retrain.get("requested"):
        line = f"retrain: requested ({text(retrain.get('reason'))})"
        if retrain.get("execution"):
            line += f", execution {text(retrain['execution'])}"
        return f"{line}; {text(retrain['note'])}" if retrain.get("note") else line
    why = f" ({text(retrain['skipped'])})" if retrain.get("skipped") else ""
    line = f"retrain: not requested{why}"
    return f"{line}; {text(retrain['note'])}" if retrain.get("note") else line


# mlops drift run


@drift_app.command("run")
def drift_run(
    window_hours: Annotated[
        int | None,
        typer.Option(
            min=1, help="Hours of live traffic to check (default: the configured window)."
        ),
    ] = None,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Run a drift check of one model now and wait for its verdict."""
    session = open_session(local, stage, state_dir, model=model)
    event: dict[str, Any] = {"source": "mlops.cli", "model": session.model}
    if window_hours is not None:
        event["window_hours"] = window_hours
    with reported():
        function = session.target.output(DRIFT_FUNCTION_OUTPUT)
        client = session.target.session.client(
            "lambda", endpoint_url=session.target.endpoint_url, config=_INVOKE_CONFIG
        )
        with console.status(f"Checking drift with {escape(function)}..."):
            response = client.invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
        body = response["Payload"].read()
    try:
        reply = json.loads(body) if body else None
    except ValueError:
        reply = None
    if response.get("FunctionError"):
        error = reply if isinstance(reply, Mapping) else {}
        kind = error.get("errorType") or response["FunctionError"]
        message = error.get("errorMessage") or body.decode("utf-8", "replace")[:300]
        raise fail(f"the drift check failed: {kind}: {message}")
    if not isinstance(reply, Mapping):
        raise fail(f"the drift function returned no result: {body[:300]!r}")
    _print_run(session, reply)


def _print_run(session: Session, reply: Mapping[str, Any]) -> None:
    console.print(
        f"check {text(reply.get('check_id'))}: verdict "
        f"{_styled(reply.get('verdict'), _VERDICT_STYLE)}"
    )
    console.print(f"drifted features: {text(reply.get('drifted') or [])}")
    if reply.get("data_quality"):
        console.print(f"data-quality breaks: {text(reply['data_quality'])}")
    if reply.get("decision"):
        console.print(f"decision: {text(reply['decision'])}", soft_wrap=True)
    if reply.get("performance"):
        console.print(_performance_line(reply["performance"]), soft_wrap=True)
    elif reply.get("performance_verdict") is not None:
        console.print(
            f"performance: {_styled(reply['performance_verdict'], _VERDICT_STYLE)}",
        )
    if reply.get("estimate"):
        console.print(_estimate_line(reply["estimate"]), soft_wrap=True)
    console.print(_retrain_line(reply.get("retrain")))
    for name in ("result_key", "report_key"):
        if reply.get(name):
            label = name.removesuffix("_key")
            console.print(f"{label}: s3://{session.bucket}/{text(reply[name])}", soft_wrap=True)


# mlops drift show


@drift_app.command("show")
def drift_show(
    check_id: Annotated[
        str | None, typer.Argument(help="The check id (default: the latest check).")
    ] = None,
    open_report: Annotated[
        bool,
        typer.Option(
            "--open", help=f"Save the HTML report under {DEFAULT_REPORT_DIR}/ and open it."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print result.json as stored, nothing else.")
    ] = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Show a drift check of one model (the latest by default), its features most drifted
    first.

    Window, verdict, live performance and the retrain decision, then one table per model
    version that served traffic in the window."""
    session = open_session(local, stage, state_dir, quiet=as_json, model=model)
    store = session.store()
    with reported():
        check = check_id or _latest_check(session)
        try:
            body = store.get_bytes(
                session.bucket, f"{_checks_prefix(session)}{check}/{RESULT_FILE}"
            )
        except ObjectNotFoundError:
            raise fail(f"no drift check {check} of {session.model} is stored") from None
    if as_json:
        typer.echo(body.decode("utf-8"))
    else:
        try:
            result = formats.read(formats.DRIFT_RESULT, json.loads(body))
        except (ValueError, AttributeError) as exc:
            raise fail(f"result.json of drift check {check} is not readable: {exc}") from None
        _print_check(result)
    if open_report:
        path = _save_report(session, check)
        # With --json, stdout holds the document alone (for jq and friends).
        (errors if as_json else console).print(f"report: {path}", soft_wrap=True)
        typer.launch(str(path))


def _checks(session: Session) -> list[str]:
    """The model's stored check ids, oldest first (check ids sort by time)."""
    s3 = session.target.client("s3")
    checks: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=session.bucket, Prefix=_checks_prefix(session), Delimiter="/"
    ):
        checks.extend(
            entry["Prefix"][len(_checks_prefix(session)) :].rstrip("/")
            for entry in page.get("CommonPrefixes", [])
        )
    if not checks:
        raise fail(
            f"no drift check of {session.model} is stored yet "
            f"(s3://{session.bucket}/{_checks_prefix(session)}); run one with "
            f"`mlops drift run --model {session.model}`"
        )
    return sorted(checks)


def _latest_check(session: Session) -> str:
    return _checks(session)[-1]


# mlops drift list


@drift_app.command("list")
def drift_list(
    last: Annotated[int, typer.Option(min=1, help="How many of the latest checks.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """The latest drift checks of one model, newest first: verdict, rows, live performance,
    retraining."""
    session = open_session(local, stage, state_dir, quiet=as_json, model=model)
    store = session.store()
    rows = []
    with reported():
        for check in reversed(_checks(session)[-last:]):
            key = f"{_checks_prefix(session)}{check}/{RESULT_FILE}"
            try:
                result = formats.read(formats.DRIFT_RESULT, store.get_json(session.bucket, key))
            except ObjectNotFoundError:
                continue  # a check that wrote its report folder but not (yet) its result
            except formats.FormatVersionError as exc:
                raise fail(f"{key}: {exc}") from None
            retrain = result.get("retrain") or {}
            estimate = result.get("estimate") or {}
            realized = (estimate.get("realized") or {}).get("metrics") or {}
            rows.append(
                {
                    "model": session.model,
                    "check_id": check,
                    "checked_at": result.get("checked_at"),
                    "verdict": result.get("verdict"),
                    "rows": (result.get("window") or {}).get("rows"),
                    "performance": (result.get("performance") or {}).get("verdict"),
                    "estimate": estimate.get("verdict"),
                    "estimated_accuracy": (estimate.get("metrics") or {}).get("accuracy"),
                    "realized_accuracy": realized.get("accuracy"),
                    "retrain_requested": bool(retrain.get("requested")),
                }
            )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "check",
        "checked at",
        "verdict",
        "rows",
        "performance",
        "estimate",
        "accuracy est. / realized",
        "retrain",
    )
    for row in rows:
        table.add_row(
            text(row["check_id"]),
            text(row["checked_at"]),
            _styled(row["verdict"], _VERDICT_STYLE),
            text(row["rows"]),
            _styled(row["performance"], _VERDICT_STYLE),
            _styled(row["estimate"], _VERDICT_STYLE),
            f"{_figure(row['estimated_accuracy'])} / {_figure(row['realized_accuracy'])}",
            text(row["retrain_requested"]),
        )
    console.print(table)


def _save_report(session: Session, check: str) -> Path:
    path = DEFAULT_REPORT_DIR / session.model / f"{check}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    with reported():
        try:
            session.store().download(
                session.bucket, f"{_checks_prefix(session)}{check}/{REPORT_FILE}", path
            )
        except ObjectNotFoundError:
            path.unlink(missing_ok=True)
            raise fail(f"drift check {check} has no report.html") from None
    return path.resolve()


def _print_check(result: Mapping[str, Any]) -> None:
    window = result.get("window") or {}
    console.print(
        f"check {text(result.get('check_id'))} of {text(result.get('model_name'))} "
        f"at {text(result.get('checked_at'))}",
        soft_wrap=True,
    )
    console.print(
        f"window: {text(window.get('start'))} to {text(window.get('end'))} "
        f"({text(window.get('objects'))} objects, {text(window.get('rows'))} rows)",
        soft_wrap=True,
    )
    console.print(f"verdict: {_styled(result.get('verdict'), _VERDICT_STYLE)}")
    console.print(_performance_line(result.get("performance")), soft_wrap=True)
    console.print(_estimate_line(result.get("estimate")), soft_wrap=True)
    console.print(_retrain_line(result.get("retrain")), soft_wrap=True)
    for version in result.get("versions") or []:
        if not version.get("report"):
            console.print(
                f"model version {text(version.get('model_version'))}: "
                f"{text(version.get('rows'))} rows, not compared: "
                f"{text(version.get('note') or 'no drift report')}",
                soft_wrap=True,
            )
            continue
        console.print(_version_table(version))
        report = version.get("report") or {}
        if report.get("decision"):
            console.print(f"  decision: {text(report['decision'])}", soft_wrap=True)
        notes = report.get("notes") or []
        for note in notes:
            console.print(f"  note: {text(note)}")


def _performance_line(performance: Mapping[str, Any] | None) -> str:
    if not performance:
        return "performance: not measured"
    line = (
        f"performance: {_styled(performance.get('verdict'), _VERDICT_STYLE)} "
        f"on {text(performance.get('rows'))} labelled rows"
    )
    if performance.get("model_version") is not None:
        line += f" of model version {text(performance['model_version'])}"
    metrics = performance.get("metrics") or {}
    reference = performance.get("reference") or {}
    changes = performance.get("changes") or {}
    shown = [
        f"{text(name)} {text(value)} (reference {text(reference.get(name))}, {changes[name]:+.4f})"
        if isinstance(changes.get(name), int | float)
        else f"{text(name)} {text(value)}"
        for name, value in metrics.items()
    ]
    return f"{line}: {'; '.join(shown)}" if shown else line


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _estimate_line(estimate: Mapping[str, Any] | None) -> str:
    """The label-free estimate: each metric against its reference and, once feedback labelled
    the rows, the realized value."""
    if not estimate:
        return "estimate: none (no model version served the window)"
    line = f"estimate: {_styled(estimate.get('verdict'), _VERDICT_STYLE)}"
    if estimate.get("verdict") == "unavailable":
        return f"{line} ({text('; '.join(estimate.get('notes') or []))})"
    line += f" on {text(estimate.get('rows'))} rows without labels"
    reference = estimate.get("reference") or {}
    realized = (estimate.get("realized") or {}).get("metrics") or {}
    shown = [
        f"{text(name)} {_figure(value)} (reference {_figure(reference.get(name))}"
        + (f", realized {_figure(realized[name])}" if name in realized else "")
        + ")"
        for name, value in (estimate.get("metrics") or {}).items()
    ]
    return f"{line}: {'; '.join(shown)}" if shown else line


def _version_table(version: Mapping[str, Any]) -> Table:
    report = version.get("report") or {}
    drifted = report.get("drifted") or []
    table = Table(
        title=(
            f"model version {text(version.get('model_version'))}: "
            f"{text(version.get('rows'))} rows, {text(report.get('verdict'))}, "
            f"{len(drifted)} drifted"
        )
    )
    columns = ("feature", "kind", "severity", "quality", "score", *(s[1] for s in STATISTICS))
    for column in columns:
        table.add_column(column, justify="left" if column in ("feature", "kind") else "right")
    table.add_column("notes", overflow="fold")
    prediction = report.get("prediction")
    for feature in [*ranked_features(report), *([prediction] if prediction else [])]:
        statistics = feature.get("statistics") or {}
        name = text(feature.get("name"))
        table.add_row(
            "predictions (model output)" if feature is prediction else name,
            text(feature.get("kind")),
            _styled(feature.get("severity"), _SEVERITY_STYLE),
            _styled(feature.get("quality", "-"), _SEVERITY_STYLE),
            text(feature.get("score")),
            *(text(statistics.get(key)) for key, _ in STATISTICS),
            text("; ".join(map(str, feature.get("notes") or []))),
        )
    return table
