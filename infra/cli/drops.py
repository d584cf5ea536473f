"""`mlops drops ...`: every file dropped under raw/ and what became of it, on the local cloud or
on AWS (the same target options as `mlops models`).

A drop is one version of an object under raw/. Its outcome joins what the stack recorded:
the pipeline execution the drop started (found by the S3 event in its input), the dataset
version the registry holds for it, and its quarantine reason record:

- `ingested`: a new dataset version (`data_version`, `rows`);
- `duplicate`: the same cleaned content was already a version (`data_version`), none added;
- `skipped`: nothing to ingest (a folder marker, a copy rewritten by an erasure);
- `quarantined`: the file was refused; `reason` (the code) and `message` say why;
- `failed`: the execution failed before ingesting; `error` (its type) and `message`;
- `running`: the execution has not ended; `no execution`: none was found for the drop.

Exit codes: 0 done, 1 the target refused or the drop does not exist, 2 an invalid config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.storage import ObjectStore, read_quarantine_reason
from functions.common.config.loading import MlopsConfig
from functions.common.layout import RAW_PREFIX
from infra.cli.common import (
    LocalOption,
    StageOption,
    StateDirOption,
    console,
    fail,
    listing,
    open_session,
    reported,
    text,
)
from infra.cli.target import Target

drops_app = typer.Typer(
    help="Files dropped under raw/: what became of each (version, quarantine, failure).",
    no_args_is_help=True,
)
PIPELINE_OUTPUT = "PipelineStateMachineArn"
_ENDED_BADLY = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_OUTCOME_STYLE = {
    "ingested": "green",
    "duplicate": "cyan",
    "skipped": "dim",
    "quarantined": "yellow",
    "failed": "bold red",
}
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, nothing else.")]


def error_summary(error: str | None, cause: str | None) -> tuple[str | None, str | None]:
    """An execution's error type and message, without the stack trace and file paths: a
    Lambda function's error is a JSON cause (`errorType`, `errorMessage`, `stackTrace`), of
    which only the type and message are kept."""
    message = cause
    try:
        document = json.loads(cause or "")
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = str(document.get("errorType") or document.get("Error") or error or "") or None
        found = document.get("errorMessage") or document.get("Cause")
        message = None if found is None else str(found)
    return error, message


def _raw_versions(target: Target, bucket: str) -> list[dict[str, Any]]:
    """Every version of every object under raw/ (folder markers and delete markers aside)."""
    s3 = target.client("s3")
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=RAW_PREFIX):
        for item in page.get("Versions", []):
            if item["Key"].endswith("/"):
                continue
            version = item.get("VersionId")
            found.append(
                {
                    "key": item["Key"],
                    "version_id": None if version in (None, "null") else version,
                    "etag": str(item.get("ETag", "")).strip('"'),
                    "dropped_at": item["LastModified"].isoformat(timespec="seconds"),
                    "size": item.get("Size"),
                }
            )
    return found


def _executions(target: Target) -> dict[str, dict[str, Any]]:
    """The pipeline's executions started by a drop, described, by the drop's identity
    (`key#version id`, or `key#etag` in an unversioned bucket); the latest per drop."""
    sfn = target.client("stepfunctions")
    arn = target.output(PIPELINE_OUTPUT)
    found: dict[str, dict[str, Any]] = {}
    listed = [
        execution
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        for execution in page["executions"]
    ]
    for execution in sorted(listed, key=lambda e: e["startDate"]):
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        try:
            document = json.loads(described.get("input") or "{}")
        except ValueError:
            continue
        obj = ((document.get("detail") if isinstance(document, dict) else None) or {}).get(
            "object"
        ) or {}
        if "key" not in obj:
            continue
        version = obj.get("version-id") or str(obj.get("eTag") or "").strip('"')
        found[f"{obj['key']}#{version}"] = described
    return found


def collect_drops(config: MlopsConfig, target: Target) -> list[dict[str, Any]]:
    """Every drop under raw/ with its outcome, newest first (see the module docstring), for
    every dataset of `config`."""
    bucket = target.output("DataBucketName")
    store = ObjectStore(target.client("s3"))
    executions = _executions(target)
    registry = DatasetRegistry(target.output("RegistryTableName"), target.client("dynamodb"))
    versions = [v for name in config.datasets for v in registry.list_versions(name)]
    by_source = {(v.source.key, v.source.version_id or v.source.etag): v for v in versions}
    rows = {v.data_version: v.rows for v in versions}
    drops = []
    for raw in _raw_versions(target, bucket):
        identity = raw["version_id"] or raw["etag"]
        execution = executions.get(f"{raw['key']}#{identity}")
        drop: dict[str, Any] = {
            "key": raw["key"],
            "version_id": raw["version_id"],
            "dropped_at": raw["dropped_at"],
            "size": raw["size"],
            "outcome": "no execution",
            "data_version": None,
            "rows": None,
            "reason": None,
            "error": None,
            "message": None,
            "execution": execution["executionArn"] if execution else None,
            "execution_status": execution["status"] if execution else None,
        }
        registered = by_source.get((raw["key"], identity))
        if registered is not None:
            drop.update(outcome="ingested", data_version=registered.data_version)
        elif execution is not None:
            _execution_outcome(drop, execution, store, bucket)
        if drop["data_version"] is not None:
            drop["rows"] = rows.get(drop["data_version"])
        drops.append(drop)
    return sorted(drops, key=lambda d: (d["dropped_at"], d["key"]), reverse=True)


def _execution_outcome(
    drop: dict[str, Any], execution: Mapping[str, Any], store: ObjectStore, bucket: str
) -> None:
    status = execution["status"]
    if status == "RUNNING":
        drop["outcome"] = "running"
        return
    if status in _ENDED_BADLY:
        reason = read_quarantine_reason(store, bucket, drop["key"], drop["version_id"])
        if reason is not None:
            drop.update(
                outcome="quarantined",
                reason=reason.get("code"),
                message=reason.get("message"),
                reason_record=reason,
            )
            return
        error, message = error_summary(execution.get("error"), execution.get("cause"))
        drop.update(outcome="failed", error=error or status, message=message)
        return
    output = json.loads(execution.get("output") or "{}")
    dataset = output.get("dataset") or {}
    if dataset.get("ingested") is False:
        drop.update(outcome="skipped", reason=dataset.get("reason"), message=dataset.get("message"))
    elif dataset.get("already_ingested"):
        drop.update(outcome="duplicate", data_version=dataset.get("data_version"))
    else:
        drop.update(outcome="ingested", data_version=dataset.get("data_version"))


def _detail(drop: Mapping[str, Any]) -> str:
    """What the outcome refers to: the version, the reason or the error, and its message."""
    outcome = drop["outcome"]
    if outcome in ("ingested", "duplicate"):
        rows = f" ({drop['rows']:,} rows)" if drop.get("rows") is not None else ""
        return f"version {text(drop['data_version'])}{rows}"
    head = drop.get("reason") or drop.get("error")
    if head is None:
        return text(drop.get("message") or drop.get("execution_status") or "")
    return f"{text(head)}: {text(drop.get('message'))}"


def _styled(outcome: str) -> str:
    style = _OUTCOME_STYLE.get(outcome)
    return f"[{style}]{escape(outcome)}[/{style}]" if style else escape(outcome)


@drops_app.command("list")
def drops_list(
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N drops.")] = 50,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Every drop under raw/, newest first, with its outcome: the dataset version it became,
    a duplicate of one, quarantined with its reason, or failed with its error."""
    session = open_session(local, stage, state_dir, quiet=as_json)
    with reported():
        drops = collect_drops(session.portfolio, session.target)[:limit]
    if as_json:
        for drop in drops:
            drop.pop("reason_record", None)
        typer.echo(json.dumps(drops, indent=2))
        return
    if not drops:
        console.print("no drops under raw/ yet")
        return
    table = listing(
        f"drops under raw/ ({len(drops)}, newest first)",
        ("dropped", "key", "outcome", "detail"),
        no_wrap=("dropped", "outcome"),
    )
    for drop in drops:
        table.add_row(
            text(drop["dropped_at"].replace("T", " ")[:16]),
            text(drop["key"].removeprefix(RAW_PREFIX)),
            _styled(drop["outcome"]),
            _detail(drop),
        )
    console.print(table)


