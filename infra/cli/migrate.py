"""`mlops migrate`: after an upgrade, move what older releases stored where today's code no
longer looks (the registered migrations, `functions.common.migrations`), and report what is
read as is (each stored format's versions in the registry table, `functions.common.formats`).

A dry run by default: per migration, how many objects it would move and sample keys. With
`--apply` each object is copied to its new key (a reason record rewritten to point at its
copy's new key), the copy verified, then the old key deleted (the bucket is versioned: the
old versions remain). Idempotent: a rerun finds nothing left to move; a copy already at the new
key from an interrupted run is verified and its old key deleted. Progress is checkpointed after
each batch (`migrations/<migration>/checkpoint.json`) and a rerun resumes; every run with
`--apply` writes an audit record (`migrations/audit/<run id>.json`: each move, when, who, the
release), also when interrupted. On a stack with an erasure role, the moves of a migration
under a reserved prefix act as that role (the bucket policy lets only ingest and it write under
quarantine/); the other moves (the batch layout's), the checkpoints and the audit record are
made with the operator's own credentials. The batch layout's migration needs the config's model
names and default model (old job folders move under the default model).

Exit codes: 0 done (or nothing to do), 1 the target refused or a move failed or conflicted
(the old object kept), 2 bad options or config.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from functions.adapters.storage import ObjectStore
from functions.adapters.table import RegistryTable
from functions.adapters.versions import ObjectVersions
from functions.common import formats
from functions.common.errors import ObjectNotFoundError
from functions.common.layout import migration_audit_key, migration_checkpoint_key
from functions.common.migrations import Migration, migrations
from infra.cli.common import LocalOption, StageOption, StateDirOption, console, fail, open_target
from infra.cli.common import reported as reported_errors
from infra.cli.erasure import _acting_target

DATA_BUCKET_OUTPUT = "DataBucketName"
TABLE_OUTPUT = "RegistryTableName"
SAMPLES = 5
REPO = Path(__file__).resolve().parents[2]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Move:
    source: str
    target: str


def pending(store: ObjectStore, bucket: str, migration: Migration) -> list[Move]:
    """What `migration` would move, in key order."""
    moves = []
    for found in store.list_objects(bucket, migration.prefix):
        target = migration.target(found["key"])
        if target is not None:
            moves.append(Move(found["key"], target))
    return moves


class Conflict(Exception):
    """The new key holds something else: the old object is kept."""


@dataclass
class MigrationRun:
    """One `--apply` run: moves with `store` (the acting credentials), checkpoints and the
    audit record with `records` (the operator's)."""

    store: ObjectVersions
    """With the acting credentials (the erasure role's when the stack has one)."""
    records: ObjectStore
    bucket: str
    run_id: str
    batch_size: int = 100
    own: ObjectVersions | None = None
    """With the operator's credentials: the moves of migrations whose prefix is not reserved
    (None: `store`)."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, migration: Migration) -> dict[str, Any]:
        checkpoint_key = migration_checkpoint_key(migration.id)
        previous = self._checkpoint(checkpoint_key)
        resumed = previous if previous and not previous.get("finished") else None
        store = self._store(migration)
        moves = pending(store, self.bucket, migration)
        summary: dict[str, Any] = {
            "migration": migration.id,
            "found": len(moves),
            "moved": 0,
            "conflicts": [],
            "resumed_run": resumed["run_id"] if resumed else None,
            "resumed_after": resumed.get("last_key") if resumed else None,
        }
        self.summaries.append(summary)
        state: dict[str, Any] = {
            "migration": migration.id,
            "run_id": self.run_id,
            "started_at": now(),
            "moved": int(resumed.get("moved", 0)) if resumed else 0,
            "last_key": resumed.get("last_key") if resumed else None,
            "finished": False,
        }
        for batch in _batches(moves, self.batch_size):
            for move in batch:
                try:
                    self._move(migration, move)
                except Conflict as exc:
                    summary["conflicts"].append(
                        {"from": move.source, "to": move.target, "why": str(exc)}
                    )
                    continue
                summary["moved"] += 1
                state["moved"] += 1
                state["last_key"] = move.source
            state["updated_at"] = now()
            self._save(checkpoint_key, state)
        state.update(finished=not summary["conflicts"], updated_at=now())
        self._save(checkpoint_key, state)
        return summary

    def _store(self, migration: Migration) -> ObjectVersions:
        return self.store if migration.reserved or self.own is None else self.own

    def _move(self, migration: Migration, move: Move) -> None:
        at = now()
        store = self._store(migration)
        if migration.rewrite is not None and migration.rewrites(move.target):
            document = store.get_json(self.bucket, move.source)
            rewritten = migration.rewrite(move.target, document)
            if store.exists(self.bucket, move.target):
                if store.get_json(self.bucket, move.target) != rewritten:
                    raise Conflict(f"{move.target} holds another document")
            else:
                store.put_json(self.bucket, move.target, rewritten)
                if store.get_json(self.bucket, move.target) != rewritten:
                    raise Conflict(f"{move.target} did not read back as written")
        else:
            digest = store.sha256(self.bucket, move.source)
            if not store.exists(self.bucket, move.target):
                store.copy(self.bucket, move.source, move.target)
            if store.sha256(self.bucket, move.target) != digest:
                raise Conflict(f"{move.target} holds other bytes")
        store.delete(self.bucket, move.source)
        self.changes.append(
            {
                "migration": migration.id,
                "from": move.source,
                "to": move.target,
                "at": at,
                "rewritten": migration.rewrite is not None and migration.rewrites(move.target),
            }
        )

    def _checkpoint(self, key: str) -> dict[str, Any] | None:
        try:
            document = self.records.get_json(self.bucket, key)
        except ObjectNotFoundError:
            return None
        return formats.read(formats.MIGRATION_CHECKPOINT, document)

    def _save(self, key: str, state: dict[str, Any]) -> None:
        self.records.put_json(self.bucket, key, formats.stamp(formats.MIGRATION_CHECKPOINT, state))


def _batches(moves: Sequence[Move], size: int) -> Iterator[Sequence[Move]]:
    for start in range(0, len(moves), size):
        yield moves[start : start + size]


def stored_formats(table: RegistryTable) -> list[dict[str, Any]]:
    """The registry table's versioned items per format and version, and whether today's code
    reads them as they are (every version up to the current one)."""
    rows = []
    for (kind, version), count in sorted(table.count_formats().items()):
        name = formats.ITEM_KINDS.get(kind)
        if name is None:
            continue
        current = formats.current(name)
        rows.append(
            {
                "format": name,
                "version": version,
                "items": count,
                "current": current,
                "read_as_is": version <= current,
            }
        )
    return rows


def release() -> str:
    """The commit this CLI runs from (unknown outside a git checkout)."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip() or "unknown"


def migrate(
    apply: Annotated[
        bool, typer.Option("--apply", help="Make the changes (default: a dry run).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Objects per checkpointed batch.", hidden=True)
    ] = 100,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Move what older releases stored where today's code no longer looks, and report which
    stored formats are read as they are. A dry run unless --apply."""
    config, target, (bucket, table_name) = open_target(
        local, stage, state_dir, DATA_BUCKET_OUTPUT, TABLE_OUTPUT, stdout=as_json
    )
    registered = migrations(config.model_names, config.default_model)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    with reported_errors(stdout=as_json):
        records = ObjectStore(target.client("s3"))
        report: dict[str, Any] = {
            "target": target.description,
            "bucket": bucket,
            "dry_run": not apply,
            "formats": stored_formats(RegistryTable(table_name, target.client("dynamodb"))),
        }
        if not apply:
            report["migrations"] = [_planned(records, bucket, m) for m in registered]
            _print(report, as_json)
            return
        who = str(target.client("sts").get_caller_identity()["Arn"])
        with console.capture() if as_json else nullcontext():
            acting, acting_as = _acting_target(target, f"migrate-{run_id}")
        run = MigrationRun(
            ObjectVersions(acting.client("s3")),
            records,
            bucket,
            run_id,
            batch_size,
            own=ObjectVersions(target.client("s3")),
        )
        audit: dict[str, Any] = {
            "run_id": run_id,
            "started_at": now(),
            "who": who,
            "acting_as": acting_as,
            "release": release(),
            "bucket": bucket,
        }
        failure: str | None = None
        try:
            for migration in registered:
                run.apply(migration)
        except BaseException as exc:  # Ctrl-C too: the audit record says it was interrupted
            failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            audit.update(
                finished_at=now(),
                status="interrupted" if failure else "completed",
                error=failure,
                migrations=run.summaries,
                changes=run.changes,
            )
            key = migration_audit_key(run_id)
            records.put_json(bucket, key, formats.stamp(formats.MIGRATION_AUDIT, audit))
            report.update(audit=key, **{k: audit[k] for k in ("run_id", "who", "status")})
            report["migrations"] = run.summaries
            report["changes"] = run.changes
            if failure and not as_json:
                console.print(f"audit record (interrupted): s3://{bucket}/{key}", style="dim")
        _print(report, as_json)
        if any(summary["conflicts"] for summary in run.summaries):
            raise fail("some objects were kept at their old keys (conflicts above)")


def _planned(store: ObjectStore, bucket: str, migration: Migration) -> dict[str, Any]:
    moves = pending(store, bucket, migration)
    return {
        "migration": migration.id,
        "description": migration.description,
        "found": len(moves),
        "samples": [{"from": m.source, "to": m.target} for m in moves[:SAMPLES]],
    }


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(f"target: {report['target']}, bucket {report['bucket']}", style="dim")
    for row in report["formats"]:
        verdict = (
            "read as is"
            if row["read_as_is"]
            else f"written by a newer release (this code reads up to {row['current']})"
        )
        console.print(f"{row['format']}: {row['items']} at version {row['version']}, {verdict}")
    console.print("Other stored documents: read as is (see docs: Stored formats)", style="dim")
    for summary in report["migrations"]:
        name = summary["migration"]
        if report["dry_run"]:
            console.print(f"{name}: {summary['found']} objects to move")
            for sample in summary["samples"]:
                console.print(f"  {escape(sample['from'])} -> {escape(sample['to'])}")
            continue
        resumed = (
            f" (resumed run {summary['resumed_run']} after {summary['resumed_after']})"
            if summary["resumed_run"]
            else ""
        )
        console.print(
            f"{name}: moved {summary['moved']} of {summary['found']}{resumed}, "
            f"{len(summary['conflicts'])} kept"
        )
        for conflict in summary["conflicts"]:
            console.print(f"  [yellow]kept[/yellow] {escape(conflict['from'])}: {conflict['why']}")
    if report["dry_run"]:
        console.print("dry run: nothing changed (--apply makes the changes)", style="dim")
    else:
        console.print(f"audit record: s3://{report['bucket']}/{report['audit']}")
