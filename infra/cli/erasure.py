"""`mlops erase`: erase one data subject (`--subject COLUMN=VALUE`) or one prediction request
(`--request-id ID`) from capture, feedback, raw drops, quarantine and curated dataset versions,
every S3 object version included, and write an audit record `audit/erasure/<id>.json`.

On a stack with output `ErasureRoleArn` the command acts as that role: the data bucket denies
deleting under raw/ to every other principal. Exit codes: 0 erased (or nothing to erase, also
audited), 1 the target refused, an object could not be read, or the check afterwards still
found the subject, 2 bad options or config.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape
from rich.table import Table

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.versions import ObjectVersions
from functions.common import formats
from functions.common.errors import AdapterError
from functions.common.layout import erasure_audit_key
from functions.erasure.audit import audit_record, new_erasure_id
from functions.erasure.eraser import Eraser
from functions.erasure.findings import Findings, KeyResult
from functions.ml.erasure import Subject, SubjectSyntaxError
from infra.cli.common import (
    DATA_BUCKET_OUTPUT,
    LocalOption,
    StageOption,
    console,
    fail,
    open_target,
)
from infra.cli.target import STATE_DIR_ENV, Target

ERASURE_ROLE_OUTPUT = "ErasureRoleArn"
erase_app = typer.Typer(help="Erase one data subject or one request, every version included.")


def _subject(request_id: str | None, subject: str | None, reason: str | None) -> Subject:
    if (request_id is None) == (subject is None):
        raise fail("give exactly one of --request-id ID or --subject COLUMN=VALUE", 2, stdout=True)
    try:
        parsed = (
            Subject.request(request_id) if request_id is not None else Subject.parse(subject or "")
        )
    except SubjectSyntaxError as exc:
        raise fail(str(exc), 2, stdout=True) from None
    if reason and parsed.value in reason:
        raise fail(
            "--reason must not contain the subject's value (it is stored in clear)", 2, stdout=True
        )
    return parsed


def _acting_target(target: Target, erasure_id: str) -> tuple[Target, str | None]:
    """The target seen through the erasure role, when the stack has one."""
    role = target.outputs.get(ERASURE_ROLE_OUTPUT)
    if role is None:
        if target.kind == "aws":
            raise fail(
                f"the {target.description} has no output {ERASURE_ROLE_OUTPUT}; deploy the "
                "current stack (it creates the erasure role, the only principal that may "
                "delete raw data)",
                stdout=True,
            )
        console.print(
            "no erasure role on this target: acting with your own credentials", style="dim"
        )
        return target, None
    credentials = target.client("sts").assume_role(
        RoleArn=role, RoleSessionName=f"mlops-erase-{erasure_id}"[:64]
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=target.session.region_name,
    )
    acting = Target(
        kind=target.kind,
        description=target.description,
        outputs=target.outputs,
        session=session,
        endpoint_url=target.endpoint_url,
    )
    return acting, str(acting.client("sts").get_caller_identity()["Arn"])


@erase_app.callback(invoke_without_command=True)
def erase(
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Erase one prediction request.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="Erase one data subject: COLUMN=VALUE, e.g. customer_id=C000000042."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would change; write nothing.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why (e.g. a ticket number); recorded in the audit.")
    ] = None,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="The local cloud's state directory.", envvar=STATE_DIR_ENV, show_default=False
        ),
    ] = None,
) -> None:
    """Remove the subject's rows from capture, feedback, raw, quarantine and curated data,
    delete every object version that held them, check, and write an audit record."""
    wanted = _subject(request_id, subject, reason)
    config, target, (bucket,) = open_target(
        local, stage, state_dir, DATA_BUCKET_OUTPUT, stdout=True
    )
    console.print(f"target: {target.description}, bucket {bucket}", style="dim")
    erasure_id = new_erasure_id()
    try:
        who = str(target.client("sts").get_caller_identity()["Arn"])
        acting, acting_as = _acting_target(target, erasure_id)
        table = target.outputs.get("RegistryTableName")
        objects = ObjectVersions(acting.client("s3"))
        eraser = Eraser(
            objects,
            bucket,
            config.dataset,
            on_curated=(
                DatasetRegistry(table, target.client("dynamodb")).set_rows if table else None
            ),
        )
        with console.status("Reading every object version..."):
            findings = eraser.find(wanted)
        _print_findings(findings, dry_run=dry_run)
        if dry_run:
            console.print("dry run: nothing was written")
            return
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with console.status("Erasing..."):
            results = eraser.erase(findings, erasure_id=erasure_id, at=at)
        with console.status("Checking every object version again..."):
            remaining = eraser.verify(findings) if findings.keys else findings
        record = audit_record(
            findings,
            results,
            erasure_id=erasure_id,
            at=at,
            who=who,
            acting_as=acting_as,
            reason=reason,
            target=target.description,
            remaining=remaining,
        )
        audit_key = erasure_audit_key(erasure_id)
        objects.put_json(bucket, audit_key, formats.stamp(formats.ERASURE_AUDIT, record))
    except (AdapterError, ClientError, BotoCoreError) as exc:
        raise fail(f"the erasure stopped: {exc}", stdout=True) from None
    if results:
        _print_results(results)
    console.print(f"audit record: s3://{bucket}/{audit_key}", highlight=False)
    still = [f for f in remaining.keys if f.hits]
    if still:
        raise fail(
            "the subject is still in "
            + ", ".join(f"{f.key} (versions {', '.join(sorted(f.hits))})" for f in still),
            stdout=True,
        )
    if findings.unreadable:
        raise fail(
            "cannot filter rows of "
            + ", ".join(
                f"{key} version {version} ({why})" for key, version, why in findings.unreadable
            )
            + ": they contain the subject's value; erase them by hand with the erasure role",
            stdout=True,
        )


def _print_findings(findings: Findings, *, dry_run: bool) -> None:
    if not findings.keys:
        console.print(
            f"nothing to erase: no version of {findings.objects_scanned} object(s) "
            f"({findings.versions_scanned} version(s)) holds the subject"
        )
        return
    table = Table(
        title=f"{'would change' if dry_run else 'found'}: {len(findings.keys)} key(s) of "
        f"{findings.objects_scanned} scanned ({findings.versions_scanned} versions)"
    )
    for column in ("area", "key", "action", "rows of the subject", "versions holding it"):
        table.add_column(column)
    for finding in findings.keys:
        table.add_row(
            finding.area,
            escape(finding.key),
            finding.action if finding.hits else "unreadable",
            str(finding.rows_removed),
            str(len(finding.hits) + len(finding.unreadable)),
        )
    console.print(table)


def _print_results(results: list[KeyResult]) -> None:
    table = Table(title=f"erased: {sum(r.rows_removed for r in results)} row(s)")
    for column in ("area", "key", "action", "rows removed", "rows kept", "versions deleted"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.area,
            escape(result.key),
            result.action,
            str(result.rows_removed),
            "-" if result.rows_kept is None else str(result.rows_kept),
            str(len(result.versions_deleted)),
        )
    console.print(table)