@drops_app.command("show")
def drops_show(
    key: Annotated[
        str, typer.Argument(help="The object's key (raw/<dataset>/<file>; raw/ may be left out).")
    ],
    version_id: Annotated[
        str | None, typer.Option(help="The object version (default: the newest).")
    ] = None,
    as_json: JsonOption = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """One drop (the newest version of the key by default): its outcome, the dataset version,
    the quarantine reason or the execution's error, and the execution."""
    session = open_session(local, stage, state_dir, quiet=as_json)
    key = key if key.startswith(RAW_PREFIX) else RAW_PREFIX + key  # as `drops list` shows it
    with reported():
        drops = [d for d in collect_drops(session.portfolio, session.target) if d["key"] == key]
    if version_id is not None:
        drops = [d for d in drops if d["version_id"] == version_id]
    if not drops:
        which = f" (version {version_id})" if version_id else ""
        raise fail(f"no drop {key}{which} is in the data bucket")
    drop = drops[0]
    if as_json:
        typer.echo(json.dumps(drop, indent=2))
        return
    table = Table(title=f"drop {text(key)}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("outcome", _styled(drop["outcome"]))
    for name in ("dropped_at", "version_id", "size", "data_version", "rows", "reason", "error"):
        if drop.get(name) is not None:
            table.add_row(name.replace("_", " "), text(drop[name]))
    if drop.get("message"):
        table.add_row("message", text(drop["message"]))
    record = drop.get("reason_record") or {}
    for name, value in (record.get("details") or {}).items():
        table.add_row(f"detail {text(name)}", text(value))
    table.add_row("execution", text(drop["execution"]))
    table.add_row("execution status", text(drop["execution_status"]))
    console.print(table)
