"""`mlops batch ...`: score files with the batch state machine and read a job's manifest, on the
local cloud or on AWS (the same target options as `mlops models`).

A job is scored by one model (`--model`, default: the only model or `[project] default_model`)
and lives in that model's folders, `batch/in/<model>/<job>/` and `batch/out/<model>/<job>/`.
`run` takes a local folder (or file), whose files are uploaded under `batch/in/<model>/<job>/`,
or a prefix already in the data bucket (`s3://<bucket>/batch/in/<model>/<job>/` or
`batch/in/<model>/<job>/`, which names the model), and starts the state machine on the job
directly (no `_START` marker is written, so the job is not started twice). Exit codes of `run
--wait` follow the job's status: 0 succeeded, 3 partial (some rows rejected or items failed,
within `[batch] max_rejected_share` and `tolerated_failure_percentage`), 1 failed (or the
target refused); 2 bad arguments or an invalid config. `run` without `--wait` exits 0 once the
job is started.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.errors import ObjectNotFoundError
from functions.common.layout import (
    BATCH_IN_PREFIX,
    JOB_PATTERN,
    job_inputs,
    job_outputs,
    manifest_key,
)
from infra.cli.common import (
    DATA_BUCKET_OUTPUT,
    LocalOption,
    ModelOption,
    StageOption,
    StateDirOption,
    chosen_model,
    console,
    fail,
    open_target,
    reported,
)
from infra.cli.target import Target

batch_app = typer.Typer(
    help="Batch inference: score every row of a folder of files, show a job's manifest.",
    no_args_is_help=True,
)
BATCH_STATE_MACHINE_OUTPUT = "BatchStateMachineArn"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_STATUS_STYLE = {"succeeded": "green", "partial": "yellow", "failed": "bold red"}
_REJECT_SAMPLES = 5
PARTIAL_EXIT_CODE = 3
"""`batch run --wait` on a job that ended `partial`."""


def _target(
    local: bool | None,
    stage: str,
    state_dir: Path | None,
    model: str | None,
    *,
    quiet: bool = False,
) -> tuple[Target, str, str, list[str]]:
    """The target, its data bucket, the model (`--model` or the default) and every model."""
    config, target, (bucket,) = open_target(local, stage, state_dir, DATA_BUCKET_OUTPUT)
    chosen = chosen_model(config, model)
    if not quiet:
        console.print(f"target: {target.description}, model {chosen}", style="dim")
    return target, bucket, chosen, config.model_names


def _job_of_prefix(source: str, bucket: str, models: list[str]) -> tuple[str, str] | None:
    """The (model, job) named by an S3 prefix (`s3://bucket/batch/in/<model>/<job>/` or
    `batch/in/<model>/<job>`), or None when `source` is not one."""
    if source.startswith("s3://"):
        named, _, key = source.removeprefix("s3://").partition("/")
        if named != bucket:
            raise fail(f"{source} is not in the data bucket {bucket}", 2)
    elif source.startswith(BATCH_IN_PREFIX):
        key = source
    else:
        return None
    parts = key.removeprefix(BATCH_IN_PREFIX).strip("/").split("/")
    if not key.startswith(BATCH_IN_PREFIX) or len(parts) != 2 or not all(parts):
        raise fail(f"{source} is not a job folder: use {BATCH_IN_PREFIX}<model>/<job>/", 2)
    if parts[0] not in models:
        raise fail(
            f"{source} is not in a model's folder: {parts[0]!r} is not a configured model "
            f"({', '.join(models)})",
            2,
        )
    return parts[0], parts[1]


def _upload(store: ObjectStore, bucket: str, source: Path, model: str, job: str) -> int:
    files = (
        [source]
        if source.is_file()
        else sorted(
            path
            for path in source.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.parts)
        )
    )
    if not files:
        raise fail(f"{source} holds no files", 2)
    for path in files:
        relative = path.name if source.is_file() else path.relative_to(source).as_posix()
        store.upload_file(
            path,
            bucket,
            f"{job_inputs(model, job)}{relative}",
            content_type="application/octet-stream",
        )
    return len(files)


@batch_app.command("run")
def batch_run(
    source: Annotated[
        str,
        typer.Argument(
            help="A local folder or file to upload, or a prefix in the data bucket "
            "(s3://<bucket>/batch/in/<model>/<job>/ or batch/in/<model>/<job>/)."
        ),
    ],
    job: Annotated[
        str | None,
        typer.Option(help="Job name (default: the folder's name and the time)."),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(min=1, help="Score with this model version (default: production)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the job to end and print its manifest.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600.0,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Start a batch job of one model on local files or on a prefix of the data bucket."""
    target, bucket, chosen, models = _target(local, stage, state_dir, model)
    named = _job_of_prefix(source, bucket, models)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if named is None:
        path = Path(source)
        if not path.exists():
            raise fail(f"{source} is neither a local folder or file nor a batch/in/ prefix", 2)
        name = job or f"{(path.stem if path.is_file() else path.resolve().name)}-{stamp}"
    else:
        if model is not None and model != named[0]:
            raise fail(f"--model {model} differs from the prefix's model {named[0]}", 2)
        chosen = named[0]
        name = job or named[1]
        if job is not None and job != named[1]:
            raise fail(f"--job {job} differs from the prefix's job {named[1]}", 2)
    if not re.match(JOB_PATTERN, name):
        raise fail(f"job name {name!r} must be 1-80 letters, digits, '.', '_' or '-'", 2)
    with reported():
        if named is None:
            count = _upload(ObjectStore(target.client("s3")), bucket, Path(source), chosen, name)
            console.print(f"uploaded {count} file(s) to s3://{bucket}/{job_inputs(chosen, name)}")
        request: dict[str, Any] = {"job": name, "model": chosen}
        if version is not None:
            request["model_version"] = version
        sfn = target.client("stepfunctions")
        started = sfn.start_execution(
            stateMachineArn=target.output(BATCH_STATE_MACHINE_OUTPUT),
            name=f"{name}-{stamp}"[:80],
            input=json.dumps(request),
        )
        console.print(f"job {escape(name)}: execution {escape(started['executionArn'])}")
        if not wait:
            console.print(f"follow it with: mlops batch show {escape(name)} --model {chosen}")
            return
        with console.status(f"Scoring job {escape(name)}..."):
            described = _wait(sfn, started["executionArn"], timeout)
        manifest = _manifest(target, bucket, chosen, name, required=False)
    if manifest is not None:
        _print_manifest(target, bucket, manifest)
        status = manifest.get("status")
        if status == "failed" and manifest.get("status_reason"):
            raise fail(f"the batch job failed: {manifest['status_reason']}"[:500])
    if described["status"] != "SUCCEEDED":
        cause = described.get("cause") or described.get("error") or ""
        raise fail(f"the batch job ended {described['status']}: {cause}"[:500])
    if manifest is not None and manifest.get("status") == "partial":
        raise typer.Exit(PARTIAL_EXIT_CODE)


def _wait(sfn: Any, arn: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] in TERMINAL:
            return described
        if time.monotonic() > deadline:
            raise fail(f"the job is still {described['status']} after {timeout:.0f} s")
        time.sleep(0.5)


def _manifest(
    target: Target, bucket: str, model: str, job: str, *, required: bool
) -> dict[str, Any] | None:
    key = manifest_key(model, job)
    try:
        return formats.read(
            formats.BATCH_MANIFEST, ObjectStore(target.client("s3")).get_json(bucket, key)
        )
    except ObjectNotFoundError:
        if required:
            raise fail(
                f"job {job} of model {model} has no manifest at s3://{bucket}/{key} "
                "(not run, or still running)"
            ) from None
        return None


@batch_app.command("show")
def batch_show(
    job: Annotated[str, typer.Argument(help="The job name (the folder under batch/in/<model>/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    model: ModelOption = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """A job's manifest: counts per file, rejects by reason, timings."""
    # With --json, stdout holds the manifest alone (for jq and friends).
    target, bucket, chosen, _ = _target(local, stage, state_dir, model, quiet=as_json)
    with reported():
        manifest = _manifest(target, bucket, chosen, job, required=True)
        assert manifest is not None
        if as_json:
            typer.echo(json.dumps(manifest, indent=2))
            return
        _print_manifest(target, bucket, manifest)


def _print_manifest(target: Target, bucket: str, manifest: Mapping[str, Any]) -> None:
    status = str(manifest["status"])
    style = _STATUS_STYLE.get(status, "")
    reason = manifest.get("status_reason")
    console.print(
        f"job {escape(manifest['job'])}: [{style}]{status}[/{style}]"
        + (f": {escape(str(reason))}" if reason else "")
        + f"; model {escape(manifest['model_name'])} version {manifest['model_version']}",
        soft_wrap=True,
    )
    table = Table("file", "rows", "scored", "rejected", "not scored", "items", "failed items")
    for file in manifest["per_file"]:
        table.add_row(
            escape(file["key"].removeprefix(job_inputs(manifest["model_name"], manifest["job"]))),
            *(f"{file[name]:,}" for name in ("rows", "scored", "rejected", "not_scored")),
            str(file["items"]),
            str(file["failed_items"]),
        )
    table.add_row(
        "[bold]total[/bold]",
        *(f"{manifest[name]:,}" for name in ("rows", "scored", "rejected", "not_scored")),
        str(manifest["items"]),
        str(len(manifest["failed_items"])),
    )
    console.print(table)
    for unreadable in manifest.get("unreadable") or []:
        console.print(
            f"[yellow]unreadable[/yellow] {escape(unreadable['key'])}: "
            f"{escape(unreadable['reason'])}"
        )
    if manifest.get("error"):
        console.print(f"[red]error[/red]: {escape(json.dumps(manifest['error']))[:400]}")
    by_error = manifest.get("rejects_by_error") or {}
    if by_error:
        console.print(
            "rejects by reason: "
            + ", ".join(f"{escape(k)} {v:,}" for k, v in sorted(by_error.items()))
        )
        _print_reject_samples(target, bucket, manifest)
    if manifest.get("unseen_categories"):
        console.print(f"unseen categories (scored): {manifest['unseen_categories']}")
    timings = manifest.get("timings") or {}
    console.print(
        f"wall {timings.get('wall_seconds', 0):.1f} s, {timings.get('rows_per_second', 0):,.0f} "
        f"rows/s; outputs: s3://{bucket}/{job_outputs(manifest['model_name'], manifest['job'])}",
        soft_wrap=True,
    )


def _print_reject_samples(target: Target, bucket: str, manifest: Mapping[str, Any]) -> None:
    store = ObjectStore(target.client("s3"))
    keys = [key for file in manifest["per_file"] for key in file.get("rejects", [])]
    shown = 0
    table = Table("file", "row", "field", "error", "reason", title="first rejects")
    for key in keys:
        for line in store.get_bytes(bucket, key).splitlines():
            if shown >= _REJECT_SAMPLES:
                break
            try:
                reject = formats.read(formats.BATCH_REJECT, json.loads(line))
            except formats.FormatVersionError as exc:
                raise fail(f"{key}: {exc}") from None
            table.add_row(
                escape(
                    reject["input_key"].removeprefix(
                        job_inputs(manifest["model_name"], manifest["job"])
                    )
                ),
                str(reject["row"]),
                escape(str(reject.get("field") or "-")),
                escape(reject["error"]),
                escape(reject["reason"][:100]),
            )
            shown += 1
    console.print(table)
